"""``rnnkit autoencode train|eval|predict`` (sequence autoencoders), and ``rnnkit embed`` / ``rnnkit search``,
which turn lines into the codes of a trained autoencoder and find the nearest lines by cosine similarity."""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit.cli.common import (
    add_eval_verb,
    add_group,
    add_train_verb,
    check_batch_size,
    save_npy,
    stdin_lines,
    train_verb,
)
from rnnkit.data.parallel import read_lines
from rnnkit.errors import RnnkitError
from rnnkit.io import check_output_path, write_atomically
from rnnkit.tasks import autoencode_run
from rnnkit.tasks.autoencode_run import load_run

RAW = argparse.RawDescriptionHelpFormatter
M30K = "../shared/data/multi30k/tok"

TRAIN_EXAMPLE = f"""examples:
  rnnkit autoencode train --train {M30K}/train.lc.norm.tok.en --valid {M30K}/val.lc.norm.tok.en \\
      --out runs/ae --hidden 512 --word-dropout 0.25 --epochs 10
  rnnkit embed runs/ae sentences.txt --out codes.npy
  rnnkit search runs/ae --index {M30K}/val.lc.norm.tok.en "a dog runs on the beach ." --top 5"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "autoencode", "sequence autoencoders (a sentence -> a code -> the sentence): train, eval")
    add_train_verb(verbs, "train a sequence autoencoder", TRAIN_EXAMPLE, autoencode_run.SPEC.sections, train)
    p = add_eval_verb(
        verbs,
        "reconstruction loss, BLEU/chrF of the sentences written back from their codes, exact-match share",
        f"rnnkit autoencode eval runs/ae --data {M30K}/val.lc.norm.tok.en --json",
        "sentences, one a line",
        "sentences",
        evaluate,
    )
    p.add_argument("--beam", type=int, default=5, help="beam size of the reconstruction (default 5)")
    p = verbs.add_parser("predict", help="write each line back from its code (what the code keeps)")
    p.add_argument("run", help="run folder")
    p.add_argument("input", nargs="?", default="-", metavar="FILE", help="sentences, or - for stdin (the default)")
    p.add_argument("--beam", type=int, default=5, help="beam size (default 5)")
    p.set_defaults(func=predict)

    p = sub.add_parser(
        "embed",
        help="each line's code from a trained autoencoder (a fixed-size vector)",
        epilog="examples:\n  rnnkit embed runs/ae sentences.txt --out codes.npy\n"
        "  echo 'a dog runs .' | rnnkit embed runs/ae",
        formatter_class=RAW,
    )
    p.add_argument("run", help="an autoencode run folder")
    p.add_argument("input", nargs="?", default="-", metavar="FILE", help="sentences, or - for stdin (the default)")
    p.add_argument("--out", help="write the codes to FILE.npy (an N x H array) or FILE.json; default: JSON lines")
    p.add_argument("--batch-size", type=int, default=None, help="sentences per batch (default: the run's)")
    p.set_defaults(func=embed)

    p = sub.add_parser(
        "search",
        help="the lines of an index nearest to each query, by cosine similarity of their codes",
        epilog=f'example:\n  rnnkit search runs/ae --index {M30K}/val.lc.norm.tok.en "a man rides a bike ." --top 3',
        formatter_class=RAW,
    )
    p.add_argument("run", help="an autoencode run folder")
    p.add_argument(
        "queries",
        nargs="*",
        metavar="QUERY",
        help="query sentences (default: one a line from stdin); hierarchical runs: paragraphs, sentences on lines",
    )
    p.add_argument("--index", required=True, metavar="FILE", help="the lines to search, one a line")
    p.add_argument("--top", type=int, default=5, help="results per query (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per query")
    p.set_defaults(func=search, trailing="queries")


def train(args: argparse.Namespace) -> int:
    return train_verb(args, autoencode_run.SPEC)


def evaluate(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    result = load_run(args.run, verb="eval").evaluate(args.data, beam_size=args.beam, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result))
    else:
        scores = f"perplexity {result['perplexity']:.3f}  BLEU {result['bleu']:.2f}  chrF {result['chrf']:.2f}"
        print(f"{args.data}: {scores}  exact {result['exact']:.4f}  ({result['count']:,} sentences)")
        print(f"  BLEU signature: {result['bleu_signature']}")
    return 0


def predict(args: argparse.Namespace) -> int:
    run = load_run(args.run, verb="predict")
    texts = _texts(run, args.input)
    for text in run.reconstruct(texts, beam_size=args.beam):
        print(text + ("\n" if run.hierarchical else ""))  # paragraphs stay separated by a blank line
    return 0


def embed(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    out = check_output_path(args.out) if args.out else None
    if out is not None and out.suffix not in (".npy", ".json"):
        raise RnnkitError(f"{out}: --out should end in .npy or .json")
    run = _autoencoder(args.run)
    texts = _texts(run, args.input)
    codes = run.embed(texts, batch_size=args.batch_size)
    if out is None:
        for line, code in zip(texts, codes.tolist(), strict=True):
            print(json.dumps({"text": line, "vector": code}))
    elif out.suffix == ".npy":
        write_atomically(out, lambda tmp: save_npy(tmp, codes))
    else:
        write_atomically(out, lambda tmp: tmp.write_text(json.dumps(codes.tolist())))
    if out is not None:
        print(f"wrote {codes.shape[0]:,} codes of size {codes.shape[1]} to {out}", file=sys.stderr)
    return 0


def search(args: argparse.Namespace) -> int:
    run = _autoencoder(args.run)
    index = _texts(run, args.index)
    queries = args.queries or _texts(run, "-")
    if not queries:
        raise RnnkitError("no query: give QUERY arguments or one query a line on stdin")
    unit = "paragraph" if run.hierarchical else "line"
    for query, hits in zip(queries, run.search(index, queries, top=args.top), strict=True):
        if args.json:
            found = [{unit: j + 1, "text": index[j], "similarity": s} for j, s in hits]
            print(json.dumps({"query": query, "results": found}))
            continue
        print(query)
        for j, s in hits:
            print(f"  {s:.4f}  {index[j]}  ({args.index} {unit} {j + 1})")
    return 0


def _autoencoder(path: str) -> autoencode_run.AutoencodeRun:
    from rnnkit.tasks.registry import task_of

    task = task_of(path).name
    if task != "autoencode":
        raise RnnkitError(f"{path} is a {task} run: embed and search need an autoencode run (rnnkit autoencode train)")
    return load_run(path)


def _texts(run: autoencode_run.AutoencodeRun, source: str) -> list[str]:
    """The lines of a file or stdin, or, for a hierarchical run, its paragraphs (separated by blank lines)."""
    lines = read_lines(source) if source != "-" else list(stdin_lines())
    return autoencode_run.paragraphs_of(lines) if run.hierarchical else lines
