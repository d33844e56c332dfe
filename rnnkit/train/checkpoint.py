"""The run folder: config, vocabulary, weights and trainer state, written atomically, loaded without pickle.

Layout of a run folder::

    config.json              the resolved config (model, data, train)
    vocab.json               the vocabulary
    best.safetensors         weights with the best validation loss so far (what eval/sample/score use)
    checkpoint/              the latest checkpoint, replaced as a whole:
        model.safetensors    weights
        trainer.safetensors  optimizer tensors, RNG states, the carried recurrent state
        trainer.json         step, epoch, position in the epoch, schedule and early-stopping counters
    metrics.jsonl            one JSON line per logging step and per epoch

A checkpoint is written into ``checkpoint.tmp/``, then the old one is moved to ``checkpoint.old/`` and the
new one renamed into place, so a crash at any moment leaves a complete checkpoint (``load`` falls back
to ``checkpoint.old/`` if it must). Weights are safetensors and the rest JSON: loading never unpickles.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.io import first_line, fsync, read_json, write_atomically, write_json


def save_weights(model: nn.Module, path: Path) -> None:
    """Weights as safetensors, atomically (tied weights are stored once)."""
    write_atomically(path, lambda tmp: save_model(_unwrap(model), str(tmp), metadata={"format": "rnnkit"}))


def load_run_weights(model: nn.Module, run_dir: Path, weights: str = "best") -> None:
    """A trained run's weights into ``model``, set to eval mode: ``best.safetensors``, or the last
    checkpoint's when ``weights`` is not "best" or the run never validated."""
    best = run_dir / "best.safetensors"
    load_weights(model, best if weights == "best" and best.exists() else checkpoint_dir(run_dir) / "model.safetensors")
    model.eval()


def load_weights(model: nn.Module, path: Path) -> None:
    """Weights from a safetensors file into ``model``: the file must be intact, fit the model exactly
    (names and shapes) and hold only finite numbers; each failure is one line saying which."""
    if not path.is_file():
        raise RnnkitError(f"{path}: missing; is {path.parent} an rnnkit run folder with a trained model?")
    try:
        with safe_open(str(path), framework="pt") as f:  # reads and checks the header only
            f.keys()
    except (SafetensorError, OSError, ValueError) as err:
        raise RnnkitError(f"{path} is corrupted or not safetensors weights ({first_line(err)})") from None
    try:
        missing, unexpected = load_model(_unwrap(model), str(path), strict=False)
    except (SafetensorError, OSError) as err:
        raise RnnkitError(f"{path} is corrupted ({first_line(err)}); restore it from a copy") from None
    except RuntimeError as err:  # torch's size mismatch
        raise RnnkitError(f"{path} {_MISFIT} ({first_line(err)})") from None
    if missing or unexpected:
        raise RnnkitError(f"{path} {_MISFIT} (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    bad = [name for name, p in _unwrap(model).named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise RnnkitError(
            f"{path} holds NaN or infinite weights ({', '.join(bad[:3])}): the run diverged; train it again "
            "with a lower --lr or a --clip-norm"
        )


_MISFIT = "does not fit the model its run's config.json describes: the files come from different runs"


