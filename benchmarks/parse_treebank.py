"""Parsing as translation (Vinyals et al. 2015) on the NLTK WSJ sample, as a user runs it: ``rnnkit parse train``
then ``rnnkit parse eval --json`` (labelled bracket F1, EVALB with COLLINS.prm) on valid.

    python benchmarks/parse_treebank.py --threads 1                    # the learning curve: 25%, 50%, 100%
    python benchmarks/parse_treebank.py --threads 1 --runs none        # the same model without attention
    python benchmarks/parse_treebank.py --runs baseline                # right-branching trees (no training)

Each run trains with configs/parse/treebank_attention.toml (at most 25 minutes) and is scored with beam 5 under
the bracket constraint (every output one tree with one XX per word), and without the constraint for the
100% run. valid is wsj_0160-0179 (273 trees) and also picks the best weights; the test trees are held out.
The sample is about 10% of the WSJ training data Vinyals et al. used (88.3 F1 on section 23 with attention,
WSJ only), so no published figure applies: the learning curve shows the trend. Writes
benchmarks/results/parse_<run>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import machine, run_task, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "treebank_sample"
TRAIN_TREES = 3396
RUNS = {"25pc": ["--first", str(TRAIN_TREES // 4)], "50pc": ["--first", str(TRAIN_TREES // 2)], "100pc": []}
RUNS["none"] = ["--attention", "none"]


def evaluate(run: Path, valid: Path, threads: int | None, *flags: str) -> dict:
    env = dict(os.environ) | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    command = [sys.executable, "-m", "rnnkit", "parse", "eval", str(run), "--data", str(valid), "--json", *flags]
    return json.loads(subprocess.run(command, check=True, capture_output=True, env=env).stdout)


def baseline(data: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from rnnkit.data.trees import read_trees, right_branching
    from rnnkit.data.trees import words as leaves
    from rnnkit.tasks.seq2seq.evalb import evalb

    gold = read_trees(data / "valid.trees")
    return evalb(gold, [right_branching(leaves(t)) for t in gold])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=["25pc", "50pc", "100pc"], choices=[*RUNS, "baseline"])
    parser.add_argument("--config", default=str(ROOT / "configs/parse/treebank_attention.toml"))
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()
    data = Path(args.data)
    for name in args.runs:
        if name == "baseline":
            scores = baseline(data)
            write_result("parse_baseline", {"setting": machine(), "valid": scores})
            print(json.dumps({"run": name, "f1": scores["f1"]}))
            continue
        out = ROOT / "runs" / "bench" / f"parse_{name}"
        flags = ["--config", args.config, *RUNS[name]]
        result = run_task("parse", data / "train", data / "valid", out, flags, threads=args.threads)
        summary = {"f1": result["metrics"]["f1"], "exact_match": result["metrics"]["exact_match"]}
        if name == "100pc":
            free = evaluate(out, data / "valid", args.threads, "--no-constraint")
            summary |= {"unconstrained_f1": free["f1"], "unconstrained_repaired": free["repaired"]}
            summary["greedy_f1"] = evaluate(out, data / "valid", args.threads, "--beam", "1")["f1"]
        payload = {"setting": machine() | {"config": args.config, "flags": RUNS[name]}, "valid": summary} | result
        path = write_result(f"parse_{name}", payload)
        print(json.dumps({"run": name, **summary, "minutes": result["train_minutes"]}))
        print(f"written {path}")


if __name__ == "__main__":
    main()
