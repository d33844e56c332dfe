"""Self-supervised pretraining on the text the project has: a word LM, forward or backward, for the task encoders.

    python benchmarks/pretrain_lm.py --direction forward --threads 1    # 3 epochs, about 52 minutes on one thread
    python benchmarks/pretrain_lm.py --direction backward --threads 1   # (the two side by side on the 2 cores)
    python benchmarks/pretrain_lm.py --level char --direction forward --threads 1 --minutes 45   # character LMs,
    python benchmarks/pretrain_lm.py --level char --direction backward --threads 1 --minutes 45  # for --lm-features

The corpus is the **training** splits only, lower-cased, one sentence a line: PTB (WSJ news), SST-2's sentences (labels
dropped), Multi30k's English captions, CoNLL-2003's English sentences and Inspec's abstracts (1.74M words).
No validation or test text is read, so the tasks' validation scores stay fair. ``backward`` reverses each line's
words: an LM of that text reads right to left, as the backward half of a bidirectional encoder does.

The LM is one tied LSTM layer (``--hidden`` units, embedding of the same size), so a classifier or tagger of one
layer of that size per direction can start from it whole (``--encoder RUN`` of ``rnnkit classify train``), not
just from its embedding. The runs go to runs/bench/pretrain_lm_<direction>; each is an ordinary ``rnnkit lm`` run.

``--finetune-on CORPUS`` then trains the LM further on one corpus's training text alone (ULMFiT's target-task LM
fine-tuning; ``rnnkit lm train --finetune``), into runs/bench/finetune_<level>lm_<corpus>_<direction>::

    python benchmarks/pretrain_lm.py --level char --direction forward --finetune-on sst2 --epochs 3 --lr 0.001

``--level char`` trains character LMs of the same text instead (one LSTM layer of ``--hidden`` units over a 64-wide
character embedding; ``backward`` reverses each line's characters), for the contextual string features of
``rnnkit tag train --lm-features`` (Akbik et al. 2018); they go to runs/bench/pretrain_charlm_<direction>.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


CORPORA = ("ptb", "sst2", "multi30k", "conll2003", "inspec")


def sentences(data: Path, corpora: tuple[str, ...] = CORPORA) -> list[str]:
    """Every training sentence of ``corpora`` (default: all five), lower-cased, words separated by single spaces."""
    lines: list[str] = []
    if "ptb" in corpora:
        lines += (data / "ptb" / "ptb.train.txt").read_text().splitlines()
    if "sst2" in corpora:
        lines += [line.split(" ", 1)[1] for line in (data / "sst2" / "stsa.binary.train").read_text().splitlines()]
    if "multi30k" in corpora:
        lines += (data / "multi30k" / "tok" / "train.lc.norm.tok.en").read_text().splitlines()
    if "conll2003" in corpora:
        words: list[str] = []
        for line in (data / "conll2003" / "eng.train").read_text().splitlines():
            if line.startswith("-DOCSTART-"):
                continue
            if line.strip():
                words.append(line.split(" ", 1)[0])
            elif words:
                lines.append(" ".join(words))
                words = []
    if "inspec" in corpora:
        for line in (data / "inspec" / "train.jsonl").read_text().splitlines():
            lines.append(" ".join(json.loads(line)["tokens"]))
    return [" ".join(line.lower().split()) for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--direction", choices=("forward", "backward"), default="forward")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the corpus")
    parser.add_argument("--minutes", type=float, default=None, help="stop earlier, after this long (--max-minutes)")
    parser.add_argument("--level", choices=("word", "char"), default="word", help="word or character LM")
    parser.add_argument("--hidden", type=int, default=None, help="LSTM units (default: 256 words, 512 characters)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--resume", action="store_true", help="continue the run (exactly as if never stopped)")
    parser.add_argument(
        "--finetune-on",
        choices=CORPORA,
        default=None,
        help="fine-tune the pretrained LM of --level and --direction on this corpus's training text alone",
    )
    parser.add_argument("--lr", type=float, default=0.002, help="Adam's learning rate")
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit lm train, after --")
    args = parser.parse_args()
    if args.finetune_on:
        return finetune(args)
    bench = ROOT / "runs" / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    char = args.level == "char"
    hidden = args.hidden or (512 if char else 256)
    name = f"{'char' * char}{args.direction}"
    corpus, valid = bench / f"pretrain_{name}.txt", bench / f"pretrain_{name}_valid.txt"
    if not args.resume:  # (a resumed run reads the files it started with)
        # PTB's validation text only watches the LM's perplexity (no task is tuned on it)
        ptb_valid = [
            line for line in (Path(args.data) / "ptb" / "ptb.valid.txt").read_text().splitlines() if line.strip()
        ]
        for path, lines in ((corpus, sentences(Path(args.data))), (valid, ptb_valid)):
            write_corpus(path, lines, args.direction, char)
    out = bench / f"pretrain_{'char' * char}lm_{args.direction}"
    command = [sys.executable, "-m", "rnnkit", "lm", "train", "--out", str(out)]
    command += ["--epochs", str(args.epochs)] + (["--max-minutes", str(args.minutes)] if args.minutes else [])
    if args.resume:
        command += ["--resume", *args.extra]
    else:
        command += ["--train", str(corpus), "--valid", str(valid), "--force", "--level", args.level]
        if char:
            command += ["--layers", "1", "--hidden", str(hidden), "--embed", "64", "--bptt", "100"]
        else:
            command += ["--min-freq", "2", "--layers", "1", "--hidden", str(hidden), "--embed", str(hidden)]
            command += ["--tie-weights", "--bptt", "48"]
        command += ["--dropout", "0.1", "--batch-size", "64", "--lr", str(args.lr), "--clip-norm", "1.0"]
        command += ["--no-progress", *args.extra]
    run(command, args.threads)


def finetune(args: argparse.Namespace) -> None:
    """ULMFiT's second stage: the LM of pretrain_lm.py trained further on one task's training text
    (``rnnkit lm train --finetune``), into runs/bench/finetune_<level>lm_<corpus>_<direction>; no validation
    text, so the run keeps its last weights."""
    bench, char = ROOT / "runs" / "bench", args.level == "char"
    source = bench / f"pretrain_{'char' * char}lm_{args.direction}"
    corpus = bench / f"finetune_{'char' * char}{args.direction}_{args.finetune_on}.txt"
    write_corpus(corpus, sentences(Path(args.data), (args.finetune_on,)), args.direction, char)
    out = bench / f"finetune_{'char' * char}lm_{args.finetune_on}_{args.direction}"
    command = [sys.executable, "-m", "rnnkit", "lm", "train", "--out", str(out), "--train", str(corpus)]
    command += ["--finetune", str(source), "--level", args.level, "--epochs", str(args.epochs), "--force"]
    command += ["--bptt", "100" if char else "48", "--batch-size", "64", "--lr", str(args.lr), "--clip-norm", "1.0"]
    command += (["--max-minutes", str(args.minutes)] if args.minutes else []) + ["--no-progress", *args.extra]
    run(command, args.threads)


def write_corpus(path: Path, lines: list[str], direction: str, char: bool) -> None:
    """``lines`` into ``path``, one a line; ``backward`` reverses each line's words (a character LM's line whole,
    spaces too)."""
    words = [line.split() for line in lines]
    if direction == "backward":
        words = [[w[::-1] for w in reversed(line)] if char else list(reversed(line)) for line in words]
    path.write_text("".join(" ".join(w) + "\n" for w in words))
    print(f"{path}: {len(words):,} sentences, {sum(map(len, words)):,} words", flush=True)


def run(command: list[str], threads: int | None) -> None:
    env = dict(os.environ) | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True, env=env)


if __name__ == "__main__":
    main()
