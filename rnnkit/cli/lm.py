"""``rnnkit lm train|eval|sample|score``: config -> objects -> one library call each."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rnnkit.config import add_flags, build, pick, read_config_file, to_dict
from rnnkit.errors import RnnkitError
from rnnkit.tasks import lm_run, runs
from rnnkit.tasks.base import TaskSpec
from rnnkit.tasks.lm_run import load_run, train_lm
from rnnkit.train import distributed as dist
from rnnkit.train import run_folder

RAW = argparse.RawDescriptionHelpFormatter

TRAIN_EXAMPLE = """examples:
  rnnkit lm train --train input.txt --valid valid.txt --level char --out runs/shakespeare --epochs 5
  rnnkit lm train --train ptb.train.txt --valid ptb.valid.txt --level word --out runs/ptb \\
      --config configs/lm/ptb_small.toml
  rnnkit lm train --out runs/ptb --resume --max-steps 40     # continue a stopped run
  torchrun --nproc-per-node 2 -m rnnkit lm train ...         # data parallel (see rnnkit.train.distributed)"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "lm", "language models: train, eval, sample, score")
    add_train_verb(verbs, "train a language model", TRAIN_EXAMPLE, lm_run.SPEC.sections, train)

    p = verbs.add_parser(
        "eval",
        help="perplexity (and bits per character) of a text",
        epilog="example:\n  rnnkit lm eval runs/ptb --data ptb.valid.txt --json",
        formatter_class=RAW,
    )
    p.add_argument("run", help="run folder")
    p.add_argument("--data", required=True, help="text file to evaluate on")
    p.add_argument("--batch-size", type=int, default=None, help="parallel streams (default: the run's eval batch size)")
    p.add_argument("--encoding-errors", default="strict", choices=("strict", "replace", "ignore"))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=evaluate)

    p = verbs.add_parser(
        "sample",
        help="generate text (one-to-many)",
        formatter_class=RAW,
        epilog="examples:\n  rnnkit lm sample runs/shakespeare --prime 'ROMEO:' --length 300 --temperature 0.8\n"
        "  rnnkit lm sample runs/ptb --prime 'the company' --top-p 0.9 --json",
    )
    p.add_argument("run", help="run folder")
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument("--length", type=int, default=200, help="tokens to generate at most (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 is greedy; below 1 sharper, above 1 flatter")
    p.add_argument("--top-k", type=int, default=None, help="draw from the k most likely tokens only")
    p.add_argument("--top-p", type=float, default=None, help="draw from the smallest set with this much probability")
    p.add_argument("--allow-unk", action="store_true", help="let the model emit <unk> (by default it is never drawn)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=sample)

    p = verbs.add_parser(
        "score",
        help="log-probability and perplexity of sentences; ranks them",
        formatter_class=RAW,
        epilog="example:\n  rnnkit lm score runs/ptb 'the apple and pear salad' 'the apple and pair salad'",
    )
    p.add_argument("run", help="run folder")
    p.add_argument("sentences", nargs="+", metavar="SENTENCE")
    p.add_argument("--json", action="store_true", help="print a JSON list of {text, logprob, perplexity, tokens, rank}")
    p.set_defaults(func=score)


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


def resolve_configs(args: argparse.Namespace, run_dir: Path, spec: TaskSpec = lm_run.SPEC) -> dict[str, Any]:
    """defaults < config file < flags; on --resume the run's saved config, where only [train] may change."""
    sections = spec.sections
    if args.resume:
        run_folder.check_target(run_dir, resume=True, force=args.force, command=f"{spec.command} train")
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


def train(args: argparse.Namespace) -> int:
    run_dir = Path(args.out)
    cfg = resolve_configs(args, run_dir)
    if args.print_config:
        print(json.dumps({k: to_dict(v) for k, v in cfg.items()}, indent=2))
        return 0
    summary = train_lm(cfg, run_dir, resume=args.resume, force=args.force)
    if dist.rank_world()[0] == 0:
        print(summary_line(summary, run_dir, "rnnkit lm train"), file=sys.stderr)
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


def evaluate(args: argparse.Namespace) -> int:
    if args.batch_size is not None and args.batch_size < 1:
        raise RnnkitError(f"--batch-size must be at least 1, got {args.batch_size}")
    result = load_run(args.run, verb="eval").evaluate(
        args.data, batch_size=args.batch_size, encoding_errors=args.encoding_errors
    )
    if args.json:
        print(json.dumps(result))
    else:
        print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return 0


def sample(args: argparse.Namespace) -> int:
    """Print the sample as it is drawn; Ctrl-C stops it and keeps (prints) what was made."""
    run = load_run(args.run)
    pieces = run.stream_sample(
        args.prime,
        length=args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        allow_unk=args.allow_unk,
        seed=args.seed,
    )
    made: list[str] = []
    interrupted = False
    try:
        for piece in pieces:
            made.append(piece)
            if not args.json:
                print(piece, end="", flush=True)
    except KeyboardInterrupt:
        interrupted = True
    if args.json:
        print(json.dumps({"prime": args.prime, "text": "".join(made)} | ({"interrupted": True} if interrupted else {})))
    else:
        print()
    if interrupted:
        print(f"rnnkit: interrupted after {len(made) - 1} tokens; they are printed above", file=sys.stderr)
        return 130
    return 0


def score(args: argparse.Namespace) -> int:
    results = load_run(args.run).score(args.sentences)
    if args.json:
        print(json.dumps(results))
        return 0
    for r in sorted(results, key=lambda r: r["rank"]):
        print(f"{r['rank']:3d}. logprob {r['logprob']:9.3f}  perplexity {r['perplexity']:9.2f}  {r['text']}")
    return 0
