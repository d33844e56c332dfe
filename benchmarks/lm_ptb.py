"""Penn Treebank word-level language model, as a user runs it: ``rnnkit lm train`` then ``rnnkit lm eval``.

    python benchmarks/lm_ptb.py          # Zaremba et al. 2014 "small": configs/lm/ptb_small.toml
    python benchmarks/lm_ptb.py --config configs/lm/ptb_small_tied.toml

Zaremba et al. report validation perplexity 120.7 (test 114.5) for the small setting. Data: ../shared/data/ptb
(train and valid only; the test split is held out). Writes benchmarks/results/lm_ptb_<config>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "ptb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/lm/ptb_small.toml"))
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--out", default=None, help="run folder (default runs/bench/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out (e.g. after Ctrl-C)")
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit lm train, after --")
    args = parser.parse_args()
    name = Path(args.config).stem
    out = Path(args.out or ROOT / "runs" / "bench" / name)
    train, valid = Path(args.data) / "ptb.train.txt", Path(args.data) / "ptb.valid.txt"
    rnnkit = [sys.executable, "-m", "rnnkit", "lm"]
    command = [*rnnkit, "train", "--train", str(train), "--valid", str(valid), "--out", str(out)]
    command += ["--resume"] if args.resume else ["--config", args.config, "--force"]  # a resumed run keeps its config
    command += ["--no-progress", *args.extra]
    print(" ".join(command), flush=True)
    start = time.monotonic()
    subprocess.run(command, check=True)
    minutes = (time.monotonic() - start) / 60
    trainer = json.loads((out / "checkpoint" / "trainer.json").read_text())
    if "seconds" in trainer:  # all training time, across resumes
        minutes = trainer["seconds"] / 60
    result = subprocess.run(
        [*rnnkit, "eval", str(out), "--data", str(valid), "--json"], check=True, capture_output=True
    )
    metrics = json.loads(result.stdout)
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [round(r["valid_ppl"], 2) for r in epochs if "valid_ppl" in r]
    payload = {
        "setting": machine() | {"config": args.config, "extra": args.extra},
        "valid_ppl": round(metrics["ppl"], 2),
        "valid_tokens": metrics["tokens"],
        "train_minutes": round(minutes, 1),
        "valid_ppl_per_epoch": curve,
        "command": " ".join(command),
    }
    path = write_result(f"lm_ptb_{name}", payload)
    print(json.dumps(payload, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
