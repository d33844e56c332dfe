"""``rnnkit diagnose``: gradient-flow norms ||dL_T/dh_t|| of cells at random init or of a trained LM run."""

from __future__ import annotations

import argparse
import json
import math

import torch

from rnnkit.config import COMMAND_LINE, add_flags, build, pick
from rnnkit.data import read_text
from rnnkit.diagnose import (
    GradientFlow,
    ProbeConfig,
    cell_gradient_flow,
    check_probe_memory,
    lm_gradient_flow,
    plot_gradient_flow,
)
from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm_run import LMRun, load_run
from rnnkit.train.log import read_metrics

EXAMPLE = """examples:
  rnnkit diagnose --cell rnn lstm lstm:forget_bias=1 gru --out flow.png     # vanishing, and what the forget bias does
  rnnkit diagnose --cell rnn irnn:radius=1.05 --clip 1.0 --out explode.png  # exploding, and clipping's rescale
  rnnkit diagnose --cell lstm --layers 3 --layer 0                          # the bottom layer of a stack
  rnnkit diagnose --run runs/shakespeare --text input.txt --steps 200       # a trained LM, on its own text

A cell is NAME[:key=value,...]: any cell option (forget_bias=1, nonlinearity=relu, periods=1/4/16)
and radius=R (spectral radius of each recurrent H x H block; above 1 a linear or ReLU RNN explodes)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="gradient flow through time: ||dL_T/dh_t|| per step, plotted",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cell", nargs="+", default=[], metavar="CELL", help="cells at random init (NAME[:key=value,...])")
    p.add_argument("--run", nargs="+", default=[], metavar="DIR", help="trained language-model run folders")
    p.add_argument("--text", help="a run's input: T + 1 tokens of this file (default: random tokens)")
    p.add_argument("--offset", type=int, default=0, help="first token of the --text slice (default 0)")
    p.add_argument("--layer", type=int, default=-1, help="which layer's states to watch, 0 = bottom (default: top)")
    p.add_argument("--clip", type=float, default=None, help="also show clip_grad_norm_ at this norm: factor and curve")
    p.add_argument("--out", default="gradient_flow.png", help="the PNG to write (default gradient_flow.png)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    add_flags(p.add_argument_group("input (--steps, --seed) and random-init (--cell) options"), ProbeConfig)
    p.set_defaults(func=diagnose)


def diagnose(args: argparse.Namespace) -> int:
    if not args.cell and not args.run:
        raise RnnkitError("give --cell NAME ... and/or --run DIR ...: nothing to diagnose")
    if args.clip is not None and not args.clip > 0:
        raise RnnkitError(f"--clip must be positive, got {args.clip}")
    if args.text is not None and not args.run:
        raise RnnkitError("--text is the input of a --run model: give --run DIR too (cells read random input)")
    cfg = build(ProbeConfig, (pick(args, ProbeConfig), COMMAND_LINE))
    for spec in args.cell:  # every cell before the first one runs (cell_gradient_flow checks again)
        check_probe_memory(spec, cfg)
    flows, training = [], {}
    for spec in args.cell:
        flows.append(cell_gradient_flow(spec, cfg, layer=args.layer))
    for folder in args.run:
        run = load_run(folder)
        ids = run_input(run, args.text, args.offset, cfg.steps, cfg.seed)
        flows.append(lm_gradient_flow(run.model, ids, layer=args.layer, name=f"{folder} ({run.model_config.cell})"))
        training[flows[-1].name] = clipping_history(run)
    path = plot_gradient_flow(flows, args.out, clip=args.clip)
    if args.json:
        print(json.dumps({"plot": str(path), "models": [report(f, args.clip, training.get(f.name)) for f in flows]}))
        return 0
    print(table(flows, args.clip))
    for name, history in training.items():
        print(f"{name}: {describe_history(history)}")
    print(f"plot: {path}")
    return 0


def run_input(run: LMRun, text: str | None, offset: int, steps: int, seed: int) -> torch.Tensor:
    """T + 1 token ids: a slice of ``text`` read with the run's tokenizer, or random non-special tokens."""
    if text is None:
        first = len(run.vocab.SPECIALS)
        if len(run.vocab) <= first:
            raise RnnkitError(f"{run.path}: the vocabulary holds only special tokens")
        return torch.randint(first, len(run.vocab), (steps + 1,), generator=torch.Generator().manual_seed(seed))
    tokens = run.tokens(read_text(text))[offset : offset + steps + 1]
    if offset < 0 or len(tokens) < steps + 1:
        raise RnnkitError(
            f"{text}: {len(tokens)} tokens from --offset {offset}, --steps {steps} needs {steps + 1}: "
            "lower --steps or --offset"
        )
    return torch.tensor(run.vocab.encode(tokens))


def clipping_history(run: LMRun) -> dict:
    """How often clipping fired in training: the metrics log's clipped_frac, weighted by each line's steps."""
    clip = run.train.clip_norm
    lines = [r for r in read_metrics(run.path / "metrics.jsonl") if "clipped_frac" in r]
    steps, clipped, previous = 0, 0.0, 0
    for r in lines:
        n = r["step"] - previous  # the line covers the steps since the previous training line
        steps, clipped, previous = steps + n, clipped + r["clipped_frac"] * n, r["step"]
    return {"clip_norm": clip, "logged_steps": steps, "clipped_frac": clipped / steps if steps else None}


def describe_history(history: dict) -> str:
    if history["clip_norm"] is None:
        return "trained without --clip-norm"
    if not history["logged_steps"]:
        return f"trained with --clip-norm {history['clip_norm']:g}; its metrics log has no training lines"
    return (
        f"training clipped the gradient (--clip-norm {history['clip_norm']:g}) on "
        f"{100 * history['clipped_frac']:.1f}% of {history['logged_steps']} logged steps"
    )


def table(flows: list[GradientFlow], clip: float | None) -> str:
    T = flows[0].steps
    head = ["t=T", "t=T-10", "t=T/2", "t=1", "ratio 1/T"]
    head += ["||dL/dθ||", "clip factor"] if clip is not None else []
    width = max(len(f.name) for f in flows) + 2
    title = f"||dL_T/dh_t|| over T = {T} steps" + (f"; clip_grad_norm_ at {clip:g}" if clip is not None else "")
    lines = [title, "model".ljust(width) + "".join(h.rjust(13) for h in head)]
    for f in flows:
        row = f.summary()
        cells = [row["T"], row.get("T-10", math.nan), row["T/2"], row["1"], row["ratio"]]
        cells += [f.grad_norm, f.clip_factor(clip)] if clip is not None else []
        lines.append(f.name.ljust(width) + "".join(f"{v:13.3g}" for v in cells))
    return "\n".join(lines)


def report(flow: GradientFlow, clip: float | None, history: dict | None) -> dict:
    out = {"name": flow.name, "steps": flow.steps, "summary": flow.summary(), "grad_norm": flow.grad_norm}
    out["norms"] = flow.norms.tolist()
    if clip is not None:
        out |= {"clip": clip, "clip_factor": flow.clip_factor(clip), "clipped_norms": flow.clipped(clip).tolist()}
    return out | ({"training": history} if history is not None else {})
