"""One mechanism for every task's run folder: reading its config, opening it, and training into it.

A run folder's ``config.json`` is ``{"task": NAME, "rnnkit": VERSION, SECTION: {...}, ...}``; the task's
:class:`~rnnkit.tasks.base.TaskSpec` says which sections it has, how to prepare its data and model, and how
to open a trained run. Training into a folder (:func:`train`) is the same for every task:

1. check the folder (``--resume`` needs a run, a new run needs an empty folder or ``--force`` on a run),
2. take the folder's writer lock,
3. prepare everything (read and check the data, build the vocabulary and the model) without writing,
4. for a new run, write config, vocabulary and a step-0 checkpoint beside the folder and swap them in
   atomically (so ``--force`` never loses the old run to a new one that fails to start, and a new run can
   be resumed from its first moment); for ``--resume``, load the checkpoint,
5. train.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

import rnnkit
from rnnkit.config import build, to_dict
from rnnkit.errors import RnnkitError
from rnnkit.io import read_json, write_json
from rnnkit.tasks import ensemble_folder
from rnnkit.tasks.base import TaskSpec
from rnnkit.train import Trainer, run_folder
from rnnkit.train import distributed as dist
from rnnkit.train.config import TrainConfig
from rnnkit.train.log import summary_writer

META_KEYS = run_folder.META_KEYS


def config_json(spec: TaskSpec, cfg: dict[str, Any], files: list[str]) -> dict[str, Any]:
    """What a run's ``config.json`` holds: the task's name, rnnkit's version, the task's own files (so that
    ``--force`` knows them from a user's) and every section."""
    meta = {"task": spec.name, "rnnkit": rnnkit.__version__, "files": sorted(files)}
    return meta | {name: to_dict(value) for name, value in cfg.items()}


def saved_task(path: Path) -> tuple[str | None, dict[str, Any]]:
    """The task named in a run folder's config.json (None in runs older than the name) and the config (an
    ensemble folder's: its task and its first run's config)."""
    file = path / "config.json"
    if not path.is_dir():
        raise RnnkitError(f"{path}: no such run folder")
    if ensemble_folder.is_ensemble(path):
        task, members = ensemble_folder.read(path)
        return task, saved_task(members[0])[1]
    config = read_json(file, what="run config")
    if not run_folder.looks_like_run(config):
        raise RnnkitError(
            f"{file} is not an rnnkit run config (a table with [train] and the task's tables): "
            "restore it from a copy or train the run again"
        )
    task = config.get("task")
    if task is not None and not isinstance(task, str):
        raise RnnkitError(f'{file}: "task" must be a task name, got {task!r}')
    return task, config


def read_configs(spec: TaskSpec, path: Path, *, verb: str | None = None) -> dict[str, Any]:
    """The config sections saved in ``path``, checked like flags; a run of another task is named as such."""
    task, config = saved_task(path)
    file = path / "config.json"
    if task is None:  # a run written before config.json named its task: its data options tell
        known = {f for f in spec.sections["data"].__dataclass_fields__}
        task = spec.name if set(config.get("data", {})) <= known else "another task's"
    if task != spec.name:
        hint = f": use rnnkit {task}{' ' + verb if verb else ''} {path}" if task.isidentifier() else ""
        raise RnnkitError(f"{path} is a {task} run, not a {spec.name} run{hint}")
    extra, missing = set(config) - set(spec.sections) - set(META_KEYS), set(spec.sections) - set(config)
    if extra or missing:
        problem = f"unknown table(s) {sorted(extra)}" if extra else f"no {sorted(missing)} table(s)"
        raise RnnkitError(f"{file}: {problem} for a {spec.name} run; restore the file from a copy")
    return {name: build(cls, (config.get(name, {}), f"{file} [{name}]")) for name, cls in spec.sections.items()}


def open_run(spec: TaskSpec, path: str | Path, *, weights: str = "best", verb: str | None = None) -> Any:
    """A trained run folder of ``spec``'s task, loaded for evaluation or prediction."""
    path = Path(path)
    if not path.is_dir():
        raise RnnkitError(f"{path}: no such run folder; train one with: {spec.command} train --out {path} ...")
    if ensemble_folder.is_ensemble(path):
        return _open_ensemble(spec, path, weights, verb)
    return spec.open(path, read_configs(spec, path, verb=verb), weights)


def _open_ensemble(spec: TaskSpec, path: Path, weights: str, verb: str | None) -> Any:
    """An ensemble folder (:mod:`rnnkit.tasks.ensemble_folder`), loaded as its task's ``--ensemble`` loads runs."""
    _, members = ensemble_folder.read(path, spec.name, verb)
    if spec.ensemble is None:
        raise RnnkitError(f"{path} is an ensemble, and {spec.command} runs do not answer as ensembles")
    return spec.ensemble(members, weights=weights)


def train(spec: TaskSpec, cfg: dict[str, Any], run_dir: str | Path, *, resume: bool = False, force: bool = False):
    """Train (or, with ``resume``, continue) ``spec``'s task into ``run_dir``; ``cfg`` maps each section to
    its config. Returns the trainer's summary. Works under torchrun where the task allows it."""
    run_dir, train_cfg = Path(run_dir), cfg["train"]
    if not isinstance(train_cfg, TrainConfig):
        raise TypeError(f"cfg['train'] must be a TrainConfig, got {type(train_cfg).__name__}")
    rank, world = dist.setup()
    if world > 1 and not spec.distributed:
        raise RnnkitError(f"{spec.command} train runs in one process; start it without torchrun")
    main = rank == 0
    if train_cfg.tensorboard:
        summary_writer()  # the package must be there before anything is touched
    if main:
        run_folder.check_target(run_dir, resume=resume, force=force, command=f"{spec.command} train")
    with run_folder.locked(run_dir, enabled=main) as lock:
        if main:  # again under the lock: another writer may have changed the folder since
            run_folder.check_target(run_dir, resume=resume, force=force, command=f"{spec.command} train")
        dist.barrier()
        torch.manual_seed(train_cfg.seed)
        prepared = spec.prepare(cfg, run_dir if resume else None)
        trainer = Trainer(prepared.model, prepared.train, prepared.valid, train_cfg, run_dir)
        if resume:
            trainer.resume()
            _check_more_to_do(trainer, train_cfg, run_dir)
            if main:
                _record_train_options(run_dir, train_cfg)
        elif main:
            lock.install(lambda folder: _populate(folder, spec, cfg, prepared.files, trainer))
        else:
            trainer.save()  # its collective part: rank 0 writes
        dist.barrier()
        if main:
            print(f"{prepared.summary}, {world} process(es) -> {run_dir}", file=sys.stderr)
        return trainer.fit()


def _check_more_to_do(trainer: Trainer, cfg: TrainConfig, run_dir: Path) -> None:
    """Resuming a run that has already reached its limit would stop at once: say which flag to raise."""
    if cfg.max_steps is not None and trainer.step >= cfg.max_steps:
        raise RnnkitError(
            f"{run_dir} is at step {trainer.step}, already past --max-steps {cfg.max_steps}: "
            f"pass a larger --max-steps to continue"
        )
    if trainer.epoch >= cfg.epochs:
        raise RnnkitError(
            f"{run_dir} has trained all its {cfg.epochs} epochs: pass a larger --epochs (or --early-stop) to continue"
        )


def _record_train_options(run_dir: Path, cfg: TrainConfig) -> None:
    """A resumed run's [train] options, as changed by flags, replace those in its config.json (atomically), so
    that the folder says how it was trained and a later ``--resume`` without the flags keeps them; each change
    is printed."""
    file = run_dir / "config.json"
    config = read_json(file, what="run config")
    old, new = config.get("train", {}), to_dict(cfg)
    changed = {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}
    if changed:
        for key, (before, after) in changed.items():
            print(f"--resume: [train] {key} {before!r} -> {after!r} (saved in {file})", file=sys.stderr)
        write_json(file, config | {"train": new})


def _populate(folder: Path, spec: TaskSpec, cfg: dict[str, Any], files: dict, trainer: Trainer) -> None:
    write_json(folder / "config.json", config_json(spec, cfg, list(files)))
    for name, write in files.items():
        write(folder / name)
    trainer.save(folder)  # step 0: the run can be resumed (or evaluated) from its first moment
