"""``rnnkit export RUN --format onnx|torchscript --out FILE``: a trained run as a deployable graph."""

from __future__ import annotations

import argparse
import sys

from rnnkit.cli.common import add_ensemble
from rnnkit.export import FORMATS

EXAMPLE = """examples:
  rnnkit export runs/ptb --format onnx --out ptb-step.onnx        # one step, the state as inputs and outputs
  rnnkit export runs/jsb --format torchscript --out jsb-step.pt
  rnnkit export runs/sst --format onnx --out sst.onnx             # ids, lengths -> probabilities
  rnnkit export runs/ner --format onnx --out ner.onnx             # words, lengths -> emissions, tags (Viterbi)
  rnnkit export runs/ner --ensemble runs/ner2 --format onnx --out ner.onnx   # two taggers as one graph
  rnnkit export runs/mt --format onnx --out mt.onnx               # mt.encoder.onnx and mt.decoder.onnx (one step)
  rnnkit export runs/asr --format onnx --out asr.onnx             # features, lengths -> log_probs, out_lengths"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="a trained run as an ONNX graph (or TorchScript for lm and music: one step with its state)",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run folder")
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx (onnxruntime, ...) or torchscript")
    p.add_argument("--out", required=True, help="the file to write")
    add_ensemble(p, "exported with the run as one graph (taggers and classifiers; see rnnkit tag eval --help)")
    p.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    from rnnkit.export import export_run

    meta = export_run(args.run, args.format, args.out, args.ensemble)
    if "files" not in meta:
        state = ", ".join(f"{s['name']} {s['shape']} {s['dtype']}" for s in meta["state"])
        print(f"wrote {args.out}: {meta['task']} step of a {meta['cell']} model; state: {state}", file=sys.stderr)
        return 0
    inputs = ", ".join(i if isinstance(i, str) else i["name"] for i in meta["inputs"])
    outputs = ", ".join(o if isinstance(o, str) else o["name"] for o in meta["outputs"])
    print(
        f"wrote {', '.join(meta['files'])}: the {meta['task']} graph of a {meta['cell']} model"
        + (f" and {len(meta['ensemble']) - 1} more as one" if "ensemble" in meta else "")
        + f" ({inputs} -> {outputs})",
        file=sys.stderr,
    )
    return 0
