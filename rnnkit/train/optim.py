"""Optimizers and the learning-rate schedule (a pure function of the epoch and the plateau scale)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from rnnkit.train.config import TrainConfig


def make_optimizer(params: Iterable[nn.Parameter] | Iterable[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` over ``params``: parameters, or groups of them (dicts, as torch.optim takes)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def scheduled_lr(cfg: TrainConfig, epoch: int, plateau_scale: float = 1.0) -> float:
    """The learning rate of 0-based ``epoch``: full for the first ``decay_after`` epochs, then multiplied by
    ``lr_decay`` once per further epoch (Zaremba et al. 2014: lr 1, halved after epoch 4), times the
    reduce-on-plateau scale.

    >>> cfg = TrainConfig(optimizer="sgd", lr=1.0, lr_decay=0.5, decay_after=4)
    >>> [scheduled_lr(cfg, e) for e in range(7)]
    [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    """
    return cfg.lr * cfg.lr_decay ** max(0, epoch - cfg.decay_after + 1) * plateau_scale


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's learning rate to ``lr``, times the group's ``lr_scale`` where it has one."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
