"""TrainConfig: every option of the training loop, shared by all tasks.

Each number carries its range (see :func:`rnnkit.config.option`); a value outside it is a one-line error
naming the flag, or the config file and key, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import MAX_SEED, check_fields, option


@dataclass
class TrainConfig:
    epochs: int = option(10, "passes over the training data", ge=1)
    max_steps: int | None = option(
        None, "stop after this many optimizer steps, counted from the start of the run", ge=0
    )
    max_minutes: float | None = option(None, "stop (with a checkpoint) after this much wall-clock time", gt=0)
    seed: int = option(0, "seed of every random number: same seed, same data, same weights", ge=0, le=MAX_SEED)
    batch_size: int = option(32, "sequences per batch (LM: parallel streams)", ge=1)
    bptt: int = option(
        64, "truncated BPTT: time steps per chunk; the state is carried and detached between chunks", ge=1
    )
    variable_bptt: bool = option(
        False,
        "language models: draw each chunk's length around --bptt (AWD-LSTM) and scale its learning rate by "
        "length / bptt",
    )
    optimizer: str = option("adam", "optimizer", choices=("sgd", "adam", "adamw"))
    lr: float = option(
        2e-3, "learning rate (at most 1e6: beyond, optimizer arithmetic overflows float32)", gt=0, le=1e6
    )
    momentum: float = option(0.0, "SGD momentum, in [0, 1)", ge=0, lt=1)
    weight_decay: float = option(0.0, "weight decay (L2 for sgd/adam, decoupled for adamw)", ge=0)
    lr_decay: float = option(
        1.0, "multiply the learning rate by this, in (0, 1], once per epoch after --decay-after", gt=0, le=1
    )
    decay_after: int = option(0, "epochs at the full learning rate before --lr-decay applies", ge=0)
    plateau_factor: float | None = option(
        None, "reduce on plateau: multiply the learning rate by this, in (0, 1), ...", gt=0, lt=1
    )
    plateau_patience: int = option(
        0, "... after this many epochs without a better validation score (the one that picks the best weights)", ge=0
    )
    early_stop: int | None = option(
        None,
        "stop after this many epochs without a better validation score (the task's: loss for lm and music, F1 for "
        "tag, accuracy or micro-F1 for classify, ...; the one that picks the best weights)",
        ge=1,
    )
    asgd_nonmono: int | None = option(
        None,
        "NT-ASGD (Merity et al. 2018): once validation is worse than the best before the last N checks, average "
        "the weights after every step; validation and the best weights use the average (AWD-LSTM: 5, with sgd)",
        ge=1,
    )
    clip_norm: float | None = option(5.0, "clip the gradient's global norm to this (if ||g|| > v: g = g v/||g||)", gt=0)
    clip_value: float | None = option(None, "clip each gradient entry to [-v, v]", gt=0)
    max_bad_steps: int = option(5, "stop after this many non-finite losses or gradients in a row", ge=1)
    log_every: int = option(50, "steps between metrics-log lines", ge=1)
    progress: bool = option(True, "show a progress bar")
    tensorboard: bool = option(False, "also log to TensorBoard (needs the tensorboard package)")

    def __post_init__(self) -> None:
        check_fields(self)
