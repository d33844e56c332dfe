"""Micro-batching, the bounded queue and streaming: the Batcher alone, then through a real server; and starting
``rnnkit serve`` itself (a port in use, the missing extra, a run served from a subprocess)."""

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

import rnnkit.cli
from rnnkit.serve.batching import Batcher, Busy


def run_jobs(batcher: Batcher, jobs: list[tuple[str, object, dict]]) -> list:
    """Submit all jobs at once on a fresh loop; each result, or the exception it raised."""

    async def main():
        await batcher.start()
        try:
            calls = [batcher.submit(kind, item, **opts) for kind, item, opts in jobs]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_batcher_groups_jobs_by_kind_and_options_up_to_max_batch():
    calls = []

    def double(items, options):
        calls.append((len(items), options))
        return [x * options["k"] for x in items]

    batcher = Batcher({"double": double}, max_batch=4, wait_ms=20)
    results = run_jobs(batcher, [("double", i, {"k": 2 if i < 6 else 3}) for i in range(9)])
    assert results == [0, 2, 4, 6, 8, 10, 18, 21, 24]
    assert all(size <= 4 for size, _ in calls) and max(size for size, _ in calls) == 4
    assert sum(size for size, _ in calls) == 9 and {o["k"] for _, o in calls} == {2, 3}
    stats = batcher.stats["double"].snapshot()
    assert stats["requests"] == 9 and stats["max_batch"] == 4 and stats["batches"] == len(calls)


def test_a_failing_job_fails_alone_and_one_at_a_time_never_batches():
    def picky(items, options):
        if "bad" in items:
            raise ValueError("bad item")
        return [s.upper() for s in items]

    results = run_jobs(Batcher({"up": picky}, max_batch=8, wait_ms=20), [("up", s, {}) for s in ["a", "bad", "c"]])
    assert results[0] == "A" and results[2] == "C" and isinstance(results[1], ValueError)
    single = Batcher({"up": picky}, max_batch=1, wait_ms=20)
    run_jobs(single, [("up", s, {}) for s in "abcd"])
    assert single.stats["up"].sizes == {1: 4}


def test_a_full_queue_and_too_many_streams_are_busy():
    gate = threading.Event()

    def slow(items, options):
        gate.wait(5)
        return items

    async def main():
        batcher = Batcher({"slow": slow}, max_batch=1, queue_size=2, max_streams=1)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit("slow", 1))
        await asyncio.sleep(0.05)  # the worker took it and waits on the gate; two more fill the queue
        queued = [asyncio.ensure_future(batcher.submit("slow", i)) for i in (2, 3)]
        await asyncio.sleep(0.01)
        with pytest.raises(Busy, match="2 requests are waiting"):
            await batcher.submit("slow", 4)
        gate.set()
        assert await asyncio.gather(first, *queued) == [1, 2, 3]
        stream = batcher.stream(lambda: iter(range(3)))
        assert await anext(stream) == 0
        with pytest.raises(Busy, match="1 streams"):
            batcher.stream(lambda: iter(range(3)))
        assert [x async for x in stream] == [1, 2] and batcher.streams == 0
        await batcher.stop()

    asyncio.run(main())


def gate_handler(app, kind: str) -> threading.Event:
    """Hold ``kind``'s batches until the returned event is set, so that requests pile up in the queue."""
    gate, handler = threading.Event(), app.state.batcher.handlers[kind]

    def gated(items, options):
        gate.wait(10)
        return handler(items, options)

    app.state.batcher.handlers[kind] = gated
    return gate


