"""``rnnkit speech-ae train|eval|embed|search``: speech autoencoders and spoken-word retrieval (Audio Word2Vec)."""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit.cli.common import add_eval_verb, add_group, add_train_verb, check_batch_size, save_npy, train_verb
from rnnkit.errors import RnnkitError
from rnnkit.io import check_output_path, write_atomically
from rnnkit.tasks import speech_ae_run
from rnnkit.tasks.speech_ae_run import METHODS, load_run, read_audio

RAW = argparse.RawDescriptionHelpFormatter

TRAIN_EXAMPLE = """examples:
  rnnkit speech make-corpus --words --out data/words             # single spoken words (espeak-ng)
  rnnkit speech-ae train --train data/words/train.jsonl --valid data/words/valid.jsonl --out runs/sae --epochs 40
  rnnkit speech-ae eval runs/sae --data data/words/test.jsonl --json       # retrieval MAP on held-out voices
  rnnkit speech-ae search runs/sae --index data/words/test.jsonl query.wav --top 5"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "speech-ae", "speech autoencoders: spoken words to codes, and retrieval with them")
    add_train_verb(verbs, "train a speech autoencoder", TRAIN_EXAMPLE, speech_ae_run.SPEC.sections, train)

    p = add_eval_verb(
        verbs,
        "retrieval MAP: each utterance of a manifest queries the others (the same transcript is relevant)",
        "rnnkit speech-ae eval runs/sae --data data/words/test.jsonl --method dtw --json",
        "JSON lines of {path, text}: the collection, transcripts as labels",
        "utterances",
        evaluate,
    )
    p.add_argument(
        "--method", default="code", choices=METHODS,
        help="code: cosine of the codes; mean: of averaged features; dtw: dynamic time warping (default code)",
    )  # fmt: skip

    p = verbs.add_parser("embed", help="each utterance's code (a fixed-size vector)")
    p.add_argument("run", help="run folder")
    p.add_argument("files", nargs="*", metavar="FILE", help="audio files (or --data MANIFEST)")
    p.add_argument("--data", metavar="MANIFEST", help="embed a manifest's utterances")
    p.add_argument("--out", help="write the codes to FILE.npy (N x code) or FILE.json; default: JSON lines")
    p.add_argument("--batch-size", type=int, default=None, help="utterances per batch (default: the run's)")
    p.set_defaults(func=embed)

    p = verbs.add_parser("search", help="the utterances of an index nearest to each spoken query")
    p.add_argument("run", help="run folder")
    p.add_argument("queries", nargs="+", metavar="QUERY", help="audio files, each a spoken query")
    p.add_argument("--index", required=True, metavar="MANIFEST", help="the utterances to search")
    p.add_argument("--top", type=int, default=5, help="results per query (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per query")
    p.set_defaults(func=search)


def train(args: argparse.Namespace) -> int:
    return train_verb(args, speech_ae_run.SPEC)


def evaluate(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    run = load_run(args.run, verb="eval")
    if args.batch_size:
        run.data.eval_batch_size = args.batch_size
    result = run.evaluate(args.data, method=args.method)
    if args.json:
        print(json.dumps(result))
        return 0
    loss = f", reconstruction loss {result['loss']:.4f} a frame" if "loss" in result else ""
    print(
        f"{args.data}: MAP {result['map']:.4f} ({args.method}; {result['queries']:,} queries, "
        f"{1000 * result['seconds_per_query']:.2f} ms a query{loss})"
    )
    return 0


def _audio(files: list[str]) -> list:
    from rnnkit.data.speech import load_audio

    return [load_audio(f) for f in files]


def embed(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    if bool(args.files) == bool(args.data):
        raise RnnkitError("give audio FILEs or --data MANIFEST (one of the two)")
    out = check_output_path(args.out) if args.out else None
    if out is not None and out.suffix not in (".npy", ".json"):
        raise RnnkitError(f"{out}: --out should end in .npy or .json")
    run = load_run(args.run, verb="embed")
    if args.data:
        rows, audios = read_audio(args.data)
        names = [str(r.path) for r in rows]
    else:
        names, audios = args.files, _audio(args.files)
    codes = run.embed(audios, batch_size=args.batch_size)
    if out is None:
        for name, code in zip(names, codes.tolist(), strict=True):
            print(json.dumps({"file": name, "vector": code}))
        return 0
    if out.suffix == ".npy":
        write_atomically(out, lambda tmp: save_npy(tmp, codes))
    else:
        write_atomically(out, lambda tmp: tmp.write_text(json.dumps(codes.tolist())))
    print(f"wrote {codes.shape[0]:,} codes of size {codes.shape[1]} to {out}", file=sys.stderr)
    return 0


def search(args: argparse.Namespace) -> int:
    run = load_run(args.run, verb="search")
    rows, index = read_audio(args.index)
    for query, hits in zip(args.queries, run.search(index, _audio(args.queries), top=args.top), strict=True):
        found = [{"file": str(rows[j].path), "text": rows[j].text, "similarity": s} for j, s in hits]
        if args.json:
            print(json.dumps({"query": query, "results": found}))
            continue
        print(query)
        for hit in found:
            print(f"  {hit['similarity']:.4f}  {hit['text']}  ({hit['file']})")
    return 0
