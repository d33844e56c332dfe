"""``rnnkit classify train|eval|predict``: config -> objects -> one library call each."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rnnkit.cli.common import (
    add_ensemble,
    add_eval_verb,
    add_group,
    add_train_verb,
    check_batch_size,
    stdin_lines,
    train_verb,
)
from rnnkit.data.text import read_text
from rnnkit.errors import RnnkitError
from rnnkit.io import check_output_path, write_atomically
from rnnkit.tasks import classify_run
from rnnkit.tasks.classify_run import load_runs

RAW = argparse.RawDescriptionHelpFormatter
SST = "../shared/data/sst2"

TRAIN_EXAMPLE = f"""examples:
  rnnkit classify train --train {SST}/stsa.binary.train --valid {SST}/stsa.binary.dev --out runs/sst2 \\
      --bidirectional --pooling attention --hidden 128 --dropout 0.3 --epochs 5
  rnnkit classify train --train topics.jsonl --valid topics_dev.jsonl --multi-label --out runs/topics
  rnnkit classify train --out runs/sst2 --resume --epochs 10      # continue a stopped run"""

PREDICT_EXAMPLE = """examples:
  echo "a gripping , funny film" | rnnkit classify predict runs/sst2
  rnnkit classify predict runs/sst2 reviews.txt --json > predictions.jsonl
  echo "not good at all" | rnnkit classify predict runs/sst2 --show-attention --attention-png attention.png"""

#: 256-colour backgrounds from white to deep red: the attention shades of --show-attention
SHADES = (231, 224, 217, 210, 203, 196)
#: how ``--ensemble`` combines classifiers
ENSEMBLE = "labelling with RUN as one: their mean probabilities (several labels: at their mean threshold)"
CHUNK = 256  # lines predicted at once: stdin is answered as it comes, in memory of this size


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "classify", "text classification (many-to-one): train, eval, predict")
    add_train_verb(verbs, "train a text classifier", TRAIN_EXAMPLE, classify_run.SPEC.sections, train)

    p = add_eval_verb(
        verbs,
        "accuracy, macro-F1, per-class scores and the confusion matrix of labelled texts",
        f"rnnkit classify eval runs/sst2 --data {SST}/stsa.binary.dev --json\n"
        f"  rnnkit classify eval runs/sst2 --ensemble runs/sst2-seed1 runs/sst2-seed2 --data {SST}/stsa.binary.dev\n"
        f"  rnnkit classify eval runs/sst2-ensemble --data {SST}/stsa.binary.dev   # a folder of rnnkit ensemble",
        "labelled texts in the run's format (TSV, SST or JSON lines)",
        "texts",
        evaluate,
    )
    add_ensemble(p, ENSEMBLE)

    p = verbs.add_parser(
        "predict",
        help="label each line of a file or stdin: label<TAB>probability<TAB>text",
        description="Label each line of a file or stdin; print label<TAB>probability<TAB>text per line.\n"
        "Several labels per text: the labels at or above the run's threshold, and their probabilities,\n"
        "comma-separated. Empty lines are skipped (and counted).",
        epilog=PREDICT_EXAMPLE,
        formatter_class=RAW,
    )
    p.add_argument("run", help="run folder")
    p.add_argument("file", nargs="?", default="-", help="texts, one per line (default -: stdin)")
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line: the text, every label's probability and (attention pooling) each word's weight "
        "(label attention: for the most probable label)",
    )
    p.add_argument(
        "--show-attention", action="store_true", help="shade each word by its attention weight (attention pooling)"
    )
    p.add_argument("--attention-png", metavar="FILE", help="plot the first text's attention weights into a PNG")
    p.add_argument("--batch-size", type=int, default=None, help="texts per batch (default: the run's)")
    add_ensemble(p, ENSEMBLE)
    p.set_defaults(func=predict)


def train(args: argparse.Namespace) -> int:
    return train_verb(args, classify_run.SPEC)


