"""The HTTP app over one loaded run: ``/health``, ``/info``, ``/openapi.json`` and the run's task endpoints.

``create_app(run)`` builds a FastAPI app; :func:`rnnkit.serve.server.serve` runs it under uvicorn. Which
endpoints exist depends on the run's task (:data:`TASK_ENDPOINTS`); ``/info`` lists them, so a client need not
know the task in advance. A run of a task with no endpoints yet (parse, the autoencoders) still serves
``/health`` and ``/info``.

``GET /`` is a page for people (rnnkit/serve/static: plain HTML and one script over this API, nothing fetched
from elsewhere): it offers the run's actions, streams samples, colours tags over the words, draws a
translation's attention, transcribes an uploaded WAV and plays or downloads a generated chorale.

There is no ``/docs`` page: FastAPI's Swagger UI loads its script from a CDN, which a server on a machine
without internet access (or a careful user's browser) cannot reach, so it would be a blank page. The OpenAPI
document is served at ``/openapi.json`` for any OpenAPI viewer.

>>> from rnnkit.serve.options import ServeOptions
>>> ServeOptions(max_batch=1).max_batch  # one request at a time: what micro-batching is measured against
1
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request

import rnnkit
from rnnkit.config import to_dict
from rnnkit.data.labels import Labels
from rnnkit.data.vocab import Vocabulary
from rnnkit.io import read_json
from rnnkit.serve.batching import Batcher
from rnnkit.serve.endpoints import Endpoints
from rnnkit.serve.guards import FiniteJSON, RequestGuard, add_error_handlers
from rnnkit.serve.lm import lm_endpoints
from rnnkit.serve.media import ctc_endpoints, music_endpoints
from rnnkit.serve.options import ServeOptions
from rnnkit.serve.text_tasks import classify_endpoints, tag_endpoints, translate_endpoints

STATIC = Path(__file__).parent / "static"

#: each task with endpoints -> the function that makes them from a loaded run
TASK_ENDPOINTS: dict[str, Callable[[Any], Endpoints]] = {
    "lm": lm_endpoints,
    "music": music_endpoints,
    "classify": classify_endpoints,
    "tag": tag_endpoints,
    "translate": translate_endpoints,
    "ctc": ctc_endpoints,
}


def create_app(run: Any, options: ServeOptions | None = None, *, task: str | None = None) -> FastAPI:
    """A FastAPI app serving ``run`` (what :func:`rnnkit.tasks.registry.load_run` returns); ``task`` is read
    from the run folder when not given. Its lifespan starts and stops the batcher: use the app under a server,
    or ``with TestClient(app) as client``."""
    from rnnkit.tasks.registry import task_of

    options = options or ServeOptions()
    task = task or task_of(run.path).name
    endpoints = TASK_ENDPOINTS[task](run) if task in TASK_ENDPOINTS else Endpoints(router=_empty_router())
    batcher = Batcher(
        endpoints.handlers,
        max_batch=options.max_batch,
        wait_ms=options.batch_wait_ms,
        queue_size=options.queue_size,
        max_streams=options.max_streams,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title=f"rnnkit serve: {task} run {run.path.name}",
        version=rnnkit.__version__,
        docs_url=None,  # Swagger UI needs a CDN: see the module docstring
        redoc_url=None,
        default_response_class=FiniteJSON,
        lifespan=lifespan,
    )
    app.state.batcher, app.state.options, app.state.run, app.state.task = batcher, options, run, task
    app.state.task_paths = endpoints.paths
    info = run_info(run, task, options, ["/health", "/info", "/openapi.json", *endpoints.paths])

    @app.get("/health", tags=["server"])
    async def health(request: Request) -> dict:
        """``{"status": "ok", "queue", "queue_size", "streams", "batches": {kind: {"requests", "batches",
        "mean_batch", "max_batch", "sizes": {size: count}}}}``: how busy the server is and how well it batches."""
        b: Batcher = request.app.state.batcher
        batches = {kind: stats.snapshot() for kind, stats in b.stats.items()}
        return {"status": "ok", "queue": b.depth, "queue_size": b.queue_size, "streams": b.streams} | {
            "batches": batches
        }

    @app.get("/info", tags=["server"])
    async def run_information() -> dict:
        """The run: ``task``, ``run`` (folder name), ``parameters``, ``vocab_sizes``, ``endpoints``, ``config``
        (config.json's sections), ``limits`` (this server's flags) and the rnnkit and torch versions."""
        return info

    app.include_router(endpoints.router)
    # the page for people at /, its script under /static: files as they are, no build step; not a mount at / (it
    # would answer every unknown path, and shadow routes added later)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    add_error_handlers(app)
    app.add_middleware(RequestGuard, options=options)
    return app


def run_info(run: Any, task: str, options: ServeOptions, paths: list[str]) -> dict[str, Any]:
    config = read_json(run.path / "config.json", what="run config")
    sections = {k: v for k, v in config.items() if isinstance(v, dict)}
    members = getattr(run, "members", ()) or (run,)  # an ensemble's runs (its config: the first run's)
    return {
        "task": task,
        "run": run.path.name,
        **({"ensemble": [m.path.name for m in members]} if len(members) > 1 else {}),
        "parameters": sum(p.numel() for m in members for p in m.model.parameters()),
        "vocab_sizes": vocab_sizes(run) | ({"keys": 88} if task == "music" else {}),
        "endpoints": paths,
        "config": sections,
        "limits": to_dict(options),
        "rnnkit": rnnkit.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def vocab_sizes(run: Any) -> dict[str, int]:
    """The size of each vocabulary and label set a run holds, by its attribute name (a tagger's by its field)."""
    found = {}
    for name, value in vars(run).items():
        members = value._asdict().items() if isinstance(value, tuple) and hasattr(value, "_asdict") else [(name, value)]
        for key, v in members:
            if isinstance(v, Vocabulary | Labels):
                found[key] = len(v)
    return found


def _empty_router() -> Any:
    from fastapi import APIRouter

    return APIRouter()
