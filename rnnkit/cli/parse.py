"""``rnnkit parse train|eval|predict``: constituency parsing as translation into a linearised tree."""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit.cli.common import add_eval_verb, add_group, add_train_verb, check_batch_size, stdin_lines, train_verb
from rnnkit.data.parallel import read_lines
from rnnkit.tasks import parse_run
from rnnkit.tasks.parse_run import load_run

RAW = argparse.RawDescriptionHelpFormatter
TREES = "../shared/data/treebank_sample"

TRAIN_EXAMPLE = f"""examples:
  rnnkit parse train --train {TREES}/train --valid {TREES}/valid --out runs/parser --hidden 256 --epochs 20
  rnnkit parse train --train {TREES}/train --first 849 --out runs/parser-25pc     # a quarter of the trees
  rnnkit parse eval runs/parser --data {TREES}/valid --json        # EVALB labelled bracket F1 against valid.trees
  echo "The board met on Monday ." | rnnkit parse predict runs/parser"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "parse", "constituency parsing as translation (Vinyals et al. 2015): train, eval, predict")
    add_train_verb(verbs, "train a parser", TRAIN_EXAMPLE, parse_run.SPEC.sections, train)
    p = add_eval_verb(
        verbs,
        "labelled bracket precision, recall and F1 (EVALB, COLLINS.prm) against PREFIX.trees",
        f"rnnkit parse eval runs/parser --data {TREES}/valid --json",
        "PREFIX: PREFIX.words to parse and PREFIX.trees to score against",
        "sentences",
        evaluate,
    )
    p.add_argument("--beam", type=int, default=5, help="beam size; 1 is greedy (default 5)")
    p.add_argument(
        "--no-constraint", action="store_true", help="let the decoder write anything (malformed trees are repaired)"
    )
    p = verbs.add_parser("predict", help="parse each line (whitespace-separated words) into a bracketed tree")
    p.add_argument("run", help="run folder")
    p.add_argument("input", nargs="?", default="-", metavar="FILE", help="sentences, or - for stdin (the default)")
    p.add_argument("--beam", type=int, default=5, help="beam size (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object a line: words, linearisation, tree")
    p.set_defaults(func=predict)


def train(args: argparse.Namespace) -> int:
    return train_verb(args, parse_run.SPEC)


def evaluate(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    run = load_run(args.run, verb="eval")
    kw = {"beam_size": args.beam, "constrained": not args.no_constraint, "batch_size": args.batch_size}
    result = run.evaluate(args.data, **kw)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.data}: labelled precision {result['precision']:.2f}  recall {result['recall']:.2f}  "
        f"F1 {result['f1']:.2f}  exact {result['exact_match']:.2f}%  ({result['sentences']:,} sentences, "
        f"beam {args.beam}, {result['repaired']} repaired, {result['sentences_per_second']:.1f} sentences/s)"
    )
    return 0


def predict(args: argparse.Namespace) -> int:
    run = load_run(args.run, verb="predict")
    lines = read_lines(args.input) if args.input != "-" else list(stdin_lines())
    sentences = [line.split() for line in lines]
    for words, (linear, tree) in zip(sentences, run.parse(sentences, beam_size=args.beam), strict=True):
        text = str(tree) if words else ""
        print(json.dumps({"words": words, "linear": linear, "tree": text}) if args.json else text)
    sys.stdout.flush()
    return 0