def evaluate(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    result = load_runs([args.run, *args.ensemble], verb="eval").evaluate(args.data, batch_size=args.batch_size)
    print(json.dumps(result) if args.json else eval_text(result))
    return 0


def predict(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    png = check_output_path(args.attention_png, ".png") if args.attention_png else None
    run = load_runs([args.run, *args.ensemble], verb="predict")
    if (args.show_attention or png) and run.model_config.pooling not in ("attention", "label_attention"):
        raise RnnkitError(
            f"--show-attention and --attention-png need a run with attention pooling; {args.run} pools by "
            f"{run.model_config.pooling} (train with --pooling attention)"
        )
    color, first, empty = args.show_attention and sys.stdout.isatty(), None, [0]
    interactive = args.file == "-" and sys.stdin.isatty()  # a person typing: answer each line at once
    for chunk in _chunks(_texts(args.file, empty), 1 if interactive else CHUNK):
        for text, result in zip(chunk, run.predict(chunk, batch_size=args.batch_size), strict=True):
            first = first or result
            print(prediction_line(text, result, as_json=args.json, attention=args.show_attention, color=color))
    if empty[0]:
        warnings.warn(f"{_name(args.file)}: skipped {empty[0]:,} empty line{'s' * (empty[0] != 1)}", stacklevel=1)
    if first is None:
        raise RnnkitError(f"{_name(args.file)}: no text to label: give one text per line")
    if png is not None:
        write_attention_png(first["attention"], png)
        print(f"wrote the first text's attention to {png}", file=sys.stderr)
    return 0


def prediction_line(text: str, result: dict[str, Any], *, as_json: bool, attention: bool, color: bool) -> str:
    """``label<TAB>probability<TAB>text`` (several labels: the labels at or above the threshold and their
    probabilities, comma-separated), the text shaded by attention with ``attention``; or one JSON object."""
    if as_json:
        return json.dumps({"text": text} | result)
    if "labels" in result:
        label = ",".join(result["labels"])
        probability = ",".join(f"{result['probabilities'][name]:.4f}" for name in result["labels"])
    else:
        label, probability = result["label"], f"{result['probability']:.4f}"
    shown = render_attention(result["attention"], color=color) if attention else text
    return f"{label}\t{probability}\t{shown}"


def render_attention(pairs: list[list[Any]], *, color: bool) -> str:
    """The tokens on ANSI backgrounds from white (no weight) to red (the text's largest weight), or, for a file
    or a pipe, each token with its weight in brackets.

    >>> render_attention([["not", 0.25], ["good", 0.75]], color=False)
    'not[0.25] good[0.75]'
    """
    if not color:
        return " ".join(f"{token}[{weight:.2f}]" for token, weight in pairs)
    top = max(weight for _, weight in pairs) or 1.0
    shade = [SHADES[round(weight / top * (len(SHADES) - 1))] for _, weight in pairs]
    return " ".join(f"\x1b[48;5;{s}m\x1b[30m{token}\x1b[0m" for (token, _), s in zip(pairs, shade, strict=True))


def write_attention_png(pairs: list[list[Any]], path: Path) -> None:
    """A PNG of one text's attention: a row of cells shaded by weight, each labelled with its token and weight."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    tokens, weights = [t for t, _ in pairs], [[w for _, w in pairs]]
    fig = Figure(figsize=(min(max(3.0, 0.6 * len(tokens) + 1), 40.0), 1.9))
    ax = fig.subplots()
    top = max(weights[0]) or 1.0
    ax.imshow(weights, cmap="Reds", vmin=0.0, vmax=top, aspect="auto")
    ax.set_xticks(range(len(tokens)), tokens, rotation=45, ha="right", fontsize=9)
    ax.set_yticks([])
    for x, w in enumerate(weights[0]):
        ax.text(x, 0, f"{w:.2f}", ha="center", va="center", fontsize=7, color="white" if w > top / 2 else "black")
    ax.set_title("attention weights", fontsize=10)
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def eval_text(result: dict[str, Any]) -> str:
    """The eval report for a terminal: the scores, the per-class table and the confusion matrix."""
    scores = "  ".join(
        f"{k} {result[k]:.4f}" for k in ("accuracy", "macro_f1", "micro_f1", "threshold", "loss") if k in result
    )
    lines = [f"{result['data']}: {scores}  ({result['count']:,} texts)"]
    if result["excluded"]:
        names = ", ".join(f"{name!r} ({n})" for name, n in result["unknown_labels"].items())
        lines.append(f"left out: {result['excluded']:,} text(s) with labels the run never saw: {names}")
    width = max(len("label"), *(len(name) for name in result["labels"]))
    lines.append(f"{'label':<{width}}  precision  recall      f1  support")
    for name, s in result["per_class"].items():
        lines.append(f"{name:<{width}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  {s['support']:7,}")
    lines.append("")
    if "threshold" in result:  # several labels: one [[tn, fp], [fn, tp]] per label
        lines.append(f"{'label':<{width}}  {'tp':>6}  {'fp':>6}  {'fn':>6}  {'tn':>6}")
        for name, ((tn, fp), (fn, tp)) in zip(result["labels"], result["confusion"], strict=True):
            lines.append(f"{name:<{width}}  {tp:6,}  {fp:6,}  {fn:6,}  {tn:6,}")
        return "\n".join(lines)
    lines.append("confusion matrix (rows: true label, columns: predicted)")
    cell = max(6, width, *(len(f"{n:,}") for row in result["confusion"] for n in row))
    lines.append(" " * width + "".join(f"  {name:>{cell}}" for name in result["labels"]))
    for name, row in zip(result["labels"], result["confusion"], strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"  {n:>{cell},}" for n in row))
    return "\n".join(lines)


def _texts(file: str, empty: list[int]) -> Iterator[str]:
    """The non-empty lines of a file or of stdin (``-``), as they come; ``empty[0]`` counts the skipped ones."""
    lines: Iterable[str] = stdin_lines() if file == "-" else read_text(file).splitlines()
    for line in lines:
        line = line.rstrip("\r\n")
        if line.strip():
            yield line
        else:
            empty[0] += 1


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _name(file: str) -> str:
    return "stdin" if file == "-" else file
