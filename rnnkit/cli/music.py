"""``rnnkit music train|eval|generate``: polyphonic music on piano rolls (JSB Chorales and the like)."""

from __future__ import annotations

import argparse
import json
import sys

import torch
from tqdm import tqdm

from rnnkit.cli.common import add_eval_verb, add_group, add_train_verb, check_batch_size, train_verb
from rnnkit.data.music import chord_roll, read_midi, roll_to_pitches, write_midi
from rnnkit.errors import RnnkitError
from rnnkit.io import check_output_path
from rnnkit.tasks import music_run
from rnnkit.tasks.music_run import load_run

RAW = argparse.RawDescriptionHelpFormatter
JSB = "../shared/data/jsb_chorales"
MAX_STEPS = 10**6  # about 6 days of music at 120 bpm: far past any use, and the roll stays under 400 MB

TRAIN_EXAMPLE = f"""examples:
  rnnkit music train --train {JSB}/train.json --valid {JSB}/valid.json --out runs/jsb \\
      --cell gru --hidden 300 --dropout 0.3 --transpose 5 --epochs 60
  rnnkit music train --out runs/jsb --resume --epochs 80      # continue a stopped run"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "music", "polyphonic music (88-key piano rolls): train, eval, generate")
    add_train_verb(verbs, "train a next-step piano-roll model", TRAIN_EXAMPLE, music_run.SPEC.sections, train)

    add_eval_verb(
        verbs,
        "NLL per time step of piano rolls",
        f"rnnkit music eval runs/jsb --data {JSB}/valid.json --json",
        "JSON piano rolls to evaluate on",
        "sequences",
        evaluate,
    )

    p = verbs.add_parser(
        "generate",
        help="continue a seed (a chord or a MIDI file) and write a MIDI file",
        epilog="examples:\n  rnnkit music generate runs/jsb --seed-chord 60,64,67 --steps 64 --out chorale.mid\n"
        "  rnnkit music generate runs/jsb --seed-midi opening.mid --steps 32 --temperature 0.8 --out more.mid",
        formatter_class=RAW,
    )
    p.add_argument("run", help="run folder")
    seed = p.add_mutually_exclusive_group(required=True)
    seed.add_argument("--seed-chord", help="MIDI pitches of a one-step seed, comma-separated (60,64,67 = C major)")
    seed.add_argument("--seed-midi", help="a MIDI file to continue (one step per quarter note)")
    p.add_argument("--steps", type=int, default=64, help="steps to generate after the seed (default 64)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 takes keys with p > 1/2; below 1 sharper")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sampling")
    p.add_argument("--out", required=True, help="MIDI file to write (the seed and the continuation)")
    p.add_argument("--json", action="store_true", help="also print the steps' pitches as JSON")
    p.set_defaults(func=generate)


def train(args: argparse.Namespace) -> int:
    return train_verb(args, music_run.SPEC)


def evaluate(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    result = load_run(args.run, verb="eval").evaluate(args.data, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result))
    else:
        nll, steps, seqs = result["nll"], result["steps"], result["sequences"]
        print(f"{args.data}: NLL per time step {nll:.4f} ({steps} steps, {seqs} sequences)")
    return 0


def generate(args: argparse.Namespace) -> int:
    """Sample with a progress bar; Ctrl-C stops and still writes the MIDI file of what was made."""
    if not 0 <= args.steps <= MAX_STEPS:
        raise RnnkitError(f"--steps must lie in [0, {MAX_STEPS:,}] (one step is a quarter note), got {args.steps}")
    out = check_output_path(args.out, ".mid")
    run = load_run(args.run)
    seed = read_midi(args.seed_midi) if args.seed_midi else chord_roll(_pitches(args.seed_chord))
    if len(seed) == 0:
        raise RnnkitError(f"{args.seed_midi}: no notes to start from")
    made, interrupted = [seed], False
    steps = run.stream(seed, args.steps, temperature=args.temperature, sample_seed=args.seed)
    bar = tqdm(steps, total=args.steps, desc="generating", unit="step", file=sys.stderr, disable=args.steps < 512)
    try:
        for step in bar:
            made.append(step)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    roll = torch.cat(made)
    write_midi(roll, out)
    if args.json:
        print(json.dumps({"seed_steps": len(seed), "steps": roll_to_pitches(roll)}))
    generated = len(made) - 1
    print(f"wrote {len(seed)} seed + {generated} generated steps to {out}", file=sys.stderr)
    if interrupted:
        print(f"rnnkit: interrupted after {generated} of {args.steps} steps; the MIDI file holds them", file=sys.stderr)
        return 130
    return 0


def _pitches(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise RnnkitError(f"--seed-chord expects comma-separated MIDI pitches like 60,64,67, got {text!r}") from None
