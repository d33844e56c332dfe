"""The contract between a task's model and the trainer (flair's ``forward_loss`` with the state added).

The trainer knows nothing else about a task: it calls ``loss(batch, state)``, backpropagates
``loss / count``, carries ``state`` to the next batch when ``carries_state`` (truncated BPTT over
streams) and reads ``metrics`` of the validation loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rnnkit import state as S
from rnnkit.config import option


class LossOutput(NamedTuple):
    loss: Tensor  # summed over the counted items (tokens, sequences, ...)
    count: Tensor  # how many items the sum covers
    state: Any  # recurrent state after the batch (carried by the trainer when the task says so)


class Task(nn.Module):
    """Base class of rnnkit's task models."""

    #: True for stream tasks (language models): the state after one batch starts the next
    carries_state: bool = False
    #: the validation metric that picks the best weights, early stopping and plateaus, and whether lower
    #: ("min") or higher ("max") is better; ``evaluate`` must return it (a tagger: ("f1", "max"))
    selection: tuple[str, str] = ("loss", "min")

    def loss(self, batch: Any, state: Any = None) -> LossOutput:
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: one, of every parameter. A task may split them; a group's
        ``lr_scale`` multiplies the learning rate the schedule sets (discriminative fine-tuning)."""
        return [{"params": list(self.parameters())}]

    def metrics(self, mean_loss: float) -> dict[str, float]:
        """Metrics of a mean loss per item (the task adds perplexity, bits per character, ...)."""
        return {"loss": mean_loss}

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Any]) -> dict[str, float]:
        """Mean loss over ``batches`` and the task's metrics of it, in eval mode."""
        was_training = self.training
        self.eval()
        total, count, state = 0.0, 0, None
        try:
            for batch in batches:
                out = self.loss(batch, state)
                total, count = total + float(out.loss), count + int(out.count)
                state = S.tree_map(Tensor.detach, out.state) if self.carries_state else None
        finally:
            self.train(was_training)
        mean = total / max(count, 1)
        return self.metrics(mean) | {"count": count}


class Prepared(NamedTuple):
    """What a task hands the trainer for one run: everything read and checked before any file is written."""

    model: Task
    train: Any  # a sequence of batches, or an object with for_epoch(epoch) giving one
    valid: Any  # a sequence of validation batches, or None
    files: dict[str, Callable[[Path], None]]  # the run's own files besides config and weights: name -> write(path)
    summary: str  # one line for the user: what is trained on what


@dataclass(frozen=True)
class TaskSpec:
    """How a task's run folder is made and opened; one per task, listed in ``rnnkit.tasks.registry.TASKS``.

    A run folder's ``config.json`` names its task, so ``rnnkit.tasks.registry.load_run(path)`` opens any
    run, and training, locking, replacing and resuming (``rnnkit.tasks.run``) are the same for every task.
    """

    name: str  # config.json's "task" and the command group: rnnkit NAME train|eval|...
    sections: dict[str, type]  # config tables: name -> dataclass ("train" is always TrainConfig)
    prepare: Callable[[dict[str, Any], Path | None], Prepared]  # (configs, run folder on resume else None)
    open: Callable[[Path, dict[str, Any], str], Any]  # (run folder, configs, "best"|"last") -> the loaded run
    distributed: bool = True  # whether it trains under torchrun (its batches shard over processes)
    # (run folders, weights=) -> the runs loaded as one ensemble, for tasks that have ensembles (tag, classify)
    ensemble: Callable[..., Any] | None = None

    @property
    def command(self) -> str:
        return f"rnnkit {self.name}"


def perplexity(mean_nats: float) -> float:
    return math.exp(min(mean_nats, 700.0))


def bits(mean_nats: float) -> float:
    return mean_nats / math.log(2)


def scaled_groups(model: nn.Module, parts: list[nn.Module], scale: float) -> list[dict[str, Any]]:
    """Parameter groups: ``model``'s parameters outside ``parts``, then those of ``parts`` with ``lr_scale`` =
    ``scale`` (one group of all where ``scale`` is 1).

    >>> model = nn.Sequential(nn.Embedding(5, 2), nn.Linear(2, 3))
    >>> [(len(g["params"]), g.get("lr_scale", 1.0)) for g in scaled_groups(model, [model[0]], 0.1)]
    [(2, 1.0), (1, 0.1)]
    """
    if scale == 1.0:
        return [{"params": list(model.parameters())}]
    inner = {id(p) for part in parts for p in part.parameters()}
    rest = [p for p in model.parameters() if id(p) not in inner]
    return [{"params": rest}, {"params": [p for part in parts for p in part.parameters()], "lr_scale": scale}]


def encoder_lr_option() -> Any:
    """The ``encoder_lr`` field of the tasks whose encoder can start from LMs (tag and classify)."""
    return option(
        1.0,
        "learning-rate multiplier of the word embedding and recurrent layers, below 1 to keep more of what an "
        "--encoder brought (ULMFiT's discriminative fine-tuning)",
        gt=0,
        le=1,
    )
