"""SST-2 sentence-level sentiment, as a user runs it: ``rnnkit classify train`` then ``rnnkit classify eval --json``.

    python benchmarks/classify_sst2.py
    python benchmarks/classify_sst2.py --config configs/classify/sst2_bilstm_attn.toml --threads 1
    python benchmarks/classify_sst2.py --pretrain-minutes 10   # embeddings from a word LM on PTB + SST-2 train text
    python benchmarks/classify_sst2.py --config configs/classify/sst2_bilstm_lm.toml --pretrained  # ULMFiT's way:
        # the encoder from the forward and backward LMs of benchmarks/pretrain_lm.py (run it first)
    python benchmarks/classify_sst2.py --char-lms   # + frozen character LMs' features (pretrain_lm.py --level char)
    python benchmarks/classify_sst2.py --char-lms sst2   # those LMs fine-tuned on SST-2's text (--finetune-on)

6,920 training sentences (no phrase labels), 872 dev sentences; the test split is held out. Published test
accuracy: Kim 2014 CNN from random vectors 82.7; Tai et al. 2015 LSTM 84.9 / BiLSTM 87.5 (GloVe and phrase labels).
Writes benchmarks/results/classify_<config>.json (the configs are named sst2_...).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from common import add_char_lms_flag, char_lm_features, machine, pretrained_encoders, run_task, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "sst2"
PTB = ROOT.parent / "shared" / "data" / "ptb"


def pretrain(args: argparse.Namespace, embed: int) -> Path:
    """A word LM on PTB's training text and the SST-2 training sentences (labels dropped), for --pretrain-minutes:
    self-supervised pretraining on text the project has; its input embedding starts the classifier's."""
    corpus = ROOT / "runs" / "bench" / "sst2_lm_corpus.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    sst = [line.split(" ", 1)[1].lower() for line in (Path(args.data) / "stsa.binary.train").read_text().splitlines()]
    corpus.write_text((PTB / "ptb.train.txt").read_text() + "\n".join(sst) + "\n")
    out = ROOT / "runs" / "bench" / "sst2_lm"
    command = [sys.executable, "-m", "rnnkit", "lm", "train", "--train", str(corpus), "--out", str(out), "--force"]
    command += ["--level", "word", "--embed", str(embed), "--hidden", "256", "--optimizer", "adam", "--lr", "0.002"]
    command += ["--max-minutes", str(args.pretrain_minutes), "--epochs", "50", "--no-progress"]
    env = dict(os.environ) | ({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True, env=env)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/classify/sst2_bilstm_attn.toml"))
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument(
        "--pretrain-minutes", type=float, default=0, help="first pretrain a word LM this long (see pretrain())"
    )
    parser.add_argument(
        "--pretrained", action="store_true", help="start the encoder from benchmarks/pretrain_lm.py's two LMs"
    )
    add_char_lms_flag(parser)
    parser.add_argument("--name", default=None, help="the run's name in runs/bench (default: the config's)")
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit classify train, after --")
    args = parser.parse_args()
    name = args.name or Path(args.config).stem
    if args.pretrain_minutes:
        embed = tomllib.loads(Path(args.config).read_text())["model"]["embed"]
        args.extra = [*args.extra, "--embeddings", str(pretrain(args, embed))]
        name += "_pretrained"
    if args.pretrained:
        args.extra = [*pretrained_encoders(), *args.extra]
    if args.char_lms:
        args.extra = [*char_lm_features(args.char_lms), *args.extra]
        name += "_charlm" + ("" if args.char_lms == "pretrain" else f"_{args.char_lms}")
    out = ROOT / "runs" / "bench" / name
    train, valid = Path(args.data) / "stsa.binary.train", Path(args.data) / "stsa.binary.dev"
    result = run_task("classify", train, valid, out, ["--config", args.config, *args.extra], threads=args.threads)
    summary = {k: result["metrics"].get(k) for k in ("accuracy", "macro_f1")}
    payload = {"setting": machine() | {"config": args.config, "extra": args.extra}, "valid": summary} | result
    path = write_result(f"classify_{name}", payload)  # classify_sst2_bilstm_attn
    print(json.dumps(summary | {"minutes": result["train_minutes"]}))
    print(f"written {path}")


if __name__ == "__main__":
    main()
