"""Speech recognition with CTC on the default espeak-ng corpus, as a user runs it.

    python benchmarks/ctc_speech.py --threads 2 --minutes 60

1. ``rnnkit speech make-corpus --default`` into runs/bench/speech_corpus (once; about 1,660 utterances).
2. ``rnnkit ctc train`` on train.jsonl, validated on valid.jsonl (held-out voices), at most ``--minutes``.
3. A character language model on the training transcripts (``rnnkit lm train --level char``, a few minutes).
4. ``rnnkit ctc eval`` on valid.jsonl: greedy, prefix beam 8, and beam 8 with the LM fused at weights 0.25, 0.5
   and 1, each with CER, WER and the real-time factor. The weight with the lowest validation CER is the one
   reported on test.jsonl (other held-out voices, never used for a choice), once, with greedy and beam 8.

Writes benchmarks/results/ctc_speech.json. Goals (issue 10): CER 3% or less, WER 8% or less, real-time factor
0.05 or less.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import machine, run_task, write_result
from common import rnnkit_cli as rnnkit

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "runs" / "bench" / "speech_corpus"


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
    searches = {"greedy": [], "beam8": ["--beam", "8"]}
    searches |= {f"beam8_lm{w}": ["--beam", "8", "--lm", str(lm), "--lm-weight", str(w)] for w in (0.25, 0.5, 1.0)}

    def evaluate(data: Path, names: list[str]) -> dict:
        return {
            name: json.loads(rnnkit("ctc", "eval", str(out), "--data", str(data), "--json", *searches[name],
                                    threads=args.threads, capture=True))
            for name in names
        }  # fmt: skip

    scores = evaluate(valid, list(searches))
    best_lm = min((n for n in scores if "_lm" in n), key=lambda n: scores[n]["cer"])
    tests = evaluate(CORPUS / "test.jsonl", ["greedy", "beam8", best_lm])
    keep = lambda evals: {k: {m: v[m] for m in ("cer", "wer", "real_time_factor")} for k, v in evals.items()}  # noqa: E731
    summary = {"valid": keep(scores), "test": keep(tests), "lm_weight_chosen_on_valid": best_lm}
    payload = {"setting": machine() | {"flags": flags}} | summary | {"evals": scores, "test_evals": tests} | result
    path = write_result("ctc_speech", payload)
    print(json.dumps(summary | {"minutes": result["train_minutes"]}))
    print(f"written {path}")


if __name__ == "__main__":
    main()
