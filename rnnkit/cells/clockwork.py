"""The Clockwork RNN (Koutnik et al. 2014): hidden modules that tick at different periods."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.activations import get_activation
from rnnkit.cells.base import Cell, _check_sizes


class ClockworkState(NamedTuple):
    h: Tensor  # (B, H)
    t: Tensor  # (B,) int64: the time step about to be computed, counted from 0


class ClockworkCell(Cell):
    r"""Clockwork RNN cell: the hidden units form modules 1..g of equal size with periods T_1 < ... < T_g.

    At step t, module i updates only when t mod T_i == 0, and otherwise keeps its value:

    .. math::
        h_t^{(i)} = g(W_I^{(i)} x_t + b^{(i)} + \sum_{j: T_j \ge T_i} W_H^{(i,j)} h_{t-1}^{(j)})
        \text{ if } t \bmod T_i = 0, \text{ else } h_{t-1}^{(i)}

    Module i receives recurrent connections only from modules at least as slow (W_H is block upper
    triangular, enforced by a fixed mask). The step counter t is part of the state, so the cell needs
    nothing from the layer beyond the protocol.

    Args:
        periods: the modules' periods (positive integers, increasing); default 1, 2, 4, ..., 2^(g-1).
        num_modules: g when ``periods`` is not given (default 4).

    >>> cell = ClockworkCell(2, 6, periods=[1, 2, 4])
    >>> cell.recurrent_mask[:2].tolist()[0]      # the fastest module hears every module
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """

    recurrent_weights = ("weight_hh",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        periods: Sequence[int] | None = None,
        num_modules: int = 4,
        nonlinearity: str = "tanh",
        bias: bool = True,
        init: str = "uniform",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        _check_sizes("ClockworkCell", input_size=input_size, hidden_size=hidden_size)
        periods = [2**i for i in range(num_modules)] if periods is None else list(periods)
        if not periods or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in periods):
            raise ValueError(f"ClockworkCell: periods must be positive integers, got {periods!r}")
        if sorted(periods) != periods:
            raise ValueError(f"ClockworkCell: periods must be given slowest last (increasing), got {periods!r}")
        if hidden_size % len(periods):
            raise ValueError(
                f"ClockworkCell: hidden_size {hidden_size} does not split into {len(periods)} equal modules: "
                f"give a multiple of {len(periods)}"
            )
        self.input_size, self.hidden_size, self.periods = input_size, hidden_size, periods
        self.nonlinearity, self.g = nonlinearity, get_activation(nonlinearity)
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size, **kw)) if bias else None
        size = hidden_size // len(periods)
        unit_period = torch.tensor(periods, device=device).repeat_interleave(size)  # (H,)
        self.register_buffer("unit_period", unit_period, persistent=False)
        mask = (unit_period.unsqueeze(1) <= unit_period.unsqueeze(0)).to(dtype or torch.get_default_dtype())
        self.register_buffer("recurrent_mask", mask, persistent=False)  # row i hears column j if T_j >= T_i
        self.init = init
        self.reset_parameters(init)

    def initial_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> ClockworkState:
        h = self._zeros(batch_size, self.hidden_size, device, dtype)
        return ClockworkState(h, torch.zeros(batch_size, dtype=torch.long, device=h.device))

    def project_inputs(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, x_proj: Tensor, state: ClockworkState) -> tuple[Tensor, ClockworkState]:
        candidate = self.g(x_proj + F.linear(state.h, self.weight_hh * self.recurrent_mask))
        active = state.t.unsqueeze(1) % self.unit_period == 0  # (B, H): the modules that tick now
        h = torch.where(active, candidate, state.h)
        return h, ClockworkState(h, state.t + 1)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, periods={self.periods}, init={self.init!r}"
