"""What stands between a request and the model: size limits, UTF-8, error answers, and finite JSON.

The server must answer every request, however malformed, with a status and a one-line ``detail`` that says
what to change, and must never die of one. The pieces:

- :class:`RequestGuard`, pure ASGI middleware around the whole app: refuses a body larger than the limit (413)
  from its Content-Length before reading it, and again while reading it (a client may lie or stream); refuses
  a JSON body that is not UTF-8 (400, naming the byte); and turns any exception that escapes the app into a
  500 answer, so that nothing reaches the server as a crash.
- :func:`add_error_handlers`: validation errors (422) as ``{"detail": "body.texts.0: ...", "errors": [...]}``,
  rnnkit's own :class:`~rnnkit.errors.RnnkitError` (bad input the library caught) as 400, a full queue as 503
  with Retry-After.
- :class:`FiniteJSON`, the response class: JSON has no NaN or Infinity, so a non-finite float becomes null
  rather than an invalid document (or a 500 from ``allow_nan=False``).
- :func:`check_texts`: the per-request limits that depend on the server's flags (413) and empty texts (422).

Every error body has a string ``detail``, so a client (or the page served later) can show it as it is.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import Request

from rnnkit.errors import RnnkitError
from rnnkit.serve.batching import Busy
from rnnkit.serve.options import ServeOptions

log = logging.getLogger("rnnkit.serve")
#: the paths whose body is audio, not JSON: their own size limit, no UTF-8 check
AUDIO_PATHS = ("/transcribe",)


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) replaced by None: JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


class FiniteJSON(JSONResponse):
    """JSON as UTF-8, compact, with NaN and infinities written as null (JSON has neither)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> FiniteJSON:
    return FiniteJSON({"detail": detail}, status_code=status, headers=headers)


class RequestGuard:
    """Body size and UTF-8 checks before the app reads a byte, and a 500 answer for anything that escapes it."""

    def __init__(self, app: Any, options: ServeOptions) -> None:
        self.app, self.options = app, options

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        audio = scope["path"] in AUDIO_PATHS
        limit = self.options.max_audio_bytes if audio else self.options.max_body_bytes
        flag = "--max-audio-bytes" if audio else "--max-body-bytes"
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        too_big = error(413, f"the request body is larger than this server's {flag} {limit:,} bytes: send less")
        declared = headers.get(b"content-length", b"0").strip()
        if not declared.isdigit():
            await error(400, "the Content-Length header is not a number of bytes")(scope, receive, send)
            return
        if int(declared) > limit:
            await too_big(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await too_big(scope, receive, send)
                return
        if not audio and b"multipart/" not in headers.get(b"content-type", b""):
            problem = _not_utf8(bytes(body))
            if problem:
                await error(400, problem)(scope, receive, send)
                return
        await self._call(scope, _replay(bytes(body), receive), send)

    async def _call(self, scope: dict, receive: Any, send: Any) -> None:
        started = False

        async def send_tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as err:  # the last line of defence: log it, answer 500, keep serving
            log.exception("error answering %s %s", scope.get("method"), scope.get("path"))
            if not started:
                detail = f"internal error ({type(err).__name__}): {str(err).splitlines()[0] if str(err) else ''}"
                await error(500, detail.rstrip(": "))(scope, receive, send)


def _not_utf8(body: bytes) -> str | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as err:
        return (
            f"the request body is not UTF-8 text (byte 0x{body[err.start]:02x} at offset {err.start}): "
            "send JSON encoded as UTF-8"
        )
    return None


def _replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that gives the body already read, then defers to the server's (for the disconnect)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def add_error_handlers(app: FastAPI) -> None:
    """422 for malformed requests, 400 for rnnkit's errors, 503 for a full queue; each with a one-line detail."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> FiniteJSON:
        # no "input" or "ctx" in the answer: they may echo a megabyte of text, or hold exceptions
        errors = [
            {
                "loc": [str(x) if not isinstance(x, int) else x for x in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"])
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        detail = f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"
        return FiniteJSON({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(RnnkitError)
    async def bad_input(request: Request, exc: RnnkitError) -> FiniteJSON:
        return error(400, str(exc))

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> FiniteJSON:
        return error(503, f"the server is busy ({exc}): retry in a second", headers={"Retry-After": "1"})


def check_texts(texts: list[str], options: ServeOptions, *, what: str = "text") -> None:
    """413 for more texts, or longer ones, than the server's flags allow; 422 for an empty (blank) text."""
    if len(texts) > options.max_texts:
        raise HTTPException(
            413,
            f"{len(texts)} {what}s in one request, more than this server's --max-texts {options.max_texts}: "
            "send them in several requests",
        )
    for i, text in enumerate(texts, 1):
        if len(text) > options.max_chars:
            raise HTTPException(
                413,
                f"{what} {i} has {len(text):,} characters, more than this server's --max-chars "
                f"{options.max_chars:,}: send a shorter {what}",
            )
        if not text.strip():
            raise HTTPException(422, f"{what} {i} is empty: give each {what} at least one word")
