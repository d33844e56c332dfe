"""Tiny Shakespeare, character level: a 2-layer LSTM trained for at most 30 minutes on this machine.

    python benchmarks/lm_shakespeare.py                 # 30 minutes
    python benchmarks/lm_shakespeare.py --minutes 5     # a quicker look

Reports validation bits per character (and nats per character, the unit char-rnn and nanoGPT quote:
about 1.47 nats for nanoGPT's character model on the same 90/10 split). Data: ../shared/data/tinyshakespeare.
Writes benchmarks/results/lm_shakespeare.json.
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
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench" / "shakespeare"))
    args = parser.parse_args()
    train, valid = DATA / "train.txt", DATA / "valid.txt"
    rnnkit = [sys.executable, "-m", "rnnkit", "lm"]
    # the budget covers everything: training stops a little early so the per-epoch evaluations fit too
    command = [*rnnkit, "train", "--train", str(train), "--valid", str(valid), "--level", "char"]
    command += ["--out", args.out, "--force", "--no-progress", "--cell", "lstm", "--layers", "2"]
    command += ["--hidden", str(args.hidden), "--embed", "64", "--dropout", "0.25", "--optimizer", "adam"]
    command += ["--lr", "0.002", "--batch-size", "32", "--bptt", "100", "--clip-norm", "1.0", "--epochs", "100"]
    command += ["--max-minutes", str(args.minutes * 0.95), "--plateau-factor", "0.5", "--log-every", "100"]
    print(" ".join(command), flush=True)
    start = time.monotonic()
    subprocess.run(command, check=True)
    minutes = (time.monotonic() - start) / 60
    ev = subprocess.run([*rnnkit, "eval", args.out, "--data", str(valid), "--json"], check=True, capture_output=True)
    metrics = json.loads(ev.stdout)
    payload = {
        "setting": machine() | {"minutes_budget": args.minutes, "hidden": args.hidden},
        "valid_bpc": round(metrics["bpc"], 4),
        "valid_nats_per_char": round(metrics["loss"], 4),
        "train_minutes": round(minutes, 1),
        "command": " ".join(command),
    }
    path = write_result("lm_shakespeare", payload)
    print(json.dumps(payload, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
