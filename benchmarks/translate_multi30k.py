"""Multi30k German -> English, as a user runs it: ``rnnkit translate train``, then ``rnnkit translate eval --json``
on the validation split with greedy search and with beam 5.

    python benchmarks/translate_multi30k.py --config configs/translate/multi30k_general.toml --threads 1
    python benchmarks/translate_multi30k.py --config configs/translate/multi30k_general.toml --name none \\
        -- --attention none
    python benchmarks/translate_multi30k.py --threads 1 --name additive_2h --resume-from additive \\
        -- --max-minutes 75    # the additive run's 45 minutes, continued to 2 hours

The configs read the lowercased, Moses-tokenised files of ``tok/`` (as the WMT16 multimodal baselines did), so the
reported BLEU is sacrebleu's on that text (its signature says case:mixed: the text is already lowercase).
val is the validation split that also picks the best weights; test_2016_flickr is held out. Writes
benchmarks/results/translate_<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import machine, run_task, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "multi30k" / "tok"


def evaluate(run: Path, valid: Path, beam: int, threads: int | None) -> dict:
    env = dict(os.environ) | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    command = [sys.executable, "-m", "rnnkit", "translate", "eval", str(run), "--data", str(valid), "--json"]
    done = subprocess.run([*command, "--beam", str(beam)], check=True, capture_output=True, env=env)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/translate/multi30k_general.toml"))
    parser.add_argument("--name", default=None, help="the result's name (default: the config's)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--data", default=str(DATA), help="the folder of train/val files")
    parser.add_argument(
        "--resume-from",
        metavar="NAME",
        help="continue the run of an earlier result (runs/bench/translate_NAME, copied to this result's folder) "
        "with the flags after --, e.g. -- --max-minutes 75",
    )
    parser.add_argument("--eval-only", action="store_true", help="evaluate this result's run as it is")
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit translate train, after --")
    args = parser.parse_args()
    name = args.name or Path(args.config).stem
    out = ROOT / "runs" / "bench" / f"translate_{name}"
    train, valid = Path(args.data) / "train.lc.norm.tok", Path(args.data) / "val.lc.norm.tok"
    flags = ["--config", args.config, "--src-lang", "de", "--tgt-lang", "en", *args.extra]
    if args.resume_from:
        flags = args.extra
        if not args.eval_only:
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(ROOT / "runs" / "bench" / f"translate_{args.resume_from}", out)
    kw = {"resume": bool(args.resume_from), "skip_training": args.eval_only}
    result = run_task("translate", train, valid, out, flags, threads=args.threads, **kw)
    beams = {"greedy": evaluate(out, valid, 1, args.threads), "beam5": result["metrics"]}
    summary = {f"{k}_{m}": round(r[m], 2) for k, r in beams.items() for m in ("bleu", "chrf", "sentences_per_second")}
    summary["beam5_gain"] = round(beams["beam5"]["bleu"] - beams["greedy"]["bleu"], 2)
    summary["bleu_signature"] = beams["beam5"]["bleu_signature"]
    setting = {"config": args.config, "extra": args.extra, "resume_from": args.resume_from}
    payload = {"setting": machine() | setting, "valid": summary}
    path = write_result(f"translate_{name}", payload | result | {"greedy": beams["greedy"]})
    print(json.dumps(summary | {"minutes": result["train_minutes"]}))
    print(f"written {path}")


if __name__ == "__main__":
    main()
