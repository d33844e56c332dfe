"""``rnnkit translate train|eval|predict``: encoder-decoder translation with attention and beam search."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnkit.cli.common import add_group, add_train_verb, check_batch_size, stdin_lines, train_verb
from rnnkit.data.parallel import read_lines
from rnnkit.errors import RnnkitError
from rnnkit.io import check_output_path, write_atomically
from rnnkit.tasks import translate_run
from rnnkit.tasks.translate_run import load_run

RAW = argparse.RawDescriptionHelpFormatter
M30K = "../shared/data/multi30k"

TRAIN_EXAMPLE = f"""examples:
  rnnkit translate train --train {M30K}/tok/train.lc.norm.tok --valid {M30K}/tok/val.lc.norm.tok \\
      --src-lang de --tgt-lang en --out runs/m30k --attention general --hidden 256 --epochs 10
  rnnkit translate train --train {M30K}/train --valid {M30K}/val --src-lang de --tgt-lang en \\
      --tokens bpe --subword-vocab 8000 --out runs/m30k-bpe
  rnnkit translate train --out runs/m30k --resume --epochs 20       # continue a stopped run"""

EVAL_EXAMPLE = f"""examples:
  rnnkit translate eval runs/m30k --data {M30K}/tok/val.lc.norm.tok --beam 5 --json
  rnnkit translate eval runs/m30k --src {M30K}/tok/val.lc.norm.tok.de --ref {M30K}/tok/val.lc.norm.tok.en"""

PREDICT_EXAMPLE = """examples:
  echo "ein mann fährt fahrrad ." | rnnkit translate predict runs/m30k
  rnnkit translate predict runs/m30k sentences.de --beam 5 --n-best 3 --json
  echo "zwei hunde spielen im schnee ." | rnnkit translate predict runs/m30k --plot-attention attention.png"""

#: sentences translated at a time from a file or a pipe (from a terminal: each line as it is typed)
CHUNK = 512


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "translate", "encoder-decoder translation (many-to-many, unaligned): train, eval, predict")
    add_train_verb(verbs, "train a translator", TRAIN_EXAMPLE, translate_run.SPEC.sections, train)

    p = verbs.add_parser(
        "eval",
        help="BLEU and chrF (sacrebleu, with signatures) of the run's translations against references",
        epilog=EVAL_EXAMPLE,
        formatter_class=RAW,
    )
    p.add_argument("run", help="run folder")
    p.add_argument("--data", metavar="PREFIX", help="PREFIX.SRC and PREFIX.TGT in the run's languages")
    p.add_argument("--src", metavar="FILE", help="source sentences, one a line (instead of --data)")
    p.add_argument("--ref", metavar="FILE", help="their reference translations, aligned (with --src)")
    p.add_argument("--batch-size", type=int, default=None, help="sentences per batch (default: the run's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_search_flags(p)
    p.set_defaults(func=evaluate)

    p = verbs.add_parser(
        "predict",
        help="translate each line of a file or stdin; one translation a line",
        description="Translate each line of a file or stdin, one translation a line (an empty line gives an "
        "empty line).\nWith --json: one object a line with the source and the n-best list with scores.",
        epilog=PREDICT_EXAMPLE,
        formatter_class=RAW,
    )
    p.add_argument("run", help="run folder")
    p.add_argument("input", nargs="?", default="-", metavar="FILE", help="source text, or - for stdin (the default)")
    p.add_argument("--json", action="store_true", help="one JSON object a line: source, translation, n-best, scores")
    p.add_argument("--n-best", type=int, default=1, help="translations per sentence with --json (at most --beam)")
    p.add_argument("--batch-size", type=int, default=None, help="sentences per batch (default: the run's)")
    p.add_argument(
        "--plot-attention",
        metavar="PNG",
        help="also draw each sentence's attention (source x output tokens) into PNG (several: PNG-2.png, ...)",
    )
    add_search_flags(p)
    p.set_defaults(func=predict)


def add_search_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=int, default=5, help="beam size; 1 is greedy search (default 5)")
    p.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="rank finished translations by log-probability / length**this (0: raw sum; default 1: per token)",
    )
    p.add_argument("--max-len-a", type=float, default=2.0, help="at most a * source tokens + b output tokens (a)")
    p.add_argument("--max-len-b", type=int, default=10, help="... (b)")
    p.add_argument(
        "--exhaustive",
        action="store_true",
        help="search each sentence until its beam holds beam-size finished translations (default: stop once no "
        "live one, scored as if it ended now, beats the best finished; exact with --length-penalty 0)",
    )
    p.add_argument(
        "--shrink-beam",
        action="store_true",
        help="narrow a sentence's beam by one for each finished translation (GroundHog's and Nematus' search): "
        "fewer hypotheses to extend, so faster",
    )


