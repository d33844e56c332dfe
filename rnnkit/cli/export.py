"""``rnnkit export RUN --format onnx|torchscript --out FILE``: a trained run as a deployable graph."""

from __future__ import annotations

import argparse
import sys

from rnnkit.export import FORMATS

EXAMPLE = """examples:
  rnnkit export runs/ptb --format onnx --out ptb-step.onnx        # one step, the state as inputs and outputs
  rnnkit export runs/jsb --format torchscript --out jsb-step.pt"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="a trained run as an ONNX or TorchScript graph (language models and music: one step with its state)",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run folder")
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx (onnxruntime, ...) or torchscript")
    p.add_argument("--out", required=True, help="the file to write")
    p.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    from rnnkit.export import export_run

    meta = export_run(args.run, args.format, args.out)
    state = ", ".join(f"{s['name']} {s['shape']} {s['dtype']}" for s in meta["state"])
    print(f"wrote {args.out}: {meta['task']} step of a {meta['cell']} model; state: {state}", file=sys.stderr)
    return 0