def wait_for(predicate, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_concurrent_requests_are_batched_through_a_real_server(loaded, live_server):
    from rnnkit.serve.app import create_app

    app = create_app(loaded("classify"), task="classify")
    gate = gate_handler(app, "predict")
    texts = [" ".join(["movie"] * (i % 5 + 1) + ["very"] * (i % 3)) for i in range(16)]
    answers: dict[int, list] = {}
    with live_server(app) as url, httpx.Client(base_url=url, timeout=20) as http:

        def ask(i: int) -> None:
            # a client of its own per thread: one httpx.Client shared by 16 threads failed now and then under
            # load ("Bad file descriptor" on a pooled connection), so fewer requests reached the queue
            with httpx.Client(base_url=url, timeout=20) as own:
                answers[i] = own.post("/predict", json={"texts": [texts[i], "a plot"]}).json()["results"]

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: http.get("/health").json()["queue"] >= 8, seconds=30)
        finally:  # the held requests finish before the server stops, whatever failed
            gate.set()
            for t in threads:
                t.join(20)
        stats = http.get("/health").json()["batches"]["predict"]
    assert stats["requests"] == 16 and stats["max_batch"] > 1 and stats["batches"] < 16
    for i in range(16):  # each request got its own texts' results back, in order
        assert [token for token, _ in answers[i][0]["attention"]] == texts[i].split() and len(answers[i]) == 2


def test_a_full_queue_answers_503_with_retry_after(client):
    c = client("classify", max_batch=1, queue_size=2)
    gate = gate_handler(c.app, "predict")
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(c.post("/predict", json={"texts": ["a"]}).status_code))
               for _ in range(3)]  # fmt: skip
    for t in threads:
        t.start()
    try:  # (30 s: on a loaded machine 10 were not always enough for the three requests to arrive)
        wait_for(lambda: c.get("/health").json()["queue"] == 2, seconds=30)  # one at the model, two waiting: full
        busy = c.post("/predict", json={"texts": ["a"]})
    finally:  # whatever failed above, the held requests finish before the client closes (or the run hangs)
        gate.set()
        for t in threads:
            t.join(20)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "busy" in busy.json()["detail"]
    assert codes == [200, 200, 200]


@pytest.mark.filterwarnings("ignore:.*priming token")
def test_samples_stream_over_a_socket_line_by_line(loaded, live_server):
    from rnnkit.serve.app import create_app

    with live_server(create_app(loaded("lm"), task="lm")) as url:
        body = {"prime": "the", "length": 30, "stream": True, "seed": 2}
        with httpx.stream("POST", f"{url}/sample", json=body, timeout=10) as response:
            assert response.headers["content-type"] == "application/x-ndjson"
            lines = [json.loads(line) for line in response.iter_lines() if line]
        whole = httpx.post(f"{url}/sample", json=body | {"stream": False}, timeout=10).json()
        assert httpx.get(f"{url}/health", timeout=10).json()["streams"] == 0
    assert len(lines) >= 2 and lines[-1]["done"] and lines[-1]["text"] == whole["text"]
    assert "".join(x["piece"] for x in lines[:-1]) == whole["text"]


def test_a_port_in_use_is_one_line(runs, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = rnnkit.cli.main(["serve", str(runs("classify")), "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and err == f"rnnkit: error: port {port} on 127.0.0.1 is in use: pass --port with another " \
        "port (0: any free one)\n"  # fmt: skip


def test_serve_without_its_extra_names_the_install(runs, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else find_spec(name))
    assert rnnkit.cli.main(["serve", str(runs("classify"))]) == 2
    assert capsys.readouterr().err == "rnnkit: error: rnnkit serve needs fastapi: pip install 'rnnkit[serve]'\n"


def test_rnnkit_serve_serves_a_run_from_the_command_line(runs):
    command = [sys.executable, "-m", "rnnkit", "serve", str(runs("classify")), "--port", "0", "--max-batch", "8"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url and "/predict" in line, line
        info = httpx.get(f"{url[0]}/info", timeout=10).json()
        assert info["task"] == "classify" and info["limits"]["max_batch"] == 8
        assert httpx.post(f"{url[0]}/predict", json={"texts": ["a movie"]}, timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(10)
