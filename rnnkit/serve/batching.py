"""Micro-batching: concurrent requests to one endpoint become one model call, on one model thread.

A recurrent model's forward pass costs nearly the same for 1 text as for 32 on a CPU (the cost is the Python
loop over time steps and the small matrix products' overhead), so a server that waits a few milliseconds to
gather requests answers many times more of them per second. The shape:

- :meth:`Batcher.submit` puts a job on a bounded ``asyncio.Queue`` and awaits its future; a full queue raises
  :class:`Busy` at once (the server answers 503 with Retry-After), so a burst never grows an unbounded backlog.
- One worker task takes the first job, then waits at most ``wait_ms`` for more, up to ``max_batch`` jobs; jobs
  with the same key (endpoint and options) run as one handler call; a batch that fails is rerun one job at a
  time, so one bad request fails alone.
- Every model call, batched or streamed, runs on one thread (a one-worker executor): torch models are not
  documented as safe to call from two threads at once, and one caller uses all of torch's intra-op threads
  (``torch.get_num_threads()``) anyway. The event loop stays free to accept and parse requests meanwhile.
- Streams (:meth:`Batcher.stream`) step their generator on the same thread, one item per hop, so their steps
  interleave with batches instead of holding the model for a whole sample; at most ``max_streams`` at once.

Nothing here knows HTTP: handlers take a list of items and the options and return one result per item.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

#: a handler runs one batch: (items, options) -> one result per item, in order
Handler = Callable[[list[Any], dict[str, Any]], list[Any]]
_END = object()


class Busy(Exception):
    """The queue (or the streams) are full: the client should retry later."""


@dataclass
class Job:
    kind: str
    options: tuple[tuple[str, Hashable], ...]  # hashable, so that jobs with equal options batch together
    item: Any
    future: asyncio.Future


@dataclass
class KindStats:
    """How one endpoint's requests were batched: the sizes achieved are what micro-batching is for."""

    requests: int = 0
    batches: int = 0
    sizes: Counter = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        mean = self.requests / self.batches if self.batches else 0.0
        largest = max(self.sizes, default=0)
        sizes = {str(k): v for k, v in sorted(self.sizes.items())}
        return {"requests": self.requests, "batches": self.batches, "mean_batch": mean, "max_batch": largest} | {
            "sizes": sizes
        }


class Batcher:
    """Runs handlers' jobs in micro-batches on one model thread; see the module."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        *,
        max_batch: int = 32,
        wait_ms: float = 5.0,
        queue_size: int = 256,
        max_streams: int = 16,
    ) -> None:
        self.handlers, self.max_batch, self.wait = handlers, max_batch, wait_ms / 1000
        self.queue_size, self.max_streams = queue_size, max_streams
        self.stats: dict[str, KindStats] = {}
        self.streams = 0
        self.queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    # ---------------------------------------------------------------- life

    async def start(self) -> None:
        """Start the worker on the running loop (the app's lifespan calls this)."""
        self.queue = asyncio.Queue(self.queue_size)
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            1, thread_name_prefix="rnnkit-model", initializer=torch.set_grad_enabled, initargs=(False,)
        )
        self._task = asyncio.create_task(self._work(), name="rnnkit-batcher")

    async def stop(self) -> None:
        """Stop the worker; jobs still queued fail with :class:`Busy`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self.queue is not None and not self.queue.empty():
            job = self.queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(Busy("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._task = self._executor = self.queue = None  # submit() after stop() is an error, not a hang

    @property
    def depth(self) -> int:
        return 0 if self.queue is None else self.queue.qsize()

    # ---------------------------------------------------------------- use

    async def submit(self, kind: str, item: Any, **options: Hashable) -> Any:
        """The result of ``handlers[kind]([item, ...], options)`` for ``item``, batched with other jobs of the
        same kind and options. Raises :class:`Busy` when the queue is full, and whatever the handler raised
        for this item."""
        if self.queue is None:
            raise RuntimeError("Batcher.start() was not called (the app's lifespan starts it)")
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(Job(kind, tuple(sorted(options.items())), item, future))
        except asyncio.QueueFull:
            raise Busy(f"{self.queue_size} requests are waiting for the model") from None
        self._arrived.set()
        return await future

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the model thread, outside any batch (in turn with the batches)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def stream(self, make: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
        """The items of ``make()`` as they come, each computed on the model thread. Raises :class:`Busy` now
        (not when iterated) if ``max_streams`` streams are open, so the server can still answer 503."""
        if self.streams >= self.max_streams:
            raise Busy(f"{self.max_streams} streams are open")
        return self._iterate(make)

    async def _iterate(self, make: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
        iterator = None
        self.streams += 1  # counted from the first step: a stream that never started holds no slot
        try:
            iterator = await self.call(make)
            while (item := await self.call(next, iterator, _END)) is not _END:
                yield item
        finally:  # also when the client goes away mid-stream: the slot is freed, the generator closed
            self.streams -= 1
            if iterator is not None and hasattr(iterator, "close") and self._executor is not None:
                self._executor.submit(iterator.close)

    # ---------------------------------------------------------------- worker

    async def _work(self) -> None:
        assert self.queue is not None
        while True:
            jobs = await self._gather()
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                groups.setdefault((job.kind, job.options), []).append(job)
            for (kind, options), group in groups.items():
                live = [j for j in group if not j.future.done()]  # a client that went away cancelled its future
                if live:
                    await self._run(kind, dict(options), live)

    async def _gather(self) -> list[Job]:
        """The next jobs: the first to come, and those that arrive within the wait window, up to max_batch."""
        assert self.queue is not None
        jobs = [await self.queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while len(jobs) < self.max_batch:
            while len(jobs) < self.max_batch and not self.queue.empty():
                jobs.append(self.queue.get_nowait())
            remaining = deadline - loop.time()
            if len(jobs) >= self.max_batch or remaining <= 0:
                break
            self._arrived.clear()  # waiting on an event, not on queue.get(): cancelling it cannot lose a job
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                while len(jobs) < self.max_batch and not self.queue.empty():
                    jobs.append(self.queue.get_nowait())
                break
        return jobs

    async def _run(self, kind: str, options: dict[str, Any], jobs: list[Job]) -> None:
        try:
            results = await self.call(self.handlers[kind], [j.item for j in jobs], options)
        except Exception as err:
            if len(jobs) > 1:  # which one failed? rerun them one by one, so only that one fails
                for job in jobs:
                    await self._run(kind, options, [job])
                return
            if not jobs[0].future.done():
                jobs[0].future.set_exception(err)
            return
        if not isinstance(results, list) or len(results) != len(jobs):  # a handler's bug: fail its jobs, not the worker
            error = RuntimeError(f"the {kind} handler gave {len(jobs)} request(s) no result each")
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        stats = self.stats.setdefault(kind, KindStats())
        stats.requests, stats.batches = stats.requests + len(jobs), stats.batches + 1
        stats.sizes[len(jobs)] += 1
        for job, result in zip(jobs, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)
