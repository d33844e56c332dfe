"""``rnnkit demo``: the main job on a corpus every Python machine has.

It trains a character-level LSTM language model on the Python standard library's own source files (no
download), with a progress bar, for a fixed number of steps (``--steps``, default 2400: about three
minutes on 2 cores) under a fixed seed, on 2 threads, so that every machine trains the same model
and prints the same samples and scores, however busy it is. It then prints samples at two temperatures
and, for pairs of lines of which one is Python and the other a scramble of it, each line's
log-probability and the margin by which the model prefers the Python one. The run folder (default
``runs/demo``) is a normal run: ``rnnkit lm sample runs/demo --prime "def "`` works on it afterwards.
"""

from __future__ import annotations

import argparse
import sysconfig
from pathlib import Path

import torch

from rnnkit.config import build
from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm_run import SECTIONS, load_run, train_lm

#: (Python, the same tokens scrambled): the demo's model should give the first the higher probability
PAIRS = [
    ("for i in range(len(items)):", "for i in len(range(items)):"),
    ("return self._value", "self._value return"),
    ("def __init__(self, name):", "def __init__(self, name:)"),
    ("import os.path", "import path.os"),
]
DEMO_THREADS = 2  # the same thread count everywhere: float sums split the same way, so the same numbers


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train a char-level LSTM on the Python standard library's source, then sample and score",
        description=__doc__,
        epilog="example: rnnkit demo --steps 100 --out /tmp/demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/demo", help="run folder (overwritten; default runs/demo)")
    p.add_argument("--steps", type=int, default=2400, help="training steps (default 2400: about 3 minutes, 2 cores)")
    p.add_argument("--corpus-mb", type=float, default=2.0, help="megabytes of source to read (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def stdlib_corpus(out: Path, megabytes: float) -> tuple[Path, Path]:
    """Write train.txt and valid.txt (the last 5%) from the stdlib's top-level modules, in name order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.is_file())
    if not files:
        raise RnnkitError(f"no Python source found in {stdlib}; run the demo on a full Python install")
    parts, size = [], 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        size += len(text)
        if size >= megabytes * 1e6:
            break
    text = "".join(parts)
    cut = int(len(text) * 0.95)
    out.mkdir(parents=True, exist_ok=True)
    train, valid = out / "corpus.train.txt", out / "corpus.valid.txt"
    train.write_text(text[:cut], encoding="utf-8")
    valid.write_text(text[cut:], encoding="utf-8")
    return train, valid


def run(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise RnnkitError(f"--steps must be at least 1, got {args.steps}")
    torch.set_num_threads(DEMO_THREADS)
    out = Path(args.out)
    train, valid = stdlib_corpus(out.parent / (out.name + "-corpus"), args.corpus_mb)
    print(f"corpus: {train.stat().st_size / 1e6:.1f} MB of the standard library's source ({train.parent})")
    cfg = {
        "data": build(SECTIONS["data"], ({"train": str(train), "valid": str(valid), "level": "char"}, "demo")),
        "model": build(SECTIONS["model"], ({"cell": "lstm", "hidden": 256, "layers": 2, "embed": 64}, "demo")),
        "train": build(
            SECTIONS["train"],
            (
                {
                    "epochs": 100,
                    "max_steps": args.steps,
                    "seed": args.seed,
                    "batch_size": 32,
                    "bptt": 100,
                    "optimizer": "adam",
                    "lr": 3e-3,
                    "clip_norm": 1.0,
                    "log_every": 20,
                },
                "demo",
            ),
        ),
    }
    summary = train_lm(cfg, out, force=True)
    lm = load_run(out, weights="last")
    result = lm.evaluate(str(valid))
    print(f"\ntrained {summary['step']} steps; validation: {result['bpc']:.3f} bits per character\n")
    for temperature in (0.7, 1.0):
        print(f"--- sample at temperature {temperature} " + "-" * 40)
        print(lm.sample("def ", length=400, temperature=temperature, seed=args.seed))
    print("--- which line looks more like Python? log-probability (nats) of each " + "-" * 10)
    for good, bad in PAIRS:
        a, b = (r["logprob"] for r in lm.score([good, bad]))
        verdict = "right" if a > b else "WRONG"
        print(f"  {a:8.2f}  {good:30s} {b:8.2f}  {bad:30s} margin {a - b:6.2f}  {verdict}")
    print(f"\nthe run is in {out}: try  rnnkit lm sample {out} --prime 'class ' --temperature 0.7")
    return 0
