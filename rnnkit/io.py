"""Plain file I/O that every layer of rnnkit shares: atomic writes and JSON files with one-line errors.

It sits below data, training and tasks (it imports nothing of rnnkit but the error class), so MIDI files,
plots, checkpoints and exports are all written the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rnnkit.errors import RnnkitError


def write_atomically(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` a temporary file beside ``path``, fsync it, then rename it over ``path``: a reader (or a
    crash) sees the old file or the new one, never half of one. If ``write`` fails, the temporary file is
    removed and ``path`` is untouched.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_atomically(folder / "a.txt", lambda tmp: tmp.write_text("hello")).read_text()
    'hello'
    >>> sorted(p.name for p in folder.iterdir())  # no temporary file left behind
    ['a.txt']
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per process: two writers never share one
    try:
        write(tmp)
        fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (UTF-8, indented, one trailing newline)."""
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"))


def read_json(path: str | Path, *, what: str = "file") -> Any:
    """A JSON file's value; a missing, unreadable, binary or malformed file is one line naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RnnkitError(f"{path}: missing; is {path.parent} an rnnkit run folder?") from None
    except IsADirectoryError:
        raise RnnkitError(f"{path} is a folder, not a JSON {what}") from None
    except OSError as err:
        raise RnnkitError(f"{path}: cannot read the file ({err.strerror})") from None
    if b"\x00" in data:
        raise RnnkitError(f"{path} is binary or UTF-16, not a JSON {what}: restore it from a copy")
    try:
        return json.loads(data.decode("utf-8").removeprefix("\ufeff"))
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, a 5,000-digit integer
        reason = first_line(err)[:120]
        raise RnnkitError(f"{path} is not a valid JSON {what} ({reason}); restore it from a copy") from None


def check_output_path(path: str | Path, suffix: str | None = None) -> Path:
    """Check, before any work, that ``path`` can be written: its folder exists and it is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise RnnkitError(f"{path} is a folder: give a file name for the output")
    if not path.parent.is_dir():
        raise RnnkitError(f"{path.parent}: no such folder to write {path.name} in; create it first")
    if not os.access(path.parent, os.W_OK):
        raise RnnkitError(f"{path.parent}: no permission to write {path.name} there; choose another output")
    if suffix is not None and path.suffix.lower() != suffix:
        raise RnnkitError(f"{path}: the output should end in {suffix}")
    return path


def fsync(path: str | Path) -> None:
    """Flush a file's (or a folder's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (or its class name), for one-line errors."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
