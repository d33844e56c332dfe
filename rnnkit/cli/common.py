"""What every task's command group shares: the group, the train verb (flags from the config dataclasses),
the eval verb, the configs of a run (defaults < file < flags; --resume's rules) and the closing line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnkit.config import add_flags, build, pick, read_config_file, to_dict
from rnnkit.errors import RnnkitError
from rnnkit.tasks import runs
from rnnkit.tasks.base import TaskSpec
from rnnkit.train import distributed as dist
from rnnkit.train import run_folder

RAW = argparse.RawDescriptionHelpFormatter


def add_group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """A command group (``rnnkit NAME VERB``); returns the subparsers its verbs are added to."""
    return sub.add_parser(name, help=help).add_subparsers(dest="verb", required=True, metavar="VERB")


def add_train_verb(verbs: argparse._SubParsersAction, help: str, example: str, sections: dict, func: Any) -> None:
    """The ``train`` verb of a task: the run folder, config file, resume/force, and one flag per config field."""
    p = verbs.add_parser("train", help=help, epilog=example, formatter_class=RAW)
    p.add_argument("--out", required=True, help="run folder: config, checkpoints, metrics")
    p.add_argument("--config", help="a TOML or JSON file with [data], [model] and [train] tables; flags override it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite the run in --out")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    for name, cls in sections.items():
        add_flags(p.add_argument_group(f"{name} options"), cls)
    p.set_defaults(func=func)


def resolve_configs(args: argparse.Namespace, run_dir: Path, spec: TaskSpec) -> dict[str, Any]:
    """defaults < config file < flags; on --resume the run's saved config, where only [train] may change."""
    sections = spec.sections
    if args.resume:
        run_folder.check_target(run_dir, resume=True, force=args.force, command=f"{spec.command} train")
        if args.config:
            raise RnnkitError(
                f"--resume continues with {run_dir / 'config.json'}: drop --config (change training options "
                "with flags, e.g. --epochs)"
            )
        saved = runs.read_configs(spec, run_dir, verb="train --resume --out")
        for name in sections:
            if name == "train":
                continue
            changed = {k: v for k, v in pick(args, sections[name]).items() if getattr(saved[name], k) != v}
            if changed:
                flags = ", ".join("--" + k.replace("_", "-") for k in changed)
                raise RnnkitError(f"--resume keeps the run's {name} options; drop {flags}")
        given = pick(args, sections["train"])
        if given.get("optimizer", saved["train"].optimizer) != saved["train"].optimizer:
            raise RnnkitError(
                f"--resume continues the run's {saved['train'].optimizer} optimizer state: drop --optimizer, "
                "or start a new run"
            )
        source = f"{run_dir / 'config.json'} [train]"
        saved_train = to_dict(saved["train"])
        return saved | {
            "train": build(sections["train"], (saved_train, source), (pick(args, sections["train"]), "command line"))
        }
    file = read_config_file(args.config) if args.config else {}
    unknown = set(file) - set(sections)
    if unknown:
        tables = ", ".join(f"[{name}]" for name in sections)
        raise RnnkitError(f"{args.config}: unknown table(s) {sorted(unknown)}; use {tables}")
    for name, values in file.items():
        if not isinstance(values, dict):
            raise RnnkitError(f"{args.config}: [{name}] must be a table of options, got {type(values).__name__}")
    return {
        name: build(cls, (file.get(name, {}), f"{args.config} [{name}]"), (pick(args, cls), "command line"))
        for name, cls in sections.items()
    }


def add_eval_verb(
    verbs: argparse._SubParsersAction, help: str, example: str, data_help: str, unit: str, func: Any
) -> argparse.ArgumentParser:
    """The ``eval`` verb of a task: a run folder, ``--data``, ``--batch-size`` (``unit`` per batch) and ``--json``;
    returns the parser for the task's own options."""
    p = verbs.add_parser("eval", help=help, epilog=f"example:\n  {example}", formatter_class=RAW)
    p.add_argument("run", help="run folder")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--batch-size", type=int, default=None, help=f"{unit} per batch (default: the run's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=func)
    return p


def add_ensemble(p: argparse.ArgumentParser, how: str) -> None:
    """``--ensemble RUN ...``: more runs answering with the run argument as one; ``how`` says how."""
    p.add_argument("--ensemble", nargs="+", default=[], metavar="RUN", help=f"more runs of the same task, {how}")


def check_batch_size(batch_size: int | None) -> None:
    if batch_size is not None and batch_size < 1:
        raise RnnkitError(f"--batch-size must be at least 1, got {batch_size}")


def train_verb(args: argparse.Namespace, spec: TaskSpec) -> int:
    """``rnnkit TASK train``: resolve the configs, print them (``--print-config``) or train; the closing line
    (on the main process under torchrun) and exit code 130 when interrupted."""
    run_dir = Path(args.out)
    cfg = resolve_configs(args, run_dir, spec)
    if args.print_config:
        print(json.dumps({k: to_dict(v) for k, v in cfg.items()}, indent=2))
        return 0
    summary = runs.train(spec, cfg, run_dir, resume=args.resume, force=args.force)
    if dist.rank_world()[0] == 0:
        print(summary_line(summary, run_dir, f"{spec.command} train"), file=sys.stderr)
    dist.teardown()
    return 130 if summary["reason"].startswith("interrupted") else 0


def summary_line(summary: dict[str, Any], run_dir: Path, command: str) -> str:
    """The line a finished or stopped training ends with; ``command`` is how to continue it."""
    reason, step = summary["reason"], summary["step"]
    if reason == "done" or reason.startswith("early stop"):
        return f"finished ({reason}) after {step} steps; best weights in {run_dir / 'best.safetensors'}"
    more = f" --max-steps N (N > {step})" if reason.startswith("reached --max-steps") else ""
    return (
        f"stopped at step {step} ({reason}); checkpoint saved: continue with {command} --out {run_dir} --resume{more}"
    )


def stdin_lines() -> Iterator[str]:
    """The lines of stdin as they come, without their line ends, read as UTF-8: a line that is not UTF-8 is one
    error naming it (``stdin:2: ...``), not a bare codec message.

    Reads the byte stream under ``sys.stdin`` where there is one (a pipe, a terminal); a replaced text stream
    (``io.StringIO`` in tests) is read as text.
    """
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:
        yield from (line.rstrip("\r\n") for line in sys.stdin)
        return
    for n, line in enumerate(raw, 1):
        try:
            yield line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            raise RnnkitError(
                f"stdin:{n}: not UTF-8 text (0x{line[err.start]:02x} at byte {err.start + 1} of the line): "
                "pipe UTF-8 text, e.g. through iconv -f latin1 -t utf-8"
            ) from None


def save_npy(path: Path, array: Any) -> None:
    """Write a numpy array to ``path`` (no pickle): the writer :func:`rnnkit.io.write_atomically` calls."""
    import numpy as np

    with open(path, "wb") as f:  # a file object: np.save would add .npy to the temporary file's name
        np.save(f, array, allow_pickle=False)
