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
    _premasked = False  # True in the view for_steps() returns: weight_hh is already masked

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
        if self._premasked:  # for_steps(): W_H masked once, and only the modules that tick computed
            t = state.t
            if bool((t != t[0]).any()):
                return self._step(x_proj, state, self.weight_hh)
            h = self._tick(x_proj, state.h, int(t[0]), self.weight_hh)
            return h, ClockworkState(h, t + 1)
        return self._step(x_proj, state, self.weight_hh * self.recurrent_mask)

    def for_steps(self) -> ClockworkCell:
        """This cell with W_H masked once (not at every step) and steps that compute only the modules that
        tick when every row is at the same step: for generation, which steps many times with fixed weights."""
        view = self.bound({"weight_hh": self.weight_hh * self.recurrent_mask})
        view.__dict__["_premasked"] = True
        return view

    def _step(self, x_proj: Tensor, state: ClockworkState, w_hh: Tensor) -> tuple[Tensor, ClockworkState]:
        candidate = self.g(x_proj + F.linear(state.h, w_hh))
        active = state.t.unsqueeze(1) % self.unit_period == 0  # (B, H): the modules that tick now
        h = torch.where(active, candidate, state.h)
        return h, ClockworkState(h, state.t + 1)

    def _tick(self, x: Tensor, h: Tensor, t: int, w_hh: Tensor) -> Tensor:
        """h_t from h_{t-1} when every row is at step ``t``, computing only the modules that tick. With periods
        1, 2, 4, ... those are the first units, rows of W_H; otherwise every row (the general step)."""
        ticks = [t % p == 0 for p in self.periods]
        n = ticks.index(False) if False in ticks else len(ticks)  # the leading modules that tick
        if any(ticks[n:]):  # not a prefix (periods that are not multiples of each other): every row
            return self._step(x, ClockworkState(h, torch.full_like(h[:, 0], t, dtype=torch.long)), w_hh)[0]
        if n == len(ticks):
            return self.g(x + F.linear(h, w_hh))
        if not n:
            return h
        rows = n * (self.hidden_size // len(self.periods))
        return torch.cat([self.g(x[:, :rows] + F.linear(h, w_hh[:rows])), h[:, rows:]], dim=1)

    def sequence(
        self, xs_proj: Tensor, state: ClockworkState, mask: Tensor | None = None, keep_steps: bool = False
    ) -> tuple[Tensor, ClockworkState, list[ClockworkState] | None]:
        """The same equations, cheaper than stepping: the masked W_H is formed once per sequence, and when
        every sequence is at the same step (all start at 0, the usual case) only the modules that tick
        are computed. With periods 1, 2, 4, ... those are the first units, rows of W_H, so four modules
        cost about half of a full matrix product on average (the paper's point about its speed)."""
        if torch.compiler.is_compiling():  # which modules tick depends on t's value: a graph takes every step whole
            return Cell.sequence(self, xs_proj, state, mask, keep_steps)
        w_hh = self.weight_hh if self._premasked else self.weight_hh * self.recurrent_mask
        t = state.t
        if bool((t != t[0]).any()):  # sequences at different steps: the general step, W_H formed once
            return Cell.sequence(_Stepper(self, w_hh), xs_proj, state, mask, keep_steps)
        t0, h = int(t[0]), state.h
        masks = mask.unbind(0) if mask is not None else [None] * xs_proj.shape[0]
        hs = []
        for k, (x, m) in enumerate(zip(xs_proj.unbind(0), masks, strict=True)):
            new = self._tick(x, h, t0 + k, w_hh)
            h = new if m is None else torch.where(m.unsqueeze(-1), new, h)
            hs.append(h)
        counts = mask.long().cumsum(0) if mask is not None else None  # steps taken, held at padding
        t_end = t + (counts[-1] if counts is not None else len(hs))
        steps = None
        if keep_steps:
            ts = [t + (counts[k] if counts is not None else k + 1) for k in range(len(hs))]
            steps = [ClockworkState(h_k, t_k) for h_k, t_k in zip(hs, ts, strict=True)]
        return torch.stack(hs), ClockworkState(h, t_end), steps

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, periods={self.periods}, init={self.init!r}"


class _Stepper(Cell):
    """The cell's step with its masked W_H formed once, for the reference loop :meth:`Cell.sequence`."""

    def __init__(self, cell: ClockworkCell, w_hh: Tensor) -> None:
        super().__init__()
        self.cell, self.w_hh = cell, w_hh

    def step(self, x_proj: Tensor, state: ClockworkState) -> tuple[Tensor, ClockworkState]:
        return self.cell._step(x_proj, state, self.w_hh)
