"""Activation functions a cell can name: the Keras vocabulary (``activation``, ``recurrent_activation``).

A cell keeps the *name* (for its repr and its saved config) and the function (for its math).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Activation = Callable[[Tensor], Tensor]


def _identity(x: Tensor) -> Tensor:
    return x


def _softmax(x: Tensor) -> Tensor:
    return torch.softmax(x, dim=-1)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "identity": _identity,
    "linear": _identity,  # Keras's name for the identity
    "hard_sigmoid": F.hardsigmoid,  # relu6(x + 3) / 6, as Keras 3
    "softmax": _softmax,
}


def get_activation(name: str) -> Activation:
    """Return the activation called ``name``; a one-line ValueError lists the choices otherwise."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        choices = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}: choose one of {choices}") from None
