"""Reliability tests found by machines: generated flags, config files, corrupted run folders, killed training.

Every command must end in one of two ways: success (exit 0), or a clean failure (exit 2, one
``rnnkit: error: ...`` line last on stderr, no traceback); and a failing command leaves every file of an
existing run byte for byte as it was. Training killed at any moment leaves a folder that is either no run
at all (a fresh start works) or a run that loads and resumes to exactly the weights of an uninterrupted run.

How much is generated is a Hypothesis profile (and, for the kill tests, a number of kills), chosen by the
environment variable ``RNNKIT_HYPOTHESIS_PROFILE``:

- ``ci`` (the default): bounded, the whole folder runs in about a minute on two cores::

      .venv/bin/python -m pytest -q tests/reliability

- ``long``: many more examples and kills, for a local run of several minutes to an hour::

      RNNKIT_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q tests/reliability

  Add ``--hypothesis-seed=N`` to explore another part of the space, ``--hypothesis-show-statistics`` to
  see what was generated, and ``RNNKIT_RELIABILITY_TRACE=FILE`` to log every command (seconds, exit code,
  argv) to FILE, e.g. to find slow ones.

The profile is loaded for the whole session (as Hypothesis profiles are); tests elsewhere that set their
own ``settings(...)`` keep them. A failure prints the falsifying example and a ``@reproduce_failure`` blob
that replays it; Hypothesis also replays it first on the next run (its database, ``.hypothesis/``).

A malformed command line (``--hidden abc``) is argparse's answer: ``usage: ...`` then one
``rnnkit ...: error: argument ...`` line, exit 2. It is not the one-line form, but it is the project's
chosen answer (tests/test_cli.py), so :func:`assert_clean_outcome` accepts it where junk is generated.

The helpers are fixtures (tests/ is not a package): ``run_cli``, ``copy_run``, ``snapshot``,
``assert_clean_failure``, ``assert_clean_outcome``; the tiny trained runs are the session fixtures
``lm_run``, ``music_run``, ``classify_run`` and ``tag_run`` (never modify them: copy them with ``copy_run``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import resource
import shutil
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, settings

import rnnkit.cli

# -- how much is generated -----------------------------------------------------------------------------------

PROFILE = os.environ.get("RNNKIT_HYPOTHESIS_PROFILE", "ci")
_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("ci", max_examples=50, **_COMMON)
settings.register_profile("long", max_examples=1000, **_COMMON)
if PROFILE not in ("ci", "long"):
    raise pytest.UsageError(f"RNNKIT_HYPOTHESIS_PROFILE must be ci or long, got {PROFILE!r}")
settings.load_profile(PROFILE)
LONG = PROFILE == "long"

#: seconds one in-process command may take before it counts as hung (a finding, not a slow test)
COMMAND_TIMEOUT = 60
#: bytes of address space one in-process command may add: a command that tries to allocate more fails
#: (torch raises) instead of taking the machine down; a clean refusal must come before any allocation
MEMORY_CAP = 3 * 2**30
TRACE = os.environ.get("RNNKIT_RELIABILITY_TRACE")

# -- running the command line in-process ---------------------------------------------------------------------


class CommandTimeout(BaseException):
    """Raised by SIGALRM in a command that ran past COMMAND_TIMEOUT (not an OSError: main() must not catch it)."""


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def memory_cap(extra: int = MEMORY_CAP):
    """Lower the soft RLIMIT_AS to the current address space plus ``extra`` for the block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def time_limit(seconds: int):
    def expire(signum, frame):
        raise CommandTimeout(f"the command ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def redirect_stdin(data: bytes | None):
    """``data`` as stdin, piped in and read as a UTF-8 locale reads it (strict); None: stdin as it is."""
    if data is None:
        yield
        return
    previous = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict")
    try:
        yield
    finally:
        sys.stdin = previous


def run_cli(
    argv: list, *, timeout: int = COMMAND_TIMEOUT, cap: int | None = MEMORY_CAP, stdin: bytes | None = None
) -> tuple[int, str, str]:
    """``rnnkit ARGV`` in this process: (exit code, stdout, stderr); ``stdin``: the bytes piped in, if any.

    What a real process would show is reproduced: argparse's SystemExit gives its code; an exception that
    escapes ``rnnkit.cli.main`` is exit 1 with its traceback on stderr (as Python prints it); a command that
    runs past ``timeout`` seconds is exit 124 with "Traceback ... CommandTimeout" on stderr.
    """
    argv = [str(a) for a in argv]
    started = time.monotonic()
    # as a terminal in a UTF-8 locale: stdout strict (an unencodable character is an error), stderr lenient
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    formatwarning = warnings.formatwarning
    try:
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            redirect_stdin(stdin),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("always")  # every command shows its warnings, as a fresh process would
            warnings.showwarning = _show_on(err)  # on its stderr (under pytest: not in pytest's warnings summary)
            with memory_cap(cap) if cap else contextlib.nullcontext(), time_limit(timeout):
                try:
                    code = rnnkit.cli.main(argv)
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                except CommandTimeout:
                    err.write(traceback.format_exc())  # "Traceback ...": a hang is never clean
                    code = 124
                except (Exception, KeyboardInterrupt):
                    err.write(traceback.format_exc())  # starts with "Traceback (most recent call last):"
                    code = 1
    finally:
        torch.set_num_threads(threads)
        warnings.formatwarning = formatwarning
    if TRACE:  # RNNKIT_RELIABILITY_TRACE=FILE: one line per command (seconds, exit code, argv), to find slow ones
        with open(TRACE, "a", encoding="utf-8") as f:
            f.write(f"{time.monotonic() - started:7.2f}s exit {code:3d}  {_argv_text(argv)!r}\n")
    return code, _text(out), _text(err)


def _show_on(stream: io.TextIOWrapper) -> Callable:
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        stream.write(warnings.formatwarning(message, category, filename, lineno, line))

    return show


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", "replace")


def _argv_text(argv) -> str:
    return " ".join(str(a) for a in argv)


# -- what a clean outcome is ---------------------------------------------------------------------------------

ERROR = "rnnkit: error: "


def assert_clean_failure(code: int, err: str, argv=None) -> str:
    """Exit 2, the last non-empty stderr line is the one ``rnnkit: error: ...`` line, and no traceback
    (``rnnkit: warning:`` lines and training's progress lines may come before it). Returns the error line."""
    where = f"\nargv: {_argv_text(argv)}" if argv is not None else ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, f"a traceback (exit {code}):{where}\n{err[-3000:]}"
    assert code == 2, f"exit {code}, not 2:{where}\n{err[-3000:]}"
    assert lines and lines[-1].startswith(ERROR), f"the last stderr line is not an rnnkit error:{where}\n{err[-3000:]}"
    errors = [line for line in lines if "rnnkit: error:" in line]
    assert len(errors) == 1, f"{len(errors)} error lines:{where}\n{err[-3000:]}"
    return lines[-1]


def is_usage_error(code: int, err: str) -> bool:
    """argparse's refusal of a command line: exit 2, ``usage: rnnkit ...`` and one ``rnnkit ...: error:``.

    It is not the one-line form (argparse prints the usage first) but it is the project's chosen answer to a
    malformed command line (tests/test_cli.py); it is accepted where an unparseable value is generated.
    """
    lines = [line for line in err.splitlines() if line.strip()]
    return (
        code == 2
        and "Traceback" not in err
        and bool(lines)
        and lines[0].startswith("usage: rnnkit")
        and lines[-1].startswith("rnnkit ")
        and ": error: " in lines[-1]
        and sum(": error: " in line for line in lines) == 1
    )


def assert_clean_outcome(code: int, err: str, argv=None, *, usage_ok: bool = True) -> str | None:
    """Success (exit 0), or a clean failure (see :func:`assert_clean_failure`), or, with ``usage_ok``,
    argparse's usage error. Returns the error line of a failure, None on success."""
    if code == 0 and "Traceback" not in err:
        return None
    if usage_ok and is_usage_error(code, err):
        return err.strip().splitlines()[-1]
    return assert_clean_failure(code, err, argv)


# -- run folders ---------------------------------------------------------------------------------------------

LOCK = ".lock"


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder``: a file's bytes, None for a folder; the lock file is left out (each
    writer rewrites its PID there, and a failed writer may create it)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    entries: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if name == LOCK:
            continue
        if path.is_symlink():
            entries[name] = b"-> " + os.fsencode(os.readlink(path))
        elif path.is_dir():
            entries[name] = None
        else:
            entries[name] = path.read_bytes()
    return entries


