"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that read only the input.

Because no gate depends on h_{t-1}, the recurrence is h_t = a_t h_{t-1} + b_t with a_t, b_t computed
from the inputs alone, and training runs as a parallel scan (:func:`rnnkit.scan.scan_log`) while
generation steps one token at a time with the same weights and the same results.

``scan="linear"`` (the default) runs :func:`rnnkit.scan.scan_linear` on a_t, b_t themselves;
``scan="log"`` runs the log-space form :func:`rnnkit.scan.scan_log` on log a_t, log b_t. Both are exact
and tested equal to stepping; the linear one is the faster (benchmarks/mingru_speed.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import state as S
from rnnkit.cells.base import Cell, _check_sizes, last_step_index
from rnnkit.errors import RnnkitError
from rnnkit.scan import scan_gated, scan_log


class MinState(NamedTuple):
    h: Tensor  # (B, H)


def g(x: Tensor) -> Tensor:
    """The paper's positive activation: x + 0.5 for x >= 0, sigmoid(x) below (continuous at 0).

    Written as relu(x) + sigmoid(min(x, 0)), the same function: on this CPU torch.where and the
    backward of clamp and maximum are 5-25 times slower than relu's (measured), and this runs on every
    element of every step.
    """
    return F.relu(x) + torch.sigmoid(-F.relu(-x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), computed without forming g(x) where that would lose precision."""
    return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))


class _MinCell(Cell):
    """Shared parts: input projection of ``gates`` * H features, zero state, the scan as ``sequence``."""

    gates: int

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool, init: str, scan: str, device: Any, dtype: Any):
        super().__init__()
        _check_sizes(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        if scan not in ("linear", "log"):
            raise RnnkitError(f"{type(self).__name__}: scan must be 'linear' or 'log', got {scan!r}")
        self.input_size, self.hidden_size, self.init, self.scan = input_size, hidden_size, init, scan
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(self.gates * hidden_size, input_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(self.gates * hidden_size, **kw)) if bias else None
        self.reset_parameters(init)

    def initial_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> MinState:
        return MinState(self._zeros(batch_size, self.hidden_size, device, dtype))

    def project_inputs(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def coefficients(self, x_proj: Tensor) -> tuple[Tensor, Tensor]:
        """a_t and b_t of h_t = a_t h_{t-1} + b_t."""
        raise NotImplementedError

    def log_coefficients(self, x_proj: Tensor) -> tuple[Tensor, Tensor]:
        """log a_t and log b_t, computed in log space (for :func:`rnnkit.scan.scan_log`)."""
        raise NotImplementedError

    def sequence(
        self, xs_proj: Tensor, state: MinState, mask: Tensor | None = None, keep_steps: bool = False
    ) -> tuple[Tensor, MinState, list[MinState] | None]:
        """The parallel scan; padding is trailing, so each sequence's final state is h at its last step."""
        if self.scan == "log":
            hs = scan_log(*self.log_coefficients(xs_proj), state.h)  # (T, B, H)
        else:
            hs = scan_gated(self.coefficients, xs_proj, state.h)
        final = hs[-1] if mask is None else hs.gather(0, last_step_index(mask, hs.shape[-1])).squeeze(0)
        steps = [MinState(h) for h in hs.unbind(0)] if keep_steps else None
        if keep_steps and mask is not None:  # held at padding, as the reference loop holds them
            steps = [S.where(m, s, MinState(final)) for m, s in zip(mask.unbind(0), steps, strict=True)]
        return hs, MinState(final), steps

    def extra_repr(self) -> str:
        scan = "" if self.scan == "linear" else f", scan={self.scan!r}"
        return f"{self.input_size}, {self.hidden_size}, init={self.init!r}{scan}"


class MinGRUCell(_MinCell):
    r"""minGRU: z_t = \sigma(W_z x_t + b_z), \tilde h_t = g(W_h x_t + b_h),
    h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t. ``weight_ih`` rows: [z; h].

    >>> cell = MinGRUCell(3, 4)
    >>> xs = torch.randn(6, 2, 3)
    >>> parallel, _, _ = cell.sequence(cell.project_inputs(xs), cell.initial_state(2))
    >>> state, stepped = cell.initial_state(2), []
    >>> for x in xs:
    ...     h, state = cell(x, state)
    ...     stepped.append(h)
    >>> torch.allclose(parallel, torch.stack(stepped), atol=1e-6)
    True
    """

    gates = 2

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True, init: str = "uniform",
                 scan: str = "linear", device: Any = None, dtype: Any = None) -> None:  # fmt: skip
        super().__init__(input_size, hidden_size, bias=bias, init=init, scan=scan, device=device, dtype=dtype)

    def step(self, x_proj: Tensor, state: MinState) -> tuple[Tensor, MinState]:
        k_z, k_h = x_proj.chunk(2, dim=-1)
        z, h_tilde = torch.sigmoid(k_z), g(k_h)
        h = state.h + z * (h_tilde - state.h)  # = (1 - z) h_{t-1} + z h~
        return h, MinState(h)

    def coefficients(self, x_proj: Tensor) -> tuple[Tensor, Tensor]:
        k_z, k_h = x_proj.chunk(2, dim=-1)
        return torch.sigmoid(-k_z), torch.sigmoid(k_z) * g(k_h)  # 1 - z (without cancellation), z h~

    def log_coefficients(self, x_proj: Tensor) -> tuple[Tensor, Tensor]:
        k_z, k_h = x_proj.chunk(2, dim=-1)
        return -F.softplus(k_z), -F.softplus(-k_z) + log_g(k_h)  # log(1 - z), log(z h~)


class MinLSTMCell(_MinCell):
    r"""minLSTM: f_t = \sigma(W_f x_t), i_t = \sigma(W_i x_t), \tilde h_t = g(W_h x_t), normalised
    f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t), h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t.
    ``weight_ih`` rows: [f; i; h].

    >>> MinLSTMCell(3, 4)(torch.randn(2, 3))[0].shape
    torch.Size([2, 4])
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True, init: str = "uniform",
                 scan: str = "linear", device: Any = None, dtype: Any = None) -> None:  # fmt: skip
        super().__init__(input_size, hidden_size, bias=bias, init=init, scan=scan, device=device, dtype=dtype)

    def step(self, x_proj: Tensor, state: MinState) -> tuple[Tensor, MinState]:
        k_f, k_i, k_h = x_proj.chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        h = (f * state.h + i * g(k_h)) / (f + i)
        return h, MinState(h)

    def coefficients(self, x_proj: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, k_h = x_proj.chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        total = f + i
        return f / total, i / total * g(k_h)

    def log_coefficients(self, x_proj: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, k_h = x_proj.chunk(3, dim=-1)
        log_f, log_i = -F.softplus(-k_f), -F.softplus(-k_i)
        log_total = torch.logaddexp(log_f, log_i)
        return log_f - log_total, log_i - log_total + log_g(k_h)
