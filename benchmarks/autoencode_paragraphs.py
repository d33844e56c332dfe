"""Paragraph autoencoders (Li, Luong and Jurafsky 2015) on real paragraphs: Tiny Shakespeare's speeches.

    python benchmarks/autoencode_paragraphs.py --threads 1 --run hierarchical   # and, beside it:
    python benchmarks/autoencode_paragraphs.py --threads 1 --run flat

A speech is a paragraph and its verse lines are its sentences: each speech of 2 to 6 lines of the train and valid
splits, the speaker's name dropped, lowercased, punctuation split off the words. Two autoencoders write each
valid speech back from one code, with the same sizes and the same minutes of training:

- ``hierarchical`` (``rnnkit autoencode train --hierarchical``): words -> a code per line -> a code for the
  speech -> line codes -> words, as Li et al.'s hierarchical model (without attention);
- ``flat``: the standard sequence autoencoder over the whole speech read as one sequence, ``|`` between lines
  (Li et al.'s "standard" baseline).

Scored on valid: sacrebleu BLEU of the reconstructions against the speeches, both read as plain words (line breaks
and ``|`` removed), the share rebuilt exactly, and the share whose number of lines is right. Writes
benchmarks/results/autoencode_paragraphs_<run>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

from common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare"
WORK = ROOT / "runs" / "bench" / "paragraphs"
SIZES = ["--cell", "lstm", "--hidden", "256", "--embed", "128", "--min-freq", "2", "--dropout", "0.2"]
TRAIN = ["--batch-size", "32", "--lr", "0.001", "--epochs", "100", "--plateau-factor", "0.5"]
TRAIN += ["--plateau-patience", "1"]


def speeches(path: Path) -> list[list[str]]:
    """The speeches of 2-6 lines, each a list of lowercased lines with punctuation split off."""
    out = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        if lines and lines[0].endswith(":"):
            lines = lines[1:]
        if 2 <= len(lines) <= 6:
            out.append([" ".join(re.findall(r"[a-z']+|[^\sa-z']", line.lower())) for line in lines])
    return out


def write_data() -> dict[str, dict[str, Path]]:
    WORK.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Path]] = {"hierarchical": {}, "flat": {}}
    for split in ("train", "valid"):
        paragraphs = speeches(DATA / f"{split}.txt")
        files["hierarchical"][split] = WORK / f"{split}.paragraphs.txt"
        files["hierarchical"][split].write_text("".join("\n".join(p) + "\n\n" for p in paragraphs), encoding="utf-8")
        files["flat"][split] = WORK / f"{split}.flat.txt"
        files["flat"][split].write_text("".join(" | ".join(p) + "\n" for p in paragraphs), encoding="utf-8")
    return files


def words(text: str) -> str:
    return " ".join(w for w in text.split() if w != "|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", choices=("hierarchical", "flat"), required=True)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--score-only", action="store_true", help="score the run already trained, do not train")
    args = parser.parse_args()
    files = write_data()[args.run]
    env = dict(os.environ) | ({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})
    out = ROOT / "runs" / "bench" / f"autoencode_paragraphs_{args.run}"
    flags = [*SIZES, *TRAIN, "--max-minutes", str(args.minutes)]
    flags += ["--hierarchical", "--max-sentences", "8"] if args.run == "hierarchical" else ["--max-length", "120"]
    rnnkit = [sys.executable, "-m", "rnnkit", "autoencode"]
    command = [*rnnkit, "train", "--train", str(files["train"]), "--valid", str(files["valid"]), "--out", str(out)]
    command += ["--force", "--no-progress", *flags]
    print(" ".join(command), flush=True)
    if not args.score_only:
        subprocess.run(command, check=True, env=env)
    summary = score(out, files["valid"], speeches(DATA / "valid.txt"), args.run, env)
    # the first as many training speeches, which the autoencoder has seen: how much it memorised
    seen = speeches(DATA / "train.txt")[: summary["paragraphs"]]
    part = WORK / f"train_part.{args.run}.txt"
    if args.run == "hierarchical":
        part.write_text("".join("\n".join(p) + "\n\n" for p in seen), encoding="utf-8")
    else:
        part.write_text("".join(" | ".join(p) + "\n" for p in seen), encoding="utf-8")
    train_summary = score(out, part, seen, args.run, env)
    log = out / "metrics.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    epochs = [r for r in records if any(k.startswith("valid_") for k in r)]
    payload = {"setting": machine() | {"command": " ".join(command), "threads": args.threads}, "valid": summary}
    path = write_result(f"autoencode_paragraphs_{args.run}", payload | {"train_part": train_summary, "epochs": epochs})
    print(json.dumps({"valid": summary, "train_part": train_summary}))
    print(f"written {path}")


def score(out: Path, path: Path, gold: list[list[str]], run: str, env: dict) -> dict:
    """BLEU, chrF, exact and line-count shares of the run's beam-5 reconstructions of ``path`` (``gold``)."""
    from rnnkit.tasks.seq2seq.bleu import corpus_scores

    predict = [sys.executable, "-m", "rnnkit", "autoencode", "predict", str(out), str(path), "--beam", "5"]
    written = subprocess.run(predict, check=True, capture_output=True, env=env, text=True).stdout
    if run == "hierarchical":
        rebuilt = [p.split("\n") for p in written.strip("\n").split("\n\n")]
    else:
        rebuilt = [[s.strip() for s in line.split(" | ")] for line in written.splitlines()]
    assert len(rebuilt) == len(gold), (len(rebuilt), len(gold))
    flat_rebuilt, flat_gold = [words(" ".join(p)) for p in rebuilt], [words(" ".join(p)) for p in gold]
    with warnings.catch_warnings():  # tokenised text, scored as it is (the warning says so for every line)
        warnings.simplefilter("ignore")
        scores = corpus_scores(flat_rebuilt, flat_gold)
    summary = {
        "paragraphs": len(gold),
        "bleu": round(scores["bleu"], 2),
        "chrf": round(scores["chrf"], 2),
        "exact": round(sum(r == g for r, g in zip(flat_rebuilt, flat_gold, strict=True)) / len(gold), 4),
        "line_count_right": round(sum(len(r) == len(g) for r, g in zip(rebuilt, gold, strict=True)) / len(gold), 4),
        "bleu_signature": scores["bleu_signature"],
    }
    return summary


if __name__ == "__main__":
    main()
