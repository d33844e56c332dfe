"""Load test of ``rnnkit serve``: micro-batching against one request at a time, on loopback.

    python benchmarks/serve_load.py                        # trains a small SST-2 classifier first (about a minute)
    python benchmarks/serve_load.py runs/sst2 --clients 32 --requests 3000 --seconds 30 --rounds 3
    python benchmarks/serve_load.py --requests 200 --seconds 5 --rounds 1     # a quick check that it works

For each round and each ``--max-batch`` setting (1, then the default 32; interleaved, so that machine noise hits
both alike) it starts ``rnnkit serve RUN --port 0`` as a subprocess on 127.0.0.1, waits for ``/health``, and
drives it from this process with ``--clients`` concurrent keep-alive connections (asyncio), each posting
one SST-2 dev sentence per ``/predict`` request, until ``--requests`` are answered or ``--seconds`` pass. It
reports requests per second, p50 / p99 latency, errors (any answer but 200, and failed connections) and the
batch sizes the server achieved (its ``/health``), per round and as medians; the goal is zero errors and at
least 3x the one-at-a-time throughput at 32 clients. Writes benchmarks/results/serve_load.json.

Without RUN it trains (once; kept in runs/bench/serve_sst2) the BiLSTM-attention classifier of
configs/classify/sst2_bilstm_attn.toml for ``--train-steps`` steps: serving speed does not depend on accuracy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
SST2 = ROOT.parent / "shared" / "data" / "sst2"
DEFAULT_RUN = ROOT / "runs" / "bench" / "serve_sst2"
WORDS = ["the", "a", "movie", "film", "plot", "story", "actors", "was", "is", "very", "good", "bad", "dull", "long"]


def texts() -> list[str]:
    """SST-2 dev sentences (about 19 words each), or generated ones where the data is not there."""
    dev = SST2 / "stsa.binary.dev"
    if dev.is_file():
        return [line.split(" ", 1)[1] for line in dev.read_text().splitlines() if " " in line]
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) for _ in range(800)]


def default_run(steps: int, threads: int | None) -> Path:
    """The classifier to serve: trained once for ``steps`` steps on SST-2 (or generated text), then reused."""
    if (DEFAULT_RUN / "best.safetensors").is_file():
        return DEFAULT_RUN
    train = SST2 / "stsa.binary.train"
    if not train.is_file():
        train = DEFAULT_RUN.parent / "serve_generated.tsv"
        train.parent.mkdir(parents=True, exist_ok=True)
        rng = random.Random(1)
        train.write_text("".join(f"{rng.choice('01')}\t{text}\n" for text in texts()))
    command = [sys.executable, "-m", "rnnkit", "classify", "train", "--train", str(train), "--out", str(DEFAULT_RUN)]
    command += ["--config", str(ROOT / "configs/classify/sst2_bilstm_attn.toml"), "--max-steps", str(steps)]
    command += ["--force", "--no-progress"]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True, env=_env(threads))
    return DEFAULT_RUN


def _env(threads: int | None) -> dict[str, str]:
    return dict(os.environ) | ({"OMP_NUM_THREADS": str(threads)} if threads else {})


def start_server(run: Path, max_batch: int, threads: int | None) -> tuple[subprocess.Popen, str]:
    """``rnnkit serve RUN --port 0`` in a subprocess; returns it and its base URL once /health answers."""
    command = [sys.executable, "-m", "rnnkit", "serve", str(run), "--host", "127.0.0.1", "--port", "0"]
    command += ["--max-batch", str(max_batch), "--queue-size", "4096"]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=_env(threads))
    line = server.stderr.readline() if server.stderr else ""
    found = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not found:
        server.kill()
        raise SystemExit(f"rnnkit serve did not start: {line.strip()}")
    url = found[0]
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"{url}/health did not answer within a minute")
        time.sleep(0.1)


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGINT)  # uvicorn finishes what it has, then exits
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request on a keep-alive connection and read its answer; returns the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
    await reader.readexactly(int(length[1]) if length else 0)
    return int(head.split(b" ", 2)[1])


def request_bytes(host: str, path: str, text: str) -> bytes:
    body = json.dumps({"texts": [text]}).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def drive(url: str, sentences: list[str], clients: int, requests: int, seconds: float) -> dict:
    """``clients`` concurrent keep-alive connections posting /predict until ``requests`` answers or ``seconds`` pass.

    The clients speak HTTP/1.1 over asyncio streams themselves: httpx spends milliseconds of CPU per request,
    which on a small machine (where client and server share the cores) would measure the client, not the server.
    """
    host, port = url.removeprefix("http://").split(":")
    bodies = [request_bytes(host, "/predict", s) for s in sentences]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(clients)]
    # one request per connection first, so that connecting and the model's first call are not timed
    await asyncio.gather(*(post(r, w, bodies[k % len(bodies)]) for k, (r, w) in enumerate(connections)))
    start = time.perf_counter()
    stop_at = start + seconds

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < stop_at:
            body = bodies[issued % len(bodies)]
            issued += 1
            sent = time.perf_counter()
            try:
                status = str(await post(reader, writer, body))
            except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                status = type(err).__name__
                errors[status] = errors.get(status, 0) + 1
                return  # the connection is gone
            if status == "200":
                latencies.append(time.perf_counter() - sent)
            else:
                errors[status] = errors.get(status, 0) + 1

    await asyncio.gather(*(client(r, w) for r, w in connections))
    elapsed = time.perf_counter() - start
    for _, writer in connections:
        writer.close()
    health = httpx.get(f"{url}/health", timeout=10).json()
    latencies.sort()
    stats = health["batches"].get("predict", {})
    n = len(latencies)
    ms = [round(1000 * latencies[min(n - 1, int(q * n))], 2) for q in (0.5, 0.99)] if n else [None, None]
    return {
        "requests": len(latencies) + sum(errors.values()),
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": ms[0],
        "p99_ms": ms[1],
        "errors": errors,
        "mean_batch": round(stats.get("mean_batch", 0), 2),  # the warm-up requests included
        "max_batch": stats.get("max_batch", 0),
        "batch_sizes": stats.get("sizes", {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", help="run folder to serve (default: train a small SST-2 classifier)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (connections)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per measurement, at most")
    parser.add_argument("--seconds", type=float, default=30, help="seconds per measurement, at most")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each setting, interleaved")
    parser.add_argument("--max-batch", default="1,32", help="the --max-batch settings compared")
    parser.add_argument("--threads", type=int, default=None, help="the server's OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--train-steps", type=int, default=30, help="training steps of the default run")
    args = parser.parse_args()
    run = Path(args.run) if args.run else default_run(args.train_steps, args.threads)
    sentences = texts()
    settings = [int(x) for x in args.max_batch.split(",")]
    rounds: dict[int, list[dict]] = {m: [] for m in settings}
    for r in range(args.rounds):
        for max_batch in settings:
            server, url = start_server(run, max_batch, args.threads)
            try:
                result = asyncio.run(drive(url, sentences, args.clients, args.requests, args.seconds))
            finally:
                stop_server(server)
            rounds[max_batch].append(result)
            print(f"round {r + 1} --max-batch {max_batch}: {json.dumps(result)}", flush=True)
    summary = {
        str(m): {
            "requests_per_s": statistics.median(x["requests_per_s"] for x in results),
            "p50_ms": statistics.median(x["p50_ms"] or 0 for x in results),
            "p99_ms": statistics.median(x["p99_ms"] or 0 for x in results),
            "mean_batch": statistics.median(x["mean_batch"] for x in results),
            "errors": sum(sum(x["errors"].values()) for x in results),
        }
        for m, results in rounds.items()
    }
    payload = {
        "machine": machine() | {"server_threads": args.threads},
        "run": str(run),
        "clients": args.clients,
        "requests": args.requests,
        "seconds": args.seconds,
        "summary": summary,
        "rounds": {str(m): results for m, results in rounds.items()},
    }
    if len(settings) == 2:
        one, batched = (summary[str(m)]["requests_per_s"] for m in settings)
        payload["speedup"] = round(batched / one, 2) if one else None
    path = write_result("serve_load", payload)
    for m, s in summary.items():
        print(f"--max-batch {m:>3}: {s['requests_per_s']:8.1f} req/s  p50 {s['p50_ms']:7.2f} ms  "
              f"p99 {s['p99_ms']:7.2f} ms  mean batch {s['mean_batch']:5.2f}  errors {s['errors']}")  # fmt: skip
    if "speedup" in payload:
        print(f"speedup {payload['speedup']}x; wrote {path}")


if __name__ == "__main__":
    main()
