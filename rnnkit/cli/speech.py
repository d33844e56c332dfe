"""``rnnkit speech make-corpus``: a spoken corpus made here with espeak-ng (no download)."""

from __future__ import annotations

import argparse
import sys

from rnnkit.data.parallel import read_lines
from rnnkit.errors import RnnkitError

RAW = argparse.RawDescriptionHelpFormatter

EXAMPLE = """examples:
  rnnkit speech make-corpus --default --out data/speech      # train/valid/test.jsonl: held-out voices in valid, test
  rnnkit speech make-corpus --words --out data/words         # single spoken words (speech autoencoders, retrieval)
  rnnkit speech make-corpus --german --out data/de-en        # German speech with English translations
  rnnkit speech make-corpus --text lines.txt --voices en-us,en+f3 --speeds 150,180 --snr none,20 --out data/mine"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("speech", help="spoken corpora made with espeak-ng").add_subparsers(
        dest="verb", required=True, metavar="VERB"
    )
    p = group.add_parser(
        "make-corpus",
        help="speak each line of a text with many voices, speeds, pitches and noise levels",
        description="Write 16 kHz mono WAV files and a JSON-lines manifest (path, text, voice, speed, pitch, snr, "
        "duration). The same arguments and --seed give byte-identical files.",
        epilog=EXAMPLE,
        formatter_class=RAW,
    )
    p.add_argument("--out", required=True, help="the corpus folder")
    p.add_argument("--default", action="store_true", help="the default corpus: digits, dates, commands, repeats")
    p.add_argument("--words", action="store_true", help="the spoken-word corpus: each word of --default alone")
    p.add_argument("--german", action="store_true", help="German phrases with their English translations")
    p.add_argument("--text", help="one transcript a line")
    p.add_argument("--voices", help="espeak-ng voices, comma-separated (e.g. en-us,en+f3,en-gb-scotland)")
    p.add_argument("--speeds", default="175", help="words a minute, comma-separated (default 175)")
    p.add_argument("--pitches", default="50", help="0-99, comma-separated (default 50)")
    p.add_argument("--snr", default="none", help="signal-to-noise ratios in dB, comma-separated; none is clean")
    p.add_argument("--per-line", type=int, help="random combinations per line (default: every combination)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=make_corpus)


def _numbers(flag: str, text: str, kind: type) -> list:
    try:
        return [None if kind is float and v.strip().lower() == "none" else kind(v) for v in text.split(",")]
    except ValueError:
        raise RnnkitError(f"{flag} takes comma-separated {kind.__name__}s, got {text!r}") from None


def make_corpus(args: argparse.Namespace) -> int:
    from rnnkit.data import speech

    progress = _progress()
    from rnnkit.data.speech_translation import make_german_corpus

    builtin = {"--default": args.default, "--words": args.words, "--german": args.german}
    chosen = [flag for flag, on in builtin.items() if on]
    if len(chosen) > 1:
        raise RnnkitError(f"{' and '.join(chosen)} make different corpora: give one")
    if chosen:
        if args.text or args.voices:
            raise RnnkitError(f"{chosen[0]} makes a built-in corpus: drop --text and --voices")
        makers = {
            "--default": speech.make_default_corpus,
            "--words": speech.make_word_corpus,
            "--german": make_german_corpus,
        }
        make = makers[chosen[0]]
        manifests = make(args.out, seed=args.seed, progress=progress)
    else:
        if not args.text or not args.voices:
            raise RnnkitError("give --text FILE and --voices LIST, or --default for the built-in corpus")
        manifests = {
            "corpus": speech.make_corpus(
                read_lines(args.text), args.out, voices=[v.strip() for v in args.voices.split(",")],
                speeds=_numbers("--speeds", args.speeds, int), pitches=_numbers("--pitches", args.pitches, int),
                snrs=_numbers("--snr", args.snr, float), seed=args.seed, per_line=args.per_line, progress=progress,
            )
        }  # fmt: skip
    print(file=sys.stderr)
    for name, path in manifests.items():
        print(f"{name}: {path}")
    return 0


def _progress():
    def show(done: int, total: int) -> None:
        print(f"\r{done:,}/{total:,} utterances", end="", file=sys.stderr, flush=True)

    return show
