"""``rnnkit ctc train|eval|transcribe``: speech recognition with CTC."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from rnnkit.cli.common import add_group, add_train_verb, check_batch_size, train_verb
from rnnkit.errors import RnnkitError
from rnnkit.tasks import ctc_run
from rnnkit.tasks.ctc_run import load_run
from rnnkit.tasks.translate_run import MAX_BEAM

RAW = argparse.RawDescriptionHelpFormatter

TRAIN_EXAMPLE = """examples:
  rnnkit speech make-corpus --default --out data/speech          # the default corpus (espeak-ng)
  rnnkit ctc train --train data/speech/train.jsonl --valid data/speech/valid.jsonl \\
      --out runs/ctc --hidden 256 --layers 3 --epochs 30
  rnnkit ctc eval runs/ctc --data data/speech/test.jsonl --beam 8 --lm runs/charlm --json
  rnnkit ctc transcribe runs/ctc recording.wav --json"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "ctc", "speech recognition with CTC: train, eval, transcribe")
    add_train_verb(verbs, "train a CTC recogniser", TRAIN_EXAMPLE, ctc_run.SPEC.sections, train)

    p = verbs.add_parser("eval", help="CER and WER (jiwer) of a manifest's transcripts, and the real-time factor")
    p.add_argument("run", help="run folder")
    p.add_argument("--data", required=True, metavar="MANIFEST", help="JSON lines of {path, text}")
    p.add_argument("--batch-size", type=int, default=None, help="utterances per batch (default: the run's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_search_flags(p)
    p.set_defaults(func=evaluate)

    p = verbs.add_parser("transcribe", help="print the transcript of each audio file")
    p.add_argument("run", help="run folder")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, ...; any rate, mono or stereo)")
    p.add_argument("--json", action="store_true", help="one JSON object a file: text and each character's times")
    add_search_flags(p)
    p.set_defaults(func=transcribe)


def add_search_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=int, default=1, help="1: greedy; more: prefix beam search (default 1)")
    p.add_argument("--lm", metavar="RUN", help="a character language model run to fuse into the beam search")
    p.add_argument("--lm-weight", type=float, default=0.5, help="the language model's weight (default 0.5)")
    p.add_argument("--bonus", type=float, default=0.0, help="a score bonus per character (default 0)")


def train(args: argparse.Namespace) -> int:
    return train_verb(args, ctc_run.SPEC)


def _search(args: argparse.Namespace, run: ctc_run.CTCRun) -> dict[str, Any]:
    if args.beam < 1:
        raise RnnkitError(f"--beam must be at least 1, got {args.beam}")
    if args.beam > MAX_BEAM:
        raise RnnkitError(f"--beam must be at most {MAX_BEAM}, got {args.beam}")
    if not (math.isfinite(args.lm_weight) and math.isfinite(args.bonus)):
        raise RnnkitError(f"--lm-weight and --bonus must be finite numbers, got {args.lm_weight} and {args.bonus}")
    lm = None
    if args.lm is not None:
        if args.beam == 1:
            raise RnnkitError("--lm fuses a language model into the beam search: give --beam 2 or more")
        from rnnkit.tasks.lm_run import load_run as load_lm

        lm = ctc_run.CharLMFusion(load_lm(args.lm), run.labels)
    return {"beam_size": args.beam, "lm": lm, "lm_weight": args.lm_weight if lm else 0.0, "bonus": args.bonus}


def evaluate(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    run = load_run(args.run, verb="eval")
    result = run.evaluate(args.data, batch_size=args.batch_size, **_search(args, run))
    result["lm"] = args.lm
    if args.json:
        print(json.dumps(result))
        return 0
    scores = f"CER {100 * result['cer']:.2f}%  WER {100 * result['wer']:.2f}%"
    search = f"beam {result['beam']}{', LM ' + args.lm if args.lm else ''}"
    rtf = f"real-time factor {result['real_time_factor']:.4f}"
    print(f"{args.data}: {scores}  ({result['count']:,} utterances, {search}; {rtf})")
    return 0


def transcribe(args: argparse.Namespace) -> int:
    from rnnkit.data.speech import load_audio

    run = load_run(args.run, verb="transcribe")
    audios = [load_audio(f) for f in args.files]
    for name, result in zip(
        args.files, run.transcribe(audios, timestamps=args.json, **_search(args, run)), strict=True
    ):
        print(json.dumps({"file": name} | result) if args.json else result["text"])
    return 0
