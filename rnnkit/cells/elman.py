"""The Elman (simple) recurrent cell, and the IRNN."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch.nn.functional as F
from torch import Tensor

from rnnkit import bptt
from rnnkit.activations import get_activation
from rnnkit.cells.base import WeightedCell


class ElmanState(NamedTuple):
    h: Tensor  # (B, H)


class ElmanCell(WeightedCell):
    r"""Elman's simple recurrent cell (torch.nn.RNNCell's formulation).

    .. math::
        h_t = g(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    Args:
        input_size: features of x_t.
        hidden_size: units of h_t.
        bias: learn b_ih and b_hh.
        nonlinearity: g, one of "tanh", "relu", "identity" (any name in :mod:`rnnkit.activations`).
        init: an initialisation scheme from :mod:`rnnkit.init`.

    >>> cell = ElmanCell(3, 5)
    >>> y, state = cell(torch.zeros(2, 3))
    >>> y.shape, state.h.shape
    (torch.Size([2, 5]), torch.Size([2, 5]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        nonlinearity: str = "tanh",
        init: str = "uniform",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, 1, bias=bias, device=device, dtype=dtype)
        self.nonlinearity, self.g = nonlinearity, get_activation(nonlinearity)
        self.init = init
        self.reset_parameters(init)

    def initial_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> ElmanState:
        return ElmanState(self._zeros(batch_size, self.hidden_size, device, dtype))

    def step(self, x_proj: Tensor, state: ElmanState) -> tuple[Tensor, ElmanState]:
        h = self.g(x_proj + F.linear(state.h, self.weight_hh, self.bias_hh))
        return h, ElmanState(h)

    def sequence(
        self, xs_proj: Tensor, state: ElmanState, mask: Tensor | None = None, keep_steps: bool = False
    ) -> tuple[Tensor, ElmanState, list[ElmanState] | None]:
        """The reference loop, or, when a gradient is wanted or rnnkit.native is built, the same equations with
        backpropagation through time written out (:func:`rnnkit.bptt.elman_sequence`; tested against this loop):
        the path of the activations torch's fused kernel does not have (identity, sigmoid, ...) and of
        ``fused=False``."""
        tensors = (xs_proj, state.h, self.weight_hh, self.bias_hh)
        if not bptt.loop_usable(tensors, keep_steps, self.nonlinearity):
            return super().sequence(xs_proj, state, mask, keep_steps)
        us = xs_proj if self.bias_hh is None else xs_proj + self.bias_hh
        hs, h = bptt.elman_sequence(us, state.h, self.weight_hh, self.nonlinearity, mask)
        return hs, ElmanState(h), None

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}, init={self.init!r}"


class IRNNCell(ElmanCell):
    """The IRNN (Le, Jaitly and Hinton 2015): a ReLU Elman cell whose recurrent matrix starts as the
    identity and whose biases start at zero (input weights ~ N(0, 0.001^2))."""

    def __init__(self, input_size: int, hidden_size: int, **kwargs: Any) -> None:
        kwargs.setdefault("nonlinearity", "relu")
        kwargs.setdefault("init", "identity")
        super().__init__(input_size, hidden_size, **kwargs)
