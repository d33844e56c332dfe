"""Tiny runs of every served task, trained once per session in about a second each, and clients for them.

``client(task, **options)`` is a FastAPI TestClient over that task's run (lifespan started, so the batcher
runs); ``live_server(app)`` serves an app with uvicorn on 127.0.0.1 and an ephemeral port, in a thread, for
what a TestClient cannot show: real concurrency, streaming over a socket, a port in use.
"""

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="rnnkit serve needs its extra: pip install 'rnnkit[serve]'")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

import warnings

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")  # its httpx2 is not out yet
from fastapi.testclient import TestClient  # noqa: E402

from rnnkit.serve.app import create_app  # noqa: E402
from rnnkit.serve.options import ServeOptions  # noqa: E402
from rnnkit.serve.server import bind  # noqa: E402
from rnnkit.tasks.registry import load_run  # noqa: E402

WORDS = ["the", "a", "movie", "film", "plot", "was", "is", "very", "story"]
SMALL = ["--no-progress", "--batch-size", "4", "--lr", "0.02"]


def _sentences(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(rng.randint(2, 6))] for _ in range(n)]


def _classify(tmp: Path, train_cli: Callable) -> Path:
    rows = [(s, "pos" if "very" in s else "neg") for s in _sentences(40, 1)]
    (tmp / "train.tsv").write_text("".join(f"{y}\t{' '.join(w)}\n" for w, y in rows))
    train_cli("classify", "train", "--train", tmp / "train.tsv", "--out", tmp / "run", *SMALL, "--hidden", "8",
              "--embed", "8", "--epochs", "1", "--pooling", "attention")  # fmt: skip
    return tmp / "run"


def _tag(tmp: Path, train_cli: Callable) -> Path:
    lines = []
    for words in _sentences(40, 2):
        lines += [f"{w} {'B-thing' if w in ('movie', 'film') else 'O'}\n" for w in words] + ["\n"]
    (tmp / "train.txt").write_text("".join(lines))
    train_cli("tag", "train", "--train", tmp / "train.txt", "--out", tmp / "run", *SMALL, "--hidden", "8",
              "--embed", "8", "--epochs", "1")  # fmt: skip
    return tmp / "run"


def _lm(tmp: Path, train_cli: Callable) -> Path:
    (tmp / "train.txt").write_text("".join(" ".join(s) + "\n" for s in _sentences(40, 3)))
    train_cli("lm", "train", "--train", tmp / "train.txt", "--level", "char", "--out", tmp / "run", *SMALL,
              "--hidden", "12", "--layers", "1", "--bptt", "10", "--epochs", "1")  # fmt: skip
    return tmp / "run"


def _translate(tmp: Path, train_cli: Callable) -> Path:
    rows = _sentences(40, 4)
    (tmp / "train.fo").write_text("".join(" ".join(w[::-1] for w in reversed(s)) + "\n" for s in rows))
    (tmp / "train.en").write_text("".join(" ".join(s) + "\n" for s in rows))
    train_cli("translate", "train", "--train", tmp / "train", "--src-lang", "fo", "--tgt-lang", "en",
              "--out", tmp / "run", *SMALL, "--hidden", "12", "--embed", "8", "--epochs", "1")  # fmt: skip
    return tmp / "run"


def _music(tmp: Path, train_cli: Callable) -> Path:
    rng = random.Random(5)
    triads = [[48, 60, 64, 67], [53, 60, 65, 69], [55, 59, 62, 67]]
    rolls = [[rng.choice(triads) for _ in range(rng.randint(4, 8))] for _ in range(12)]
    (tmp / "train.json").write_text(json.dumps(rolls))
    train_cli("music", "train", "--train", tmp / "train.json", "--out", tmp / "run", *SMALL, "--cell", "gru",
              "--hidden", "8", "--epochs", "1")  # fmt: skip
    return tmp / "run"


def _tone(seconds: float, hz: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _ctc(tmp: Path, train_cli: Callable) -> Path:
    """Two 'words' said as tones (no espeak-ng needed): what is learned does not matter, the plumbing does."""
    import soundfile as sf

    rows = []
    for i in range(8):
        text, hz = ("ab", 300) if i % 2 else ("ba", 600)
        sf.write(tmp / f"{i}.wav", _tone(0.4, hz), 16000)
        rows.append(json.dumps({"path": f"{i}.wav", "text": text}) + "\n")
    (tmp / "manifest.jsonl").write_text("".join(rows))
    train_cli("ctc", "train", "--train", tmp / "manifest.jsonl", "--out", tmp / "run", *SMALL, "--hidden", "8",
              "--layers", "1", "--channels", "8", "--n-mels", "20", "--epochs", "1")  # fmt: skip
    return tmp / "run"


TRAIN = {"classify": _classify, "tag": _tag, "lm": _lm, "translate": _translate, "music": _music, "ctc": _ctc}


@pytest.fixture(scope="session")
def runs(tmp_path_factory, train_cli) -> Callable[[str], Path]:
    """``runs("tag")``: the folder of a tiny trained run of that task, trained on first use."""
    made: dict[str, Path] = {}

    def get(task: str) -> Path:
        if task not in made:
            made[task] = TRAIN[task](tmp_path_factory.mktemp(f"serve-{task}"), train_cli)
        return made[task]

    return get


@pytest.fixture(scope="session")
def loaded(runs) -> Callable[[str], object]:
    """``loaded("tag")``: the tiny run, loaded once."""
    cache: dict[str, object] = {}

    def get(task: str) -> object:
        if task not in cache:
            cache[task] = load_run(runs(task))
        return cache[task]

    return get


@pytest.fixture
def client(loaded) -> Iterator[Callable[..., TestClient]]:
    """``client("classify", max_batch=4)``: a TestClient over the task's run with those server options."""
    opened = []

    def make(task: str, **options) -> TestClient:
        app = create_app(loaded(task), ServeOptions(**options), task=task)
        c = TestClient(app, raise_server_exceptions=False)
        c.__enter__()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 and a free port, in a thread; yields the base URL."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def tone() -> Callable[..., np.ndarray]:
    """``tone(seconds, hz, rate=16000)``: a sine wave, float32, as audio to upload."""
    return _tone


@pytest.fixture
def live_server() -> Callable:
    return serving
