"""Spoken-word retrieval with a speech autoencoder (Chung et al. 2016, "Audio Word2Vec"), as a user runs it.

    python benchmarks/speech_retrieval.py --threads 1 --minutes 20 [-- more rnnkit speech-ae train flags]

1. ``rnnkit speech make-corpus --words`` into runs/bench/speech_words (once): each of 120 words spoken 8 times
   for training, 3 times for validation and 4 times for test, by voices, speeds and pitches the training split
   never has, with noise (espeak-ng).
2. ``rnnkit speech-ae train`` on train.jsonl (audio only), the reconstruction loss on valid.jsonl choosing the
   weights kept, at most ``--minutes``.
3. ``rnnkit speech-ae eval`` on valid.jsonl and test.jsonl: mean average precision of each utterance as a query
   against the others of its split (relevant: the same word), by the codes' cosine similarity and by the two
   baselines (averaged features; dynamic time warping), each with its time per query.

Writes benchmarks/results/speech_retrieval[_NAME].json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import machine, write_result
from common import rnnkit_cli as rnnkit

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "runs" / "bench" / "speech_words"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget of the autoencoder")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--name", default="", help="suffix of the run folder and the result file")
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit speech-ae train, after --")
    args = parser.parse_args()
    if not (CORPUS / "train.jsonl").exists():
        rnnkit("speech", "make-corpus", "--words", "--out", str(CORPUS), threads=args.threads)
    suffix = f"_{args.name}" if args.name else ""
    out = ROOT / "runs" / "bench" / f"speech_ae{suffix}"
    flags = ["--train", str(CORPUS / "train.jsonl"), "--valid", str(CORPUS / "valid.jsonl"), "--out", str(out)]
    flags += ["--force", "--no-progress", "--epochs", "500", "--batch-size", "32", "--max-minutes", str(args.minutes)]
    flags += ["--early-stop", "20", *args.extra]
    print("rnnkit speech-ae train " + " ".join(flags), flush=True)
    start = time.monotonic()
    rnnkit("speech-ae", "train", *flags, threads=args.threads)
    minutes = (time.monotonic() - start) / 60
    results: dict = {}
    for split in ("valid", "test"):
        for method in ("code", "mean", "dtw"):
            data = str(CORPUS / f"{split}.jsonl")
            done = rnnkit("speech-ae", "eval", str(out), "--data", data, "--method", method, "--json",
                          threads=args.threads, capture=True)  # fmt: skip
            results.setdefault(split, {})[method] = json.loads(done)
    table = {
        split: {m: {"map": round(r["map"], 4), "ms_per_query": round(1000 * r["seconds_per_query"], 2)}
                for m, r in methods.items()}
        for split, methods in results.items()
    }  # fmt: skip
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    curve = [round(r["valid_loss"], 4) for r in records if "valid_loss" in r]
    payload = {"setting": machine() | {"flags": flags, "threads": args.threads}, "retrieval": table}
    payload |= {"train_minutes": round(minutes, 1), "valid_loss_per_epoch": curve, "evals": results}
    path = write_result(f"speech_retrieval{suffix}", payload)
    print(json.dumps(table, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
