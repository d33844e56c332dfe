"""A run folder's safety: what is rnnkit's own, one writer at a time, and replacing a run without losing it.

Three guarantees, each for every task:

- **rnnkit deletes only what it wrote.** A folder is an rnnkit run when its ``config.json`` has the shape
  rnnkit writes (a table with a ``train`` table and the task's other tables). ``--force`` replaces a run only
  when the folder holds nothing but rnnkit's own files (:data:`RUN_FILES`); anything else is named and kept.
- **One writer.** Training holds an OS lock (``flock``) on ``RUN/.lock`` for as long as it runs. A second
  writer is refused with the PID of the first. The kernel drops the lock when its process dies, however it
  dies, so a stale lock is simply taken over.
- **A new run is complete before it replaces the old one.** Its config, vocabulary and a step-0 checkpoint
  are written into a hidden sibling folder (``.RUN.new-PID``) and swapped with ``RUN`` in one atomic
  ``renameat2(RENAME_EXCHANGE)``: at every instant ``RUN`` is the whole old run or the whole new one. A
  failure while preparing (bad data, a model that does not fit in memory, Ctrl-C) leaves the old run as it
  was, byte for byte; a staging folder that a killed process left behind is removed by the next writer.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rnnkit.errors import RnnkitError
from rnnkit.io import fsync

#: every name rnnkit writes in any run folder (``*.tmp`` files of atomic writes are rnnkit's too; each task's
#: own files are listed in its config.json: :func:`task_files`)
RUN_FILES = frozenset(
    {
        "config.json",
        "best.safetensors",
        "metrics.jsonl",
        "checkpoint",
        "checkpoint.old",
        "checkpoint.tmp",
        "tensorboard",
        ".lock",
    }
)
LOCK = ".lock"


#: config.json's keys that are not config tables: the task's name, rnnkit's version, the task's own files
META_KEYS = ("task", "rnnkit", "files")


def looks_like_run(config: Any) -> bool:
    """Whether a parsed ``config.json`` has the shape rnnkit writes."""
    return (
        isinstance(config, dict)
        and isinstance(config.get("train"), dict)
        and all(isinstance(v, dict) for k, v in config.items() if k not in META_KEYS)
    )


def task_files(path: Path) -> set[str]:
    """The files a run's task wrote besides the common ones (``vocab.json``, ``labels.json``, ...), as its
    config.json lists them; runs from before that list had only ``vocab.json``."""
    config = _config(path)
    files = config.get("files", ["vocab.json"]) if isinstance(config, dict) else []
    ok = isinstance(files, list) and all(isinstance(f, str) and f and "/" not in f and f[0] != "." for f in files)
    return set(files) if ok else set()


def is_run(path: Path) -> bool:
    """Whether ``path`` is an rnnkit run folder (its config.json parses and has rnnkit's shape)."""
    return looks_like_run(_config(path))


def _config(path: Path) -> Any:
    """A folder's parsed config.json, or None where there is none that parses."""
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


#: what rnnkit writes inside its folders (a checkpoint's files; TensorBoard's event files)
CHECKPOINT_FILES = frozenset({"model.safetensors", "trainer.safetensors", "trainer.json"})


def foreign_entries(path: Path) -> list[str]:
    """The entries in ``path``, and inside its checkpoint and tensorboard folders, that rnnkit did not write."""
    foreign, own = [], RUN_FILES | task_files(path)
    for entry in sorted(path.iterdir()):
        if entry.name not in own and not _temporary(entry.name):
            foreign.append(entry.name)
        elif entry.name == "checkpoint.tmp":
            continue  # rnnkit's scratch folder, emptied by every checkpoint write
        elif entry.name.startswith("checkpoint") and entry.is_dir() and not entry.is_symlink():
            foreign += [f"{entry.name}/{p.name}" for p in sorted(entry.iterdir()) if not _own_checkpoint_file(p)]
        elif entry.name == "tensorboard" and entry.is_dir() and not entry.is_symlink():
            foreign += [f"tensorboard/{p.name}" for p in sorted(entry.iterdir()) if not _tensorboard_file(p)]
        elif entry.is_symlink() or (entry.is_dir() != (entry.name in _FOLDERS)):
            foreign.append(entry.name)  # a link, or a folder where rnnkit writes a file (or the reverse)
    return foreign


_FOLDERS = frozenset({"checkpoint", "checkpoint.old", "checkpoint.tmp", "tensorboard"})


def _temporary(name: str) -> bool:
    """rnnkit's ``NAME.PID.tmp`` and safetensors' own ``.tmpXXXXXX`` files (a write killed midway leaves one)."""
    return name.endswith(".tmp") or name.startswith(".tmp")


def _own_checkpoint_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and (path.name in CHECKPOINT_FILES or _temporary(path.name))


def _tensorboard_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and path.name.startswith("events.out.tfevents.")


def check_target(run_dir: Path, *, resume: bool, force: bool, command: str) -> None:
    """Refuse, before anything is read or written, to train into ``run_dir`` in a way that could lose data.

    ``command`` is how the user trains this task (``rnnkit lm train``), for the advice.
    """
    if resume and force:
        raise RnnkitError("--resume continues a run and --force starts over: pass one of them")
    exists = run_dir.is_dir()
    if run_dir.exists() and not exists:
        raise RnnkitError(f"{run_dir} is a file, not a run folder: choose another --out")
    if resume:
        if not exists or not is_run(run_dir):
            raise RnnkitError(f"{run_dir} is not an rnnkit run folder, so nothing to resume: drop --resume to start")
        return
    entries = [name for name in os.listdir(run_dir) if name != LOCK] if exists else []
    if not entries:
        return
    if not is_run(run_dir):
        shown = ", ".join(shown_name(n) for n in (foreign_entries(run_dir)[:5] or entries[:5]))
        raise RnnkitError(
            f"{run_dir} is not an empty folder or an rnnkit run (it holds {shown}); rnnkit never deletes "
            "what it did not write: choose another --out"
        )
    if not force:
        raise RnnkitError(
            f"{run_dir} holds another run: continue it with {command} --out {run_dir} --resume, "
            "replace it with --force, or choose another --out"
        )
    foreign = foreign_entries(run_dir)
    if foreign:
        raise RnnkitError(
            f"{run_dir} also holds files rnnkit did not write ({', '.join(map(shown_name, foreign[:5]))}): --force "
            "replaces only a folder of rnnkit's own files; move them out or choose another --out"
        )


def shown_name(name: str) -> str:
    """A file name as a message can show it on one line (control characters escaped)."""
    return name if name.isprintable() and name.strip() else ascii(name)


class RunLock:
    """The one-writer lock of a run folder, held from ``acquire`` to ``release`` (or process exit).

    For a folder that does not exist yet, ``acquire`` creates it and ``release`` removes it again if the
    run was never installed (nothing is left behind by a failed start).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.fd, self.created = Path(run_dir), None, False

    def acquire(self) -> RunLock:
        if not self.run_dir.exists():
            try:
                self.run_dir.mkdir(parents=True)
            except OSError as err:
                raise RnnkitError(f"{self.run_dir}: cannot create the run folder ({err.strerror})") from None
            self.created = True
        self.fd = _lock_file(self.run_dir / LOCK)
        _remove_stale_staging(self.run_dir)
        _remove_stale_temporaries(self.run_dir)
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None
        if self.created:  # never installed: leave no empty folder behind
            (self.run_dir / LOCK).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()

    def install(self, populate: Callable[[Path], None]) -> None:
        """Write a new run with ``populate(folder)`` into a staging folder, then swap it into place."""
        staging = _staging_dir(self.run_dir, os.getpid())
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir()
            populate(staging)
            new_fd = _lock_file(staging / LOCK)  # locked before it becomes RUN/.lock: no gap for a second writer
            fsync(staging)
            _exchange(staging, self.run_dir)  # staging now holds the old run (or the empty folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        os.close(self.fd)  # the old lock file is in the old run, about to go
        self.fd, self.created = new_fd, False
        fsync(self.run_dir.parent)
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def locked(run_dir: Path, enabled: bool = True) -> Iterator[RunLock | None]:
    """``with locked(run_dir) as lock:``: the run's writer lock for the block (``None`` when not enabled)."""
    if not enabled:
        yield None
        return
    lock = RunLock(run_dir).acquire()
    try:
        yield lock
    finally:
        lock.release()


def _lock_file(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "another process"
        os.close(fd)
        raise RnnkitError(
            f"{path.parent} is being written by process {holder} (it holds {path}): wait for it to finish or "
            "stop it, then try again"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _staging_dir(run_dir: Path, pid: int) -> Path:
    return run_dir.parent / f".{run_dir.name}.new-{pid}"


def _remove_stale_staging(run_dir: Path) -> None:
    """Staging folders of writers that died (we hold the lock, so no live writer is using one)."""
    for path in run_dir.parent.glob(f".{run_dir.name}.new-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _remove_stale_temporaries(run_dir: Path) -> None:
    """``NAME.PID.tmp`` files of atomic writes whose writer died before renaming them into place."""
    for path in [*run_dir.glob("*.*.tmp"), *run_dir.glob("checkpoint*/*.*.tmp")]:
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
    for path in [*run_dir.glob(".tmp*"), *run_dir.glob("checkpoint*/.tmp*")]:  # safetensors' own; we hold the lock
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders atomically (Linux renameat2); elsewhere, two renames with the old one kept aside."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, f"cannot swap {a} into {b}: {os.strerror(code)}")
    aside = a.with_name(a.name + ".old")
    os.rename(b, aside)  # a crash between these two renames leaves both complete runs on disk
    os.rename(a, b)
    os.rename(aside, a)
