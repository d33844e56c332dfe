"""Speech recognition with CTC on the default espeak-ng corpus, as a user runs it.

    python benchmarks/ctc_speech.py --threads 2 --minutes 60

1. ``rnnkit speech make-corpus --default`` into runs/bench/speech_corpus (once; about 1,660 utterances).
2. ``rnnkit ctc train`` on train.jsonl, validated on valid.jsonl (held-out voices), at most ``--minutes``.
3. A character language model on the training transcripts (``rnnkit lm train --level char``, a few minutes).
4. ``rnnkit ctc eval`` on valid.jsonl: greedy, prefix beam 8, and beam 8 with the LM fused, each with CER, WER
   and the real-time factor. The test split (other held-out voices) is kept for the final figure.

Writes benchmarks/results/ctc_speech.json. Goals (issue 10): CER 3% or less, WER 8% or less, real-time factor
0.05 or less.
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
CORPUS = ROOT / "runs" / "bench" / "speech_corpus"


def rnnkit(*args: str, threads: int | None, capture: bool = False) -> str:
    env = dict(os.environ) | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    done = subprocess.run([sys.executable, "-m", "rnnkit", *args], check=True, env=env, capture_output=capture)
    return done.stdout.decode() if capture else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget of the recogniser")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit ctc train, after --")
    args = parser.parse_args()
    if not (CORPUS / "train.jsonl").exists():
        rnnkit("speech", "make-corpus", "--default", "--out", str(CORPUS), threads=args.threads)
    train, valid = CORPUS / "train.jsonl", CORPUS / "valid.jsonl"
    out = ROOT / "runs" / "bench" / "ctc"
    flags = ["--hidden", "256", "--layers", "3", "--epochs", "200", "--batch-size", "16", "--lr", "0.001"]
    flags += ["--max-minutes", str(args.minutes), "--early-stop", "10", *args.extra]
    result = run_task("ctc", train, valid, out, flags, threads=args.threads)
    text = ROOT / "runs" / "bench" / "speech_text.txt"
    text.write_text("".join(json.loads(line)["text"] + "\n" for line in train.read_text().splitlines()))
    lm = ROOT / "runs" / "bench" / "speech_charlm"
    rnnkit("lm", "train", "--train", str(text), "--level", "char", "--out", str(lm), "--force", "--hidden", "128",
           "--epochs", "20", "--batch-size", "16", "--bptt", "50", "--no-progress", threads=args.threads)  # fmt: skip
    scores = {}
    for name, search in {"greedy": [], "beam8": ["--beam", "8"], "beam8_lm": ["--beam", "8", "--lm", str(lm)]}.items():
        scores[name] = json.loads(rnnkit("ctc", "eval", str(out), "--data", str(valid), "--json", *search,
                                         threads=args.threads, capture=True))  # fmt: skip
    summary = {k: {m: v[m] for m in ("cer", "wer", "real_time_factor")} for k, v in scores.items()}
    payload = {"setting": machine() | {"flags": flags}, "valid": summary, "evals": scores} | result
    path = write_result("ctc_speech", payload)
    print(json.dumps(summary | {"minutes": result["train_minutes"]}))
    print(f"written {path}")


if __name__ == "__main__":
    main()