def save_checkpoint(run_dir: Path, model: nn.Module, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Replace ``run_dir/checkpoint`` with a new complete checkpoint, atomically."""
    tmp, final, old = run_dir / "checkpoint.tmp", run_dir / "checkpoint", run_dir / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(model, tmp / "model.safetensors")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / "trainer.safetensors"))
    fsync(tmp / "trainer.safetensors")
    write_json(tmp / "trainer.json", meta)
    fsync(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    fsync(run_dir)
    shutil.rmtree(old, ignore_errors=True)


def checkpoint_dir(run_dir: Path) -> Path:
    """The newest complete checkpoint folder of a run."""
    for name in ("checkpoint", "checkpoint.old"):
        if (run_dir / name / "trainer.json").is_file():
            return run_dir / name
    raise RnnkitError(
        f"{run_dir} holds no complete checkpoint (checkpoint/trainer.json is missing): start the run again with "
        "--force, or restore the folder from a copy"
    )


def load_checkpoint(run_dir: Path, model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load the checkpoint's weights into ``model``; return its trainer tensors and metadata."""
    path = checkpoint_dir(run_dir)
    load_weights(model, path / "model.safetensors")
    try:
        tensors = load_file(str(path / "trainer.safetensors"))
    except (SafetensorError, OSError) as err:
        raise RnnkitError(f"{path / 'trainer.safetensors'} is corrupted ({first_line(err)})") from None
    return tensors, read_json(path / "trainer.json")


#: the trainer state's JSON fields and what each must be
_TRAINER_FIELDS = {
    "step": "count",
    "epoch": "count",
    "position": "count",
    "bad_epochs": "count",
    "plateau_wait": "count",
    "tokens": "count",
    "carry": "count",
    "world": "positive",
    "plateau_scale": "positive",
    "best": "number or null",
    "optimizer": "table",
}


def check_trainer_state(run_dir: Path, tensors: dict[str, Tensor], meta: Any) -> None:
    """One line naming the file and the field when a checkpoint's trainer state is not what rnnkit writes."""
    path = checkpoint_dir(run_dir) / "trainer.json"
    if not isinstance(meta, dict):
        raise RnnkitError(f"{path} is not an rnnkit trainer state (a table): {_RESTART}")
    for key, kind in _TRAINER_FIELDS.items():
        if key not in meta:
            raise RnnkitError(f"{path}: {key!r} is missing: {_RESTART}")
        value = meta[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = {
            "count": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
            "positive": number and value > 0,
            "number or null": value is None or number,
            "table": isinstance(value, dict) and isinstance(value.get("param_groups"), list),
        }[kind]
        if not ok:
            raise RnnkitError(f"{path}: {key!r} must be a {kind}, got {value!r}: {_RESTART}")
    _check_average(path, meta)
    seconds = meta.get("seconds", 0.0)  # training time so far (older checkpoints lack it)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise RnnkitError(f"{path}: 'seconds' must be a non-negative number, got {seconds!r}: {_RESTART}")
    wanted = [f"rng.{r}" for r in range(meta["world"])]
    wanted += [f"carry.{r}.{i}" for r in range(meta["world"]) for i in range(meta["carry"])]
    missing = [k for k in wanted if k not in tensors or (k.startswith("rng.") and tensors[k].dtype != torch.uint8)]
    if missing:
        raise RnnkitError(f"{path.parent / 'trainer.safetensors'} lacks {', '.join(missing[:3])}: {_RESTART}")


_RESTART = "restore the run folder from a copy, or start the run again with --force"


def _check_average(path: Path, meta: dict[str, Any]) -> None:
    """NT-ASGD's fields, where present (older checkpoints lack them): the average's step counts and the
    validation history."""
    if "average" not in meta:
        return
    average, history = meta["average"], meta.get("history")
    steps = average.get("steps") if isinstance(average, dict) else None
    start = average.get("start") if isinstance(average, dict) else None
    counts = isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0
    if not counts or not (start is None or (isinstance(start, int) and not isinstance(start, bool) and start >= 0)):
        raise RnnkitError(f"{path}: 'average' must be a table of counts steps and start, got {average!r}: {_RESTART}")
    ok = isinstance(history, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in history
    )
    if not ok:
        raise RnnkitError(f"{path}: 'history' must be a list of finite numbers: {_RESTART}")


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer's state_dict split into tensors (for safetensors) and JSON-able rest."""
    sd = optimizer.state_dict()
    tensors, rest = {}, {}
    for index, entries in sd["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                rest.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": rest}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    try:
        state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta.get("state", {}).items()}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        _check_optimizer_tensors(optimizer, state)
        groups, fresh = meta["param_groups"], optimizer.param_groups
        if len(groups) != len(fresh) or any(_shape(g) != _shape(f) for g, f in zip(groups, fresh, strict=False)):
            raise ValueError("its parameter groups have other options than this optimizer's")
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as err:
        raise RnnkitError(
            f"the checkpoint's optimizer state does not fit the model ({first_line(err)}): {_RESTART}"
        ) from None


def _check_optimizer_tensors(optimizer: torch.optim.Optimizer, state: dict[int, dict[str, Any]]) -> None:
    """Each parameter's saved state has the same entries as every other's, and its tensors the parameter's
    shape (or are scalars, like Adam's step): what a checkpoint of this model and optimizer holds."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    kinds = {frozenset(entries) for entries in state.values()}
    if len(kinds) > 1 or any(not 0 <= i < len(params) for i in state):
        raise ValueError("its per-parameter state is incomplete")
    for i, entries in state.items():
        for name, value in entries.items():
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape != params[i].shape:
                raise ValueError(
                    f"{name} of parameter {i} has shape {tuple(value.shape)}, not {tuple(params[i].shape)}"
                )


def _shape(group: Any) -> dict[str, type]:
    """An optimizer parameter group's options and their kinds (JSON turns tuples into lists)."""
    if not isinstance(group, dict):
        return {}
    return {k: list if isinstance(v, (list, tuple)) else type(v) for k, v in group.items()}


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module
