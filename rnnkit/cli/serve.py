"""``rnnkit serve RUN``: an HTTP JSON API over a trained run folder (``pip install 'rnnkit[serve]'``)."""

from __future__ import annotations

import argparse
import importlib.util

from rnnkit.cli.common import add_ensemble
from rnnkit.config import COMMAND_LINE, add_flags, build, pick
from rnnkit.errors import RnnkitError
from rnnkit.serve.options import ServeOptions

EXAMPLE = """examples:
  rnnkit serve runs/sst2                      # http://127.0.0.1:8000: /predict, /info, /health, /openapi.json
  rnnkit serve runs/ptb --port 8080 --max-batch 16
  curl -s localhost:8000/predict -H 'Content-Type: application/json' -d '{"texts": ["a gripping film"]}'

endpoints by task: lm /sample /score; classify, tag /predict; translate /translate; ctc /transcribe (audio
upload); music /generate (MIDI); every run /info and /health. See README.md, "Serving"."""

#: what ``rnnkit serve`` imports, by the name pip installs it under
PACKAGES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a trained run as an HTTP JSON API, with micro-batching (needs rnnkit[serve])",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run folder (any task)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000; 0: any free port)")
    p.add_argument("--access-log", action="store_true", help="log every request on stderr")
    add_ensemble(p, "answering with the run as one (taggers and classifiers; see rnnkit tag eval --help)")
    add_flags(p.add_argument_group("batching and limits"), ServeOptions)
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    missing = [pip for module, pip in PACKAGES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise RnnkitError(f"rnnkit serve needs {', '.join(missing)}: pip install 'rnnkit[serve]'")
    from rnnkit.serve.server import serve as run_server

    options = build(ServeOptions, (pick(args, ServeOptions), COMMAND_LINE))
    where = {"host": args.host, "port": args.port, "options": options, "access_log": args.access_log}
    run_server(args.run, **where, ensemble=args.ensemble)
    return 0
