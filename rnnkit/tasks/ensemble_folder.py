"""An ensemble as a run folder: ``rnnkit ensemble RUN RUN2 ... --out DIR`` keeps several trained runs of one task
(taggers or classifiers) in one folder that every command opens as it opens a run, and answers as
``--ensemble`` does: ``rnnkit tag eval DIR --data ...``, ``predict``, ``serve`` and ``export`` take it.

The folder holds a copy of each run, so it stays whole when the runs it was made from are moved or deleted::

    DIR/ensemble.json     {"format": "rnnkit-ensemble", "version": 1, "task": "tag", "rnnkit": VERSION,
                           "members": ["members/NAME", ...], "from": [the runs' paths when it was made]}
    DIR/members/NAME/     a run folder: its config.json, its task's files and its best weights (its last
                          checkpoint where it never validated); no optimizer state

Runs given as ensemble folders are replaced by their members (an ensemble of ensembles is one flat ensemble).
It is written as a run is (:mod:`rnnkit.train.run_folder`): under the folder's lock, into a staging folder swapped
in atomically, so ``--force`` never loses the old ensemble to a new one that fails.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import rnnkit
from rnnkit.errors import RnnkitError
from rnnkit.io import read_json, write_json
from rnnkit.train import run_folder
from rnnkit.train.checkpoint import checkpoint_dir

FILE = "ensemble.json"
FORMAT = "rnnkit-ensemble"
MEMBERS = "members"


def is_ensemble(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble folder (it has an ``ensemble.json``; :func:`read` checks it)."""
    return (Path(path) / FILE).is_file()


def read(path: str | Path, task: str | None = None, verb: str | None = None) -> tuple[str, list[Path]]:
    """An ensemble folder's task and its members' folders; a damaged folder, or one of another task than
    ``task`` (when given; ``verb``: the command's, for the advice), is one line naming what is wrong."""
    path = Path(path)
    file = path / FILE
    payload = read_json(file, what="ensemble file")
    members = payload.get(MEMBERS) if isinstance(payload, dict) else None
    if (
        not isinstance(payload, dict)
        or payload.get("format") != FORMAT
        or not isinstance(payload.get("task"), str)
        or not isinstance(members, list)
        or len(members) < 2
        or not all(isinstance(m, str) and _is_member_name(m) for m in members)
    ):
        raise RnnkitError(f"{file} is not an rnnkit ensemble file: make the ensemble again with rnnkit ensemble")
    found = payload["task"]
    if task is not None and found != task:
        hint = f": use rnnkit {found}{' ' + verb if verb else ''} {path}" if found.isidentifier() else ""
        raise RnnkitError(f"{path} is an ensemble of {found} runs, not of {task} runs{hint}")
    folders = [path / m for m in members]
    missing = [m for m, folder in zip(members, folders, strict=True) if not (folder / "config.json").is_file()]
    if missing:
        raise RnnkitError(f"{path}: the ensemble's run {missing[0]} is missing: make the ensemble again")
    return payload["task"], folders


def _is_member_name(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and parts[0] == MEMBERS and parts[1] not in ("", ".", "..") and parts[1][0] != "."


def expand(paths: Iterable[str | Path], task: str | None = None, verb: str | None = None) -> list[Path]:
    """The run folders of ``paths``, each ensemble folder (of ``task``'s runs, when given) replaced by its runs."""
    out: list[Path] = []
    for path in map(Path, paths):
        out += read(path, task, verb)[1] if is_ensemble(path) else [path]
    return out


def check_target(out: Path, *, force: bool) -> None:
    """Refuse, before anything is read or written, to write an ensemble where it could lose data: ``out`` must
    be empty or absent, or (with ``force``) an ensemble folder of rnnkit's own files."""
    if out.exists() and not out.is_dir():
        raise RnnkitError(f"{out} is a file, not a folder: choose another --out")
    entries = sorted(e for e in out.iterdir() if e.name != run_folder.LOCK) if out.is_dir() else []
    if not entries:
        return
    own = is_ensemble(out) and all(e.name in (FILE, MEMBERS) or e.name.endswith(".tmp") for e in entries)
    if not own:
        shown = ", ".join(run_folder.shown_name(e.name) for e in entries[:5])
        raise RnnkitError(
            f"{out} is not an empty folder or an ensemble (it holds {shown}); rnnkit never deletes what it did "
            "not write: choose another --out"
        )
    if not force:
        raise RnnkitError(f"{out} holds another ensemble: replace it with --force, or choose another --out")


def write(out: str | Path, runs: Sequence[Path], task: str, *, sources: Sequence[str | Path], force: bool) -> None:
    """Copy ``runs`` (run folders of ``task``, already checked to load as one ensemble) into the ensemble
    folder ``out``; ``sources`` are the paths the user gave, kept in ``ensemble.json`` as where it came from."""
    out = Path(out)
    check_target(out, force=force)
    inside = [r for r in runs if out.resolve() == r.resolve() or out.resolve() in r.resolve().parents]
    if inside:
        raise RnnkitError(f"--out {out} holds the run {inside[0]}: write the ensemble to another folder")
    names = _member_names(runs)

    def populate(folder: Path) -> None:
        for run, name in zip(runs, names, strict=True):
            _copy_run(run, folder / MEMBERS / name)
        payload = {"format": FORMAT, "version": 1, "task": task, "rnnkit": rnnkit.__version__}
        payload |= {MEMBERS: [f"{MEMBERS}/{n}" for n in names], "from": list(map(str, sources))}
        write_json(folder / FILE, payload)

    with run_folder.locked(out) as lock:
        check_target(out, force=force)  # again under the lock: another writer may have changed the folder
        lock.install(populate)


def _member_names(runs: Sequence[Path]) -> list[str]:
    """Each run's folder name, made unique with -2, -3, ... (two seeds' runs are often both called ``run``)."""
    names: list[str] = []
    for run in runs:
        base = run.resolve().name.lstrip(".") or "run"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _copy_run(run: Path, to: Path) -> None:
    """What opening ``run`` needs: config.json, its task's files (as its config lists them) and its best weights,
    else its last checkpoint; neither optimizer state nor TensorBoard logs."""
    to.mkdir(parents=True)
    files = ["config.json", *sorted(run_folder.task_files(run)), "metrics.jsonl"]
    for name in files:
        if (run / name).is_file():
            shutil.copy2(run / name, to / name)
    if (run / "best.safetensors").is_file():
        shutil.copy2(run / "best.safetensors", to / "best.safetensors")
    else:
        shutil.copytree(checkpoint_dir(run), to / "checkpoint")


def describe(path: Path) -> dict[str, Any]:
    """What ``rnnkit ensemble`` reports of a folder it wrote."""
    task, members = read(path)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {"out": str(path), "task": task, "members": [m.name for m in members], "bytes": size}
