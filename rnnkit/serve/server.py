"""Running the app: bind the port first (a port in use is one line, not a traceback), then hand the socket
to uvicorn, which serves until Ctrl-C or SIGTERM and then finishes the requests it has."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from rnnkit.errors import RnnkitError
from rnnkit.serve.options import ServeOptions


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port), or a one-line error saying what to do."""
    if not 0 <= port <= 65535:
        raise RnnkitError(f"--port must lie in 0..65535 (0: any free port), got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        message = f"cannot listen on {host!r} ({err.strerror}): pass --host 127.0.0.1 or a local address"
        raise RnnkitError(message) from None
    sock = socket.socket(family, kind, proto)
    # as uvicorn does: a restarted server may take the port while the old connections linger in TIME_WAIT;
    # on Linux this still refuses a port another socket listens on
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            message = f"port {port} on {host} is in use: pass --port with another port (0: any free one)"
            raise RnnkitError(message) from None
        if err.errno == errno.EACCES:
            raise RnnkitError(f"port {port} on {host} needs privileges: pass --port above 1023") from None
        raise RnnkitError(f"cannot listen on {host}:{port} ({err.strerror}): pass another --host or --port") from None
    return sock


def serve(
    path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    options: ServeOptions | None = None,
    access_log: bool = False,
    ensemble: Sequence[str | Path] = (),
) -> None:
    """Load the run in ``path`` (with ``ensemble``, it and those runs as one: taggers and classifiers) and serve
    it on ``host:port`` until interrupted."""
    import uvicorn

    from rnnkit.serve.app import create_app
    from rnnkit.tasks.registry import ensemble_loader, task_of

    options = options or ServeOptions()
    task = task_of(path).name
    loader = ensemble_loader(path, ensemble, what="serves")
    sock = bind(host, port)  # before loading the model: a port in use is said at once
    try:
        app = create_app(loader(), options, task=task)
    except BaseException:
        sock.close()
        raise
    config = uvicorn.Config(
        app,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        timeout_graceful_shutdown=5,
        limit_concurrency=options.queue_size + options.max_streams + 64,  # beyond it uvicorn answers 503 at once
    )
    bound = sock.getsockname()
    where = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    paths = " ".join(app.state.task_paths)
    what = f"{task} run {path}" + (f" with {len(ensemble)} more as one ensemble" if ensemble else "")
    print(
        f"serving {what} at http://{where}:{bound[1]} ({paths or 'no task endpoints'}; /info, "
        "/health, /openapi.json); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(config).run(sockets=[sock])
