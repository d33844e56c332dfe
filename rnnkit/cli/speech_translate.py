"""``rnnkit speech-translate train|eval|translate``: speech in one language straight to text in another."""

from __future__ import annotations

import argparse
import json

from rnnkit.cli.common import add_eval_verb, add_group, add_train_verb, check_batch_size, train_verb
from rnnkit.tasks import speech_translate_run
from rnnkit.tasks.speech_translate_run import load_run

RAW = argparse.RawDescriptionHelpFormatter

TRAIN_EXAMPLE = """examples:
  rnnkit speech make-corpus --german --out data/de-en          # German speech, English translations (espeak-ng)
  rnnkit speech-translate train --train data/de-en/train.jsonl --valid data/de-en/valid.jsonl --out runs/st \\
      --hidden 256 --layers 2 --epochs 60
  rnnkit speech-translate eval runs/st --data data/de-en/test.jsonl --beam 5 --json
  rnnkit speech-translate translate runs/st recording.wav"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    verbs = add_group(sub, "speech-translate", "speech straight to translated text: train, eval, translate")
    add_train_verb(verbs, "train a speech translator", TRAIN_EXAMPLE, speech_translate_run.SPEC.sections, train)

    p = add_eval_verb(
        verbs,
        "BLEU and chrF (sacrebleu) of the translations of a manifest's audio, and the real-time factor",
        "rnnkit speech-translate eval runs/st --data data/de-en/test.jsonl --json",
        "JSON lines of {path, translation}",
        "utterances",
        evaluate,
    )
    add_search_flags(p)

    p = verbs.add_parser("translate", help="print the translation of each audio file")
    p.add_argument("run", help="run folder")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, ...; any rate, mono or stereo)")
    p.add_argument("--json", action="store_true", help="one JSON object a file")
    add_search_flags(p)
    p.set_defaults(func=translate)


def add_search_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=int, default=5, help="beam size; 1 is greedy (default 5)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="divide scores by length^this (default 1)")


def train(args: argparse.Namespace) -> int:
    return train_verb(args, speech_translate_run.SPEC)


def evaluate(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    run = load_run(args.run, verb="eval")
    search = {"beam_size": args.beam, "length_penalty": args.length_penalty, "batch_size": args.batch_size}
    result = run.evaluate(args.data, **search)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.data}: BLEU {result['bleu']:.2f}  chrF {result['chrf']:.2f}  ({result['count']:,} utterances, "
        f"beam {args.beam}; real-time factor {result['real_time_factor']:.4f})"
    )
    print(f"  BLEU signature: {result['bleu_signature']}")
    return 0


def translate(args: argparse.Namespace) -> int:
    from rnnkit.data.speech import load_audio

    run = load_run(args.run, verb="translate")
    audios = [load_audio(f) for f in args.files]
    texts = run.translate(audios, beam_size=args.beam, length_penalty=args.length_penalty)
    for name, text in zip(args.files, texts, strict=True):
        print(json.dumps({"file": name, "text": text}) if args.json else text)
    return 0
