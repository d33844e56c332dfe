"""Tasks: models that know their loss, metrics and predictions, trained by :mod:`rnnkit.train`."""

from rnnkit.tasks.base import LossOutput, Task

__all__ = ["LossOutput", "Task"]