def train(args: argparse.Namespace) -> int:
    return train_verb(args, translate_run.SPEC)


def _search(args: argparse.Namespace) -> dict[str, Any]:
    check_batch_size(args.batch_size)
    return {
        "beam_size": args.beam,
        "length_penalty": args.length_penalty,
        "max_len_a": args.max_len_a,
        "max_len_b": args.max_len_b,
        "batch_size": args.batch_size,
        "early_stop": not args.exhaustive,
        "shrink": args.shrink_beam,
    }


def evaluate(args: argparse.Namespace) -> int:
    if (args.data is None) == (args.src is None or args.ref is None) or (args.src is None) != (args.ref is None):
        raise RnnkitError("give --data PREFIX, or --src FILE and --ref FILE (not both)")
    kw = _search(args)
    run = load_run(args.run, verb="eval")
    translate_run.check_search(args.beam, 1, args.max_len_a, args.max_len_b, args.length_penalty)
    result = run.evaluate_prefix(args.data, **kw) if args.data else run.evaluate(args.src, args.ref, **kw)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['src']}: BLEU {result['bleu']:.2f}  chrF {result['chrf']:.2f}  ({result['count']:,} sentences, "
        f"beam {result['beam']}, {result['sentences_per_second']:.1f} sentences/s)"
    )
    print(f"  {result['bleu_detail']}")
    print(f"  BLEU signature: {result['bleu_signature']}")
    print(f"  chrF signature: {result['chrf_signature']}")
    return 0


def predict(args: argparse.Namespace) -> int:
    """Translate each line as it comes (in chunks from a file or a pipe); an empty line gives an empty line."""
    kw = _search(args) | {"n_best": args.n_best if args.json else 1}
    translate_run.check_search(args.beam, kw["n_best"], args.max_len_a, args.max_len_b, args.length_penalty)
    png = check_output_path(args.plot_attention, ".png") if args.plot_attention else None
    run = load_run(args.run, verb="predict")
    if png is not None and run.model_config.attention == "none":
        raise RnnkitError(f"--plot-attention needs a run with attention; {args.run} was trained with --attention none")
    lines = _lines(args.input)
    chunk = 1 if args.input == "-" and sys.stdin.isatty() else CHUNK
    plotted = 0
    for group in iter(lambda: list(itertools.islice(lines, chunk)), []):
        for source, n_best in zip(group, run.translate(group, **kw), strict=True):
            line = json.dumps({"source": source, "translation": n_best[0]["text"], "n_best": n_best})
            print(line if args.json else n_best[0]["text"], flush=chunk == 1)
            if png is not None and source.strip():
                plotted += 1
                path = png if plotted == 1 else png.with_name(f"{png.stem}-{plotted}.png")
                write_attention_png(*run.attention(source, **kw), path)
                print(f"wrote the attention of sentence {plotted} to {path}", file=sys.stderr)
    return 0


def write_attention_png(source: list[str], output: list[str], weights: list[list[float]], path: Path) -> None:
    """A heatmap of one translation's attention: a row per output token, a column per source token."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    fig = Figure(figsize=(min(max(3.0, 0.45 * len(source) + 1.5), 30.0), min(max(2.5, 0.4 * len(output) + 1.2), 30.0)))
    ax = fig.subplots()
    ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(len(output)), output, fontsize=9)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def _lines(source: str) -> Iterator[str]:
    return iter(read_lines(source)) if source != "-" else stdin_lines()
