"""Every task rnnkit trains, by the name its run folders' config.json gives: the one registry of tasks.

A new task adds its model, its ``TaskSpec`` (sections, data reader and model builder) and its CLI verbs;
this dict is the only other place that names it. ``load_run(path)`` opens a run of any task, which is what
commands that serve every task (``serve``, ``export``) use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rnnkit.errors import RnnkitError
from rnnkit.tasks import (
    autoencode_run,
    classify_run,
    ctc_run,
    lm_run,
    music_run,
    parse_run,
    runs,
    speech_ae_run,
    speech_translate_run,
    tag_run,
    translate_run,
)
from rnnkit.tasks.base import TaskSpec

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        lm_run.SPEC,
        music_run.SPEC,
        classify_run.SPEC,
        tag_run.SPEC,
        translate_run.SPEC,
        parse_run.SPEC,
        autoencode_run.SPEC,
        ctc_run.SPEC,
        speech_ae_run.SPEC,
        speech_translate_run.SPEC,
    )
}


def task_of(path: str | Path) -> TaskSpec:
    """The task of a run folder (runs older than the task's name in config.json are told by their options)."""
    path = Path(path)
    name, config = runs.saved_task(path)
    if name is None:
        data = set(config.get("data", {}))
        matches = [s for s in TASKS.values() if data <= set(s.sections["data"].__dataclass_fields__)]
        name = matches[0].name if len(matches) == 1 else None
    if name not in TASKS:
        raise RnnkitError(
            f"{path / 'config.json'} names task {name!r}, which this rnnkit does not know "
            f"(it knows {', '.join(TASKS)}): is the run from a newer rnnkit?"
        )
    return TASKS[name]


def load_run(path: str | Path, *, weights: str = "best") -> Any:
    """A trained run folder of any task, loaded: ``LMRun``, ``MusicRun``, ..."""
    return runs.open_run(task_of(path), path, weights=weights)


#: the tasks whose runs answer as one ensemble (``--ensemble RUN ...``, ensemble folders), by the function that
#: loads them so
ENSEMBLES = {name: spec.ensemble for name, spec in TASKS.items() if spec.ensemble is not None}


def ensemble_task(paths: Sequence[str | Path], *, lead: str = "--ensemble", what: str) -> str:
    """The task of runs that are to answer as one ensemble, checked before anything is loaded: one line where
    the first run's task has no ensembles or another run is of another task. ``lead`` and ``what`` name the
    flag or command and its verb in the message ("--ensemble" "serves", "rnnkit ensemble" "keeps")."""
    path, *others = paths
    task = task_of(path).name
    if task not in ENSEMBLES:
        raise RnnkitError(f"{lead} {what} taggers and classifiers; {path} is a {task} run")
    other = next((p for p in others if task_of(p).name != task), None)
    if other is not None:
        raise RnnkitError(f"{lead}: {other} is a {task_of(other).name} run, not a {task} run like {path}")
    return task


def ensemble_loader(path: str | Path, ensemble: Sequence[str | Path], *, what: str) -> Callable[[], Any]:
    """What loads the run ``path`` (with ``ensemble``, it and those runs as one), checked before anything is
    loaded (:func:`ensemble_task`). ``what`` names the command's verb in the message ("serves", "exports")."""
    task_of(path)  # a missing or damaged run is one line before anything is loaded, ensemble or not
    if not ensemble:
        return lambda: load_run(path)
    task = ensemble_task([path, *ensemble], what=what)
    return lambda: ENSEMBLES[task]([path, *ensemble])
