"""``rnnkit ensemble RUN RUN2 ... --out DIR``: trained taggers or classifiers kept as one run folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLE = """examples:
  rnnkit ensemble runs/ner-seed0 runs/ner-seed1 runs/ner-seed2 --out runs/ner-ensemble
  rnnkit tag eval runs/ner-ensemble --data ../shared/data/conll2003/eng.testa --json   # as --ensemble answers
  rnnkit tag predict runs/ner-ensemble sentences.txt
  rnnkit serve runs/ner-ensemble; rnnkit export runs/ner-ensemble --format onnx --out ner.onnx
  rnnkit ensemble runs/ner-ensemble runs/ner-seed3 --out runs/ner-4    # an ensemble's runs join the new one

The folder holds a copy of each run's config, vocabularies and best weights (no optimizer state), so it stays
whole when the runs are moved or deleted. See rnnkit tag eval --help for how the runs answer as one."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="keep several trained taggers or classifiers as one run folder that answers as their ensemble",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders of one task (tag or classify), two or more")
    p.add_argument("--out", required=True, help="the ensemble folder to write (new or empty)")
    p.add_argument("--force", action="store_true", help="replace an ensemble folder already at --out")
    p.set_defaults(func=ensemble)


def ensemble(args: argparse.Namespace) -> int:
    from rnnkit.errors import RnnkitError
    from rnnkit.tasks import ensemble_folder
    from rnnkit.tasks.registry import ENSEMBLES, ensemble_task

    out = Path(args.out)
    ensemble_folder.check_target(out, force=args.force)  # before minutes of loading: a refusal comes first
    runs = ensemble_folder.expand(args.runs)
    seen: dict[Path, Path] = {}
    for run in runs:
        if run.resolve() in seen:
            raise RnnkitError(f"{run} is given twice (as {seen[run.resolve()]}): each run joins an ensemble once")
        seen[run.resolve()] = run
    if len(runs) < 2:
        raise RnnkitError("an ensemble needs two runs or more: rnnkit ensemble RUN RUN2 ... --out DIR")
    task = ensemble_task(runs, lead="rnnkit ensemble", what="keeps")
    ENSEMBLES[task](runs)  # each run loads (weights intact) and they answer as one (same tags or labels)
    ensemble_folder.write(out, runs, task, sources=args.runs, force=args.force)
    made = ensemble_folder.describe(out)
    print(
        f"wrote {out}: an ensemble of {len(runs)} {task} runs ({', '.join(made['members'])}), "
        f"{made['bytes'] / 1e6:.1f} MB; use it as a run: rnnkit {task} eval {out} --data ...",
        file=sys.stderr,
    )
    return 0
