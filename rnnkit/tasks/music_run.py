"""A music run folder as Python objects (config, model), the data it reads, and training into it.

The folder is every task's (rnnkit.tasks.runs) without a vocabulary: config.json, best.safetensors,
checkpoint/, metrics.jsonl.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.config import check_fields, option
from rnnkit.data.music import EpochBatches, padded_batches, read_rolls
from rnnkit.errors import RnnkitError
from rnnkit.resources import check_model_memory
from rnnkit.tasks import runs
from rnnkit.tasks.base import Prepared, TaskSpec
from rnnkit.tasks.music import MusicConfig, MusicModel
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed as dist
from rnnkit.train.config import TrainConfig


@dataclass
class MusicDataConfig:
    train: str | None = option(None, "training piano rolls (JSON: sequences of steps of MIDI pitches)")
    valid: str | None = option(None, "validation piano rolls, for the NLL per step after each epoch")
    transpose: int = option(
        0, "augment: shift each training sequence by a random -k..k semitones per epoch", ge=0, le=87
    )
    eval_batch_size: int = option(16, "sequences per batch when evaluating", ge=1)

    def __post_init__(self) -> None:
        check_fields(self)


SECTIONS = {"data": MusicDataConfig, "model": MusicConfig, "train": TrainConfig}


@dataclass
class MusicRun:
    """Everything a trained run folder holds, loaded."""

    path: Path
    data: MusicDataConfig
    model_config: MusicConfig
    train: TrainConfig
    model: MusicModel

    def evaluate(self, path: str, *, batch_size: int | None = None) -> dict:
        """NLL per predicted time step (summed over the 88 keys) of a JSON file of piano rolls."""
        rolls = read_rolls(path)
        metrics = self.model.evaluate(padded_batches(rolls, batch_size or self.data.eval_batch_size))
        return {"data": path, "sequences": len(rolls), "steps": metrics.pop("count")} | metrics

    def generate(self, seed: torch.Tensor, steps: int, *, temperature: float = 1.0, sample_seed: int = 0):
        """The seed roll followed by ``steps`` sampled steps (see :meth:`MusicModel.generate`)."""
        return torch.cat([seed, *self.stream(seed, steps, temperature=temperature, sample_seed=sample_seed)])

    def stream(self, seed: torch.Tensor, steps: int, *, temperature: float = 1.0, sample_seed: int = 0):
        """The sampled steps one at a time, each (1, 88) (see :meth:`MusicModel.stream`)."""
        if steps < 0:
            raise RnnkitError(f"--steps must be at least 0, got {steps}")
        generator = torch.Generator().manual_seed(sample_seed)
        return self.model.stream(seed, steps, temperature=temperature, generator=generator)


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> MusicRun:
    """Load a run folder for evaluation or generation (the best weights, else the last checkpoint)."""
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def train_music(cfg: dict[str, Any], run_dir: str | Path, *, resume: bool = False, force: bool = False) -> dict:
    """Train (or, with ``resume``, continue) a music model into ``run_dir``; ``cfg`` maps "data", "model"
    and "train" to their configs. Under torchrun each process trains on its share of every batch. Each batch holds whole
    sequences (backpropagation through all their steps): ``--bptt`` does not apply."""
    return runs.train(SPEC, cfg, run_dir, resume=resume, force=force)


def _open(path: Path, cfg: dict[str, Any], weights: str) -> MusicRun:
    model = MusicModel(cfg["model"])
    ckpt.load_run_weights(model, path, weights)
    return MusicRun(path, cfg["data"], cfg["model"], cfg["train"], model)


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    """Read and check the piano rolls and build the model; write nothing."""
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train FILE is required: the piano rolls to learn from (JSON)")
    train_rolls = read_rolls(data.train)
    shard = dist.rank_world()  # under torchrun each process takes its share of every batch
    train = EpochBatches(train_rolls, train_cfg.batch_size, seed=train_cfg.seed, max_shift=data.transpose, shard=shard)
    valid = None if data.valid is None else padded_batches(read_rolls(data.valid), data.eval_batch_size)
    what = f"a {model_cfg.layers}-layer {model_cfg.cell} music model of hidden {model_cfg.hidden}"
    check_model_memory(model_cfg.params(), what=what, flag_hint="lower --hidden or --layers")
    model = MusicModel(model_cfg)
    params = sum(p.numel() for p in model.parameters())
    steps = sum(len(r) for r in train_rolls)
    summary = (
        f"training a {model_cfg.layers}-layer {model_cfg.cell} music model: {params:,} parameters, "
        f"{len(train_rolls)} sequences ({steps:,} steps)"
    )
    return Prepared(model, train, valid, {}, summary)


SPEC = TaskSpec("music", SECTIONS, _prepare, _open)
