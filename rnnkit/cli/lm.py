"""``rnnkit lm train|eval|sample|score``: config -> objects -> one library call each."""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit.cli.common import (
    RAW,
    add_eval_verb,
    add_group,
    add_train_verb,
    check_batch_size,
    train_verb,
)
from rnnkit.errors import RnnkitError
from rnnkit.tasks import lm_run
from rnnkit.tasks.lm_run import load_run

TRAIN_EXAMPLE = """examples:
  rnnkit lm train --train input.txt --valid valid.txt --level char --out runs/shakespeare --epochs 5
  rnnkit lm train --train ptb.train.txt --valid ptb.valid.txt --level word --out runs/ptb \\
      --config configs/lm/ptb_small.toml
  rnnkit lm train --out runs/ptb --resume --max-steps 40     # continue a stopped run
  torchrun --nproc-per-node 2 -m rnnkit lm train ...         # data parallel (see rnnkit.train.distributed)"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "lm", "language models: train, eval, sample, score")
    add_train_verb(verbs, "train a language model", TRAIN_EXAMPLE, lm_run.SPEC.sections, train)

    p = add_eval_verb(
        verbs,
        "perplexity (and bits per character) of a text",
        "rnnkit lm eval runs/ptb --data ptb.valid.txt --json",
        "text file to evaluate on",
        "parallel streams",
        evaluate,
    )
    p.add_argument("--encoding-errors", default="strict", choices=("strict", "replace", "ignore"))
    add_adaptive_flags(p)
    p.add_argument(
        "--dynamic-bptt",
        type=int,
        help="dynamic evaluation adapts after every chunk of this many tokens per stream (default: the run's bptt)",
    )

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
    add_adaptive_flags(p)
    p.set_defaults(func=score)


def add_adaptive_flags(p: argparse.ArgumentParser) -> None:
    """The neural cache's and dynamic evaluation's flags, shared by eval and score."""
    cache = p.add_argument_group("neural cache (Grave et al. 2017), reported apart from the static number")
    cache.add_argument("--cache-window", type=int, help="cache the last N states of each stream (AWD-LSTM: 500-2000)")
    cache.add_argument("--cache-theta", type=float, default=0.6, help="the cache's inverse temperature (0.6)")
    cache.add_argument("--cache-lambda", type=float, default=0.1, help="the cache's share of the mixture (0.1)")
    dyn = p.add_argument_group("dynamic evaluation (Krause et al. 2018), reported apart from the static number")
    dyn.add_argument("--dynamic-lr", type=float, help="adapt the weights to the text as it is read, at this rate")
    dyn.add_argument("--dynamic-decay", type=float, default=0.02, help="pull back towards the trained weights (0.02)")
    dyn.add_argument(
        "--dynamic-stats",
        type=int,
        default=0,
        help="RMS-normalise the update with mean squared gradients over this many training batches (0: plain SGD)",
    )


def adaptive_options(args: argparse.Namespace) -> tuple[dict | None, dict | None]:
    cache = dynamic = None
    if args.cache_window is not None:
        cache = {"window": args.cache_window, "theta": args.cache_theta, "lam": args.cache_lambda}
    if args.dynamic_lr is not None:
        if args.dynamic_stats < 0:
            raise RnnkitError(f"--dynamic-stats must be >= 0, got {args.dynamic_stats}")
        dynamic = {"lr": args.dynamic_lr, "decay": args.dynamic_decay, "stats": args.dynamic_stats}
        if getattr(args, "dynamic_bptt", None) is not None:
            if args.dynamic_bptt < 1:
                raise RnnkitError(f"--dynamic-bptt must be at least 1, got {args.dynamic_bptt}")
            dynamic["bptt"] = args.dynamic_bptt
    elif getattr(args, "dynamic_bptt", None) is not None:
        raise RnnkitError("--dynamic-bptt sets dynamic evaluation's chunk length: give --dynamic-lr too")
    return cache, dynamic


def train(args: argparse.Namespace) -> int:
    return train_verb(args, lm_run.SPEC)


def evaluate(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    cache, dynamic = adaptive_options(args)
    result = load_run(args.run, verb="eval").evaluate(
        args.data, batch_size=args.batch_size, encoding_errors=args.encoding_errors, cache=cache, dynamic=dynamic
    )
    if args.json:
        print(json.dumps(result))
        return 0
    adapted = {k: result.pop(k) for k in ("cache", "dynamic") if k in result}
    show = lambda items: "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in items)  # noqa: E731
    print(show(result.items()))
    for name, values in adapted.items():
        print(f"  {name}: {show(values.items())}")
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
    cache, dynamic = adaptive_options(args)
    results = load_run(args.run).score(args.sentences, cache=cache, dynamic=dynamic)
    if args.json:
        print(json.dumps(results))
        return 0
    for r in sorted(results, key=lambda r: r["rank"]):
        adapted = "".join(f"  {k} {r[k]:9.3f}" for k in ("cache_logprob", "dynamic_logprob") if k in r)
        print(f"{r['rank']:3d}. logprob {r['logprob']:9.3f}  perplexity {r['perplexity']:9.2f}{adapted}  {r['text']}")
    return 0