def describe_change(before: dict, after: dict) -> str:
    """Which entries a command added, removed or changed (for the assertion message)."""
    added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = []
    for name in changed[:4]:
        a, b = before[name] or b"", after[name] or b""
        at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        parts.append(f"{name}: {len(a)} -> {len(b)} bytes, first difference at byte {at}")
    return f"added {added}, removed {removed}, changed {changed} ({'; '.join(parts)})"


def assert_unchanged(before: dict, folder: Path, argv=None, err: str = "") -> None:
    after = snapshot(folder)
    if after != before:
        where = f"argv: {_argv_text(argv)}\n" if argv is not None else ""
        raise AssertionError(
            f"a failed command changed the run:\n{where}{describe_change(before, after)}\nstderr:\n{err[-2000:]}"
        )


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a run folder (lock file included), to mutate or train into."""
    shutil.copytree(src, dst, symlinks=True)
    return Path(dst)


def staging_leftovers(run_dir: Path) -> list[str]:
    """Hidden staging siblings (``.RUN.new-PID``) a writer left next to ``run_dir``."""
    run_dir = Path(run_dir)
    return sorted(p.name for p in run_dir.parent.glob(f".{run_dir.name}.new-*"))


# -- tiny data and runs --------------------------------------------------------------------------------------


def write_corpus(path: Path, n: int = 244, seed: int = 1) -> Path:
    """Characters of "abcde fg" and newlines: with --batch-size 4 --bptt 5, 12 steps per epoch."""
    rng = random.Random(seed)
    path.write_text("".join(rng.choice("abcde fg\n") for _ in range(n)), encoding="utf-8")
    return path


def chorales(n: int, seed: int) -> list:
    """Four-voice 'chorales' on C major triads, 5 to 12 steps each (as tests/cli/test_cli_music.py)."""
    rng = random.Random(seed)
    triads = [[48, 60, 64, 67], [53, 60, 65, 69], [55, 59, 62, 67]]
    return [[rng.choice(triads) for _ in range(rng.randint(5, 12))] for _ in range(n)]


def reviews(n: int, seed: int) -> str:
    """TSV lines ``label<TAB>text`` of 2 to 6 words; "good" in about half of them: pos, else neg."""
    rng = random.Random(seed)
    words = ["the", "a", "movie", "film", "plot", "was", "very", "dull"]
    lines = []
    for _ in range(n):
        text, good = [rng.choice(words) for _ in range(rng.randint(2, 6))], rng.random() < 0.5
        lines.append(("pos\tgood " if good else "neg\t") + " ".join(text))
    return "".join(line + "\n" for line in lines)


def flights(n: int, seed: int) -> str:
    """CoNLL sentences (``word TAG`` lines, a blank line after each) with BIO spans of cities."""
    rng = random.Random(seed)
    cities = ["boston", "denver", "new york", "san francisco"]
    templates = ["fly from {from} to {to}", "show me flights to {to}", "fares from {from} to {to} on monday"]
    sentences = []
    for _ in range(n):
        rows = []
        for word in rng.choice(templates).split():
            if word.startswith("{"):
                city = rng.choice(cities).split()
                rows += [f"{w} {'I' if i else 'B'}-{word[1:-1]}" for i, w in enumerate(city)]
            else:
                rows.append(f"{word} O")
        sentences.append("".join(row + "\n" for row in rows))
    return "\n".join(sentences) + "\n"


LM_MODEL = ["--hidden", "8", "--layers", "1", "--batch-size", "4", "--bptt", "5"]
MUSIC_MODEL = ["--cell", "gru", "--hidden", "12", "--batch-size", "3", "--lr", "0.01"]
CLASSIFY_MODEL = ["--hidden", "8", "--embed", "8", "--batch-size", "4", "--eval-batch-size", "4", "--lr", "0.01"]
TAG_MODEL = CLASSIFY_MODEL
#: the step each trained run fixture stops at (inside epoch 2): a --resume of a copy must ask for more
RUN_STEPS = {"lm": 14, "music": 10, "classify": 8, "tag": 8}


def data_files(folder: Path, suffix: str, train: str, valid: str) -> SimpleNamespace:
    (folder / f"train{suffix}").write_text(train, encoding="utf-8")
    (folder / f"valid{suffix}").write_text(valid, encoding="utf-8")
    return SimpleNamespace(dir=folder, train=folder / f"train{suffix}", valid=folder / f"valid{suffix}")


@pytest.fixture(scope="session")
def lm_data(tmp_path_factory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("lm-data")
    return SimpleNamespace(
        dir=tmp, train=write_corpus(tmp / "train.txt"), valid=write_corpus(tmp / "valid.txt", n=60, seed=2)
    )


@pytest.fixture(scope="session")
def music_data(tmp_path_factory) -> SimpleNamespace:
    return data_files(
        tmp_path_factory.mktemp("music-data"), ".json", json.dumps(chorales(24, 1)), json.dumps(chorales(6, 2))
    )


@pytest.fixture(scope="session")
def classify_data(tmp_path_factory) -> SimpleNamespace:
    """24 training and 8 validation texts (TSV)."""
    return data_files(tmp_path_factory.mktemp("classify-data"), ".tsv", reviews(24, 1), reviews(8, 2))


@pytest.fixture(scope="session")
def tag_data(tmp_path_factory) -> SimpleNamespace:
    """24 training and 8 validation sentences (CoNLL, BIO tags)."""
    return data_files(tmp_path_factory.mktemp("tag-data"), ".txt", flights(24, 1), flights(8, 2))


def lm_train_argv(data: SimpleNamespace, out: Path, *extra) -> list[str]:
    """A tiny char-level LM run (12 steps an epoch), validated after each epoch."""
    argv = ["lm", "train", "--train", data.train, "--valid", data.valid, "--level", "char", "--out", out]
    return [str(a) for a in [*argv, "--eval-batch-size", "2", *LM_MODEL, "--no-progress", *extra]]


def _train_argv(task: str, model: list[str], data: SimpleNamespace, out: Path, extra) -> list[str]:
    argv = [task, "train", "--train", data.train, "--valid", data.valid, "--out", out]
    return [str(a) for a in [*argv, *model, "--no-progress", *extra]]


def music_train_argv(data: SimpleNamespace, out: Path, *extra) -> list[str]:
    """A tiny music run (8 steps an epoch), validated after each epoch."""
    return _train_argv("music", MUSIC_MODEL, data, out, extra)


def classify_train_argv(data: SimpleNamespace, out: Path, *extra) -> list[str]:
    """A tiny classifier (6 steps an epoch), validated after each epoch."""
    return _train_argv("classify", CLASSIFY_MODEL, data, out, extra)


def tag_train_argv(data: SimpleNamespace, out: Path, *extra) -> list[str]:
    """A tiny tagger (6 steps an epoch), validated after each epoch."""
    return _train_argv("tag", TAG_MODEL, data, out, extra)


def trained_run(tmp_path_factory, task: str, argv: Callable, data: SimpleNamespace, *extra) -> Path:
    """A run of ``task`` trained for RUN_STEPS[task] steps of 3 epochs, logging every step."""
    out = tmp_path_factory.mktemp(f"{task}-run") / "run"
    steps = ["--epochs", "3", "--max-steps", RUN_STEPS[task], "--log-every", "1"]
    code, _, err = run_cli(argv(data, out, *steps, *extra))
    assert code == 0, err
    return out


@pytest.fixture(scope="session")
def lm_run(lm_data, tmp_path_factory) -> Path:
    """A trained LM run stopped at step 14 (inside epoch 2): every file of a run, best weights included."""
    return trained_run(tmp_path_factory, "lm", lm_train_argv, lm_data)


@pytest.fixture(scope="session")
def music_run(music_data, tmp_path_factory) -> Path:
    """A trained music run stopped at step 10 (inside epoch 2)."""
    return trained_run(tmp_path_factory, "music", music_train_argv, music_data)


@pytest.fixture(scope="session")
def classify_run(classify_data, tmp_path_factory) -> Path:
    """A trained classifier with attention pooling (so predict can show it) stopped at step 8 (inside epoch 2)."""
    return trained_run(tmp_path_factory, "classify", classify_train_argv, classify_data, "--pooling", "attention")


@pytest.fixture(scope="session")
def tag_run(tag_data, tmp_path_factory) -> Path:
    """A trained tagger with a CRF (so predict --scores gives marginals) stopped at step 8 (inside epoch 2)."""
    return trained_run(tmp_path_factory, "tag", tag_train_argv, tag_data, "--crf")


# -- the helpers as fixtures ---------------------------------------------------------------------------------


class Helpers(SimpleNamespace):
    def __repr__(self) -> str:  # short, in Hypothesis's falsifying examples
        return "helpers"


@pytest.fixture(scope="session")
def helpers() -> Helpers:
    """Every helper above in one namespace, for tests that use several."""
    return Helpers(
        run_cli=run_cli,
        copy_run=copy_run,
        snapshot=snapshot,
        assert_clean_failure=assert_clean_failure,
        assert_clean_outcome=assert_clean_outcome,
        assert_unchanged=assert_unchanged,
        is_usage_error=is_usage_error,
        staging_leftovers=staging_leftovers,
        lm_train_argv=lm_train_argv,
        music_train_argv=music_train_argv,
        classify_train_argv=classify_train_argv,
        tag_train_argv=tag_train_argv,
        RUN_STEPS=RUN_STEPS,
        write_corpus=write_corpus,
        chorales=chorales,
        reviews=reviews,
        flights=flights,
        memory_cap=memory_cap,
        LONG=LONG,
        PROFILE=PROFILE,
    )


def _fixture(value: Callable) -> Callable:
    return pytest.fixture(scope="session", name=value.__name__)(lambda: value)


run_cli_fixture = _fixture(run_cli)
copy_run_fixture = _fixture(copy_run)
snapshot_fixture = _fixture(snapshot)
assert_clean_failure_fixture = _fixture(assert_clean_failure)
assert_clean_outcome_fixture = _fixture(assert_clean_outcome)


@pytest.fixture
def scratch(tmp_path):
    """A fresh folder per Hypothesis example (tmp_path is shared by all examples of a test): ``scratch()``."""
    counter = iter(range(10**9))

    def make() -> Path:
        path = tmp_path / f"ex{next(counter)}"
        path.mkdir()
        return path

    return make
