"""``rnnkit tag train|eval|predict``: sequence tagging (named entities, chunks, ATIS slots and intents)."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterator
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
from rnnkit.tasks import tag_run
from rnnkit.tasks.tag_run import load_runs

RAW = argparse.RawDescriptionHelpFormatter
DATA = "../shared/data"

TRAIN_EXAMPLE = f"""examples:
  rnnkit tag train --train {DATA}/atis/train --valid {DATA}/atis/dev --out runs/atis \\
      --cell lstm --bidirectional --crf --intent --epochs 10
  rnnkit tag train --train {DATA}/conll2003/eng.train --valid {DATA}/conll2003/eng.testa --out runs/ner \\
      --cell lstm --bidirectional --crf --char --hidden 100 --dropout 0.5
  rnnkit tag train --train {DATA}/atis/train --out runs/window --cell none --window 3   # feed-forward baseline
  rnnkit tag train --out runs/atis --resume --epochs 20       # continue a stopped run"""

#: sentences tagged at a time from a file or a pipe (from a terminal: each line as it is typed)
CHUNK = 512


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "tag", "sequence tagging (one tag per word, optionally an intent): train, eval, predict")
    add_train_verb(verbs, "train a sequence tagger", TRAIN_EXAMPLE, tag_run.SPEC.sections, train)

    p = add_eval_verb(
        verbs,
        "span precision/recall/F1 (conlleval), token accuracy, intent and sentence accuracy",
        f"rnnkit tag eval runs/atis --data {DATA}/atis/dev --json\n"
        f"  rnnkit tag eval runs/ner-seed0 --ensemble runs/ner-seed1 runs/ner-seed2 --data {DATA}/conll2003/eng.testa\n"
        f"  rnnkit tag eval runs/ner-ensemble --data {DATA}/conll2003/eng.testa   # a folder of rnnkit ensemble",
        "tagged data: a CoNLL file, an ATIS folder or a JSON lines file",
        "sentences",
        evaluate,
    )
    add_ensemble(p, ENSEMBLE)

    p = verbs.add_parser(
        "predict",
        help="tag raw text: one whitespace-tokenised sentence a line",
        epilog="examples:\n  echo 'i want to fly from boston to denver' | rnnkit tag predict runs/atis\n"
        "  rnnkit tag predict runs/ner sentences.txt --json\n"
        "  rnnkit tag predict runs/inspec abstracts.txt --json --scores   # spans with their probability",
        formatter_class=RAW,
    )
    p.add_argument("run", help="run folder")
    p.add_argument("input", nargs="?", default="-", metavar="FILE", help="text file, or - for stdin (the default)")
    p.add_argument(
        "--json", action="store_true", help="one JSON object a line: tokens, tags, spans [{type, start, end, text}]"
    )
    p.add_argument(
        "--scores",
        action="store_true",
        help="with --json, each word's confidence (its tag's probability; the CRF's marginal) and each span's score",
    )
    add_ensemble(p, ENSEMBLE)
    p.set_defaults(func=predict)


#: how ``--ensemble`` combines taggers
ENSEMBLE = "tagging with RUN as one: the mean of their scores (emissions, CRF transitions, intents), decoded once"


def train(args: argparse.Namespace) -> int:
    return train_verb(args, tag_run.SPEC)


def evaluate(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    result = load_runs([args.run, *args.ensemble], verb="eval").evaluate(args.data, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result))
        return 0
    names = ("precision", "recall", "f1", "token_accuracy", "intent_accuracy", "sentence_accuracy")
    shown = "  ".join(f"{k} {result[k]:.4f}" for k in names if k in result)
    print(f"{args.data}: {shown}  ({result['sentences']} sentences, {result['count']} words)")
    per_type = sorted(result.get("per_type", {}).items(), key=lambda item: -item[1]["support"])
    if per_type:
        width = max(len(kind) for kind, _ in per_type)
        print(f"  {'type':<{width}}  precision  recall      f1  support")
        for kind, r in per_type:
            p, rc, f1 = r["precision"], r["recall"], r["f1"]
            print(f"  {kind:<{width}}  {p:9.4f}  {rc:6.4f}  {f1:6.4f}  {r['support']:7d}")
    for target, scores in result.get("keyphrases", {}).items():
        shown = "  ".join(f"{k} {scores[k]:.4f}" for k in ("f1@5", "f1@10", "f1@M", "precision@M", "recall@M"))
        print(f"  keyphrases ({target}, {scores['documents']} documents): {shown}")
    return 0


def predict(args: argparse.Namespace) -> int:
    """Tag each line as it comes (in chunks from a file or a pipe); an empty line gives an empty line."""
    run = load_runs([args.run, *args.ensemble], verb="predict")
    lines = _lines(args.input)
    chunk = 1 if args.input == "-" and sys.stdin.isatty() else CHUNK
    for group in iter(lambda: list(itertools.islice(lines, chunk)), []):
        for result in run.predict([line.split() for line in group], scores=args.scores and args.json):
            print(json.dumps(result) if args.json else _pairs(result), flush=chunk == 1)
    return 0


def _lines(source: str) -> Iterator[str]:
    if source != "-":
        return iter(read_text(source).splitlines())
    return stdin_lines()


def _pairs(result: dict[str, Any]) -> str:
    """``word/TAG word/TAG ...``, then a tab and ``intent=NAME`` when the run predicts intents."""
    text = " ".join(f"{w}/{t}" for w, t in zip(result["tokens"], result["tags"], strict=True))
    return text + (f"\tintent={result['intent']}" if result.get("intent") is not None else "")
