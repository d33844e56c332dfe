"""TrainConfig: every option of the training loop, shared by all tasks."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import option


@dataclass
class TrainConfig:
    epochs: int = option(10, "passes over the training data")
    max_steps: int | None = option(None, "stop after this many optimizer steps, counted from the start of the run")
    max_minutes: float | None = option(None, "stop (with a checkpoint) after this much wall-clock time")
    seed: int = option(0, "seed of every random number: same seed, same data, same weights")
    batch_size: int = option(32, "sequences per batch (LM: parallel streams)")
    bptt: int = option(64, "truncated BPTT: time steps per chunk; the state is carried and detached between chunks")
    optimizer: str = option("adam", "optimizer", choices=("sgd", "adam", "adamw"))
    lr: float = option(2e-3, "learning rate")
    momentum: float = option(0.0, "SGD momentum")
    weight_decay: float = option(0.0, "weight decay (L2 for sgd/adam, decoupled for adamw)")
    lr_decay: float = option(1.0, "multiply the learning rate by this once per epoch after --decay-after")
    decay_after: int = option(0, "epochs at the full learning rate before --lr-decay applies")
    plateau_factor: float | None = option(None, "reduce on plateau: multiply the learning rate by this ...")
    plateau_patience: int = option(0, "... after this many epochs without a better validation loss")
    early_stop: int | None = option(None, "stop after this many epochs without a better validation loss")
    clip_norm: float | None = option(5.0, "clip the gradient's global norm to this (if ||g|| > v: g = g v/||g||)")
    clip_value: float | None = option(None, "clip each gradient entry to [-v, v]")
    max_bad_steps: int = option(5, "stop after this many non-finite losses or gradients in a row")
    log_every: int = option(50, "steps between metrics-log lines")
    progress: bool = option(True, "show a progress bar")
    tensorboard: bool = option(False, "also log to TensorBoard (needs the tensorboard package)")

    def __post_init__(self) -> None:
        from rnnkit.errors import RnnkitError

        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "bptt": self.bptt,
            "log_every": self.log_every,
        }
        positive |= {"max_bad_steps": self.max_bad_steps}
        for name, value in positive.items():
            if value < 1:
                raise RnnkitError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.max_steps is not None and self.max_steps < 0:
            raise RnnkitError(f"--max-steps must be at least 0, got {self.max_steps}")
        if self.lr <= 0:
            raise RnnkitError(f"--lr must be positive, got {self.lr}")
        for name in ("clip_norm", "clip_value"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise RnnkitError(f"--{name.replace('_', '-')} must be positive, got {value}")
