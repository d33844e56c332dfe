"""The ``rnnkit`` command: one entry point, verb-style subcommands.

Errors are one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from rnnkit.cli import (
    autoencode,
    classify,
    ctc,
    demo,
    diagnose,
    ensemble,
    export,
    lm,
    music,
    parse,
    serve,
    speech,
    speech_ae,
    speech_translate,
    tag,
    translate,
)

#: the command groups, one module each; each has ``add_parser(subparsers)`` and sets ``func``
COMMANDS = {
    "lm": lm,
    "music": music,
    "classify": classify,
    "tag": tag,
    "translate": translate,
    "parse": parse,
    "autoencode": autoencode,  # also the top-level embed and search commands
    "speech": speech,
    "ctc": ctc,
    "speech-ae": speech_ae,
    "speech-translate": speech_translate,
    "diagnose": diagnose,
    "ensemble": ensemble,
    "export": export,
    "serve": serve,
    "demo": demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnkit", description="Recurrent neural networks end to end on PyTorch.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def one_line(message: str) -> str:
    r"""A message as one printable line: a character that would break it (a file name holding a newline or a
    record separator) is written as its escape.

    >>> one_line("x\x1e: no such file")
    'x\\x1e: no such file'
    """
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse cannot take positionals after an option (`rnnkit search RUN --index F QUERY`): a command that
    # collects trailing words names the attribute in ``trailing``; anything else unknown is an error as usual
    trailing = getattr(args, "trailing", None)
    if extra and (trailing is None or any(word.startswith("-") for word in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        setattr(args, trailing, [*getattr(args, trailing), *extra])
    previous = warnings.formatwarning
    if not args.debug:  # warnings as one line each, like the errors
        warnings.formatwarning = lambda message, category, *rest, **kw: f"rnnkit: warning: {one_line(str(message))}\n"
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `rnnkit ... | head`: the reader has what it wanted; stop quietly, as `cat` does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that flushing stdout at exit fails no more
        return 141  # 128 + SIGPIPE, the status of a command a closed pipe stopped
    except (ValueError, OSError) as err:
        if args.debug:
            raise
        print(f"rnnkit: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous


if __name__ == "__main__":
    sys.exit(main())
