"""Training: the loop, its config, checkpoints, optimizers and schedules, logging, data parallelism."""

from rnnkit.train.config import TrainConfig
from rnnkit.train.loop import Trainer

__all__ = ["TrainConfig", "Trainer"]
