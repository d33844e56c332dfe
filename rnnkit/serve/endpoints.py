"""What every task's endpoints share: the bundle a task hands the app, splitting a batch's results back into
requests, and streaming a generator as JSON lines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.requests import Request

from rnnkit.serve.batching import Batcher, Handler
from rnnkit.serve.guards import finite
from rnnkit.serve.options import ServeOptions

NDJSON = "application/x-ndjson"


@dataclass
class Endpoints:
    """A task's routes and the batch handlers they submit to (by kind)."""

    router: APIRouter
    handlers: dict[str, Handler] = field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        return [route.path for route in self.router.routes]  # type: ignore[attr-defined]


def batcher(request: Request) -> Batcher:
    return request.app.state.batcher


def options(request: Request) -> ServeOptions:
    return request.app.state.options


def flat(items: list[list[Any]]) -> list[Any]:
    """The texts of several requests as one list, for one model call."""
    return [x for texts in items for x in texts]


def split(results: list[Any], items: list[list[Any]]) -> list[list[Any]]:
    """One model call's results back into each request's share, in order."""
    out, start = [], 0
    for texts in items:
        out.append(results[start : start + len(texts)])
        start += len(texts)
    return out


def line(obj: Any) -> bytes:
    return json.dumps(finite(obj), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


async def stream_lines(
    request: Request, make: Callable[[], Iterator[Any]], piece: Callable[[Any], dict], done: Callable[[], dict]
) -> StreamingResponse:
    """``make()``'s items as JSON lines (``application/x-ndjson``), each computed on the model thread: ``piece``
    turns an item into its line, ``done()`` is the last line.

    The first item is computed before the answer starts, so that an error in the request (a generator checks
    its options when first stepped) is still a 400, not a broken 200. An error later ends the stream with an
    ``{"error": ...}`` line, the only way left to say it."""
    items = batcher(request).stream(make)
    try:
        first = await anext(items)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await items.aclose()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield line(piece(first))
                async for item in items:
                    yield line(piece(item))
            yield line(done())
        except Exception as err:  # the answer has started: the status is sent, say it in the stream
            yield line({"error": str(err).splitlines()[0] if str(err) else type(err).__name__})
        finally:
            await items.aclose()

    return StreamingResponse(body(), media_type=NDJSON)
