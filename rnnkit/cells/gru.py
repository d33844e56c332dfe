"""The gated recurrent unit (Cho et al. 2014), in torch's formulation or the original one."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch.nn.functional as F
from torch import Tensor

from rnnkit import bptt
from rnnkit.activations import get_activation
from rnnkit.cells.base import WeightedCell
from rnnkit.init import check_forget_bias, init_gate_bias


class GRUState(NamedTuple):
    h: Tensor  # (B, H)


class GRUCell(WeightedCell):
    r"""Gated recurrent unit; gate order (r, z, n) and parameters as torch.nn.GRUCell.

    With ``reset_after=True`` (torch's and cuDNN's formulation, the default):

    .. math::
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t = \phi(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    With ``reset_after=False`` (Cho et al. 2014), the reset gate acts on h_{t-1} before the product:
    n_t = \phi(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn}).

    Args:
        activation: phi (default "tanh"); recurrent_activation: sigma (default "sigmoid").
        init: an initialisation scheme from :mod:`rnnkit.init`.
        forget_bias: if given, the update gate z's bias (b_iz; b_hz is 0) starts at this value. z keeps
            h_{t-1}, so z is the GRU's forget gate read the other way: a positive bias keeps more.
            ``"chrono"`` with ``t_max``: b_z ~ log U(1, t_max - 1) (Tallec and Ollivier 2018).
        t_max: the longest dependency to expect, in steps, for ``forget_bias="chrono"``.

    >>> GRUCell(3, 5)(torch.zeros(2, 3))[0].shape
    torch.Size([2, 5])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        reset_after: bool = True,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        init: str = "uniform",
        forget_bias: float | str | None = None,
        t_max: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        check_forget_bias("GRUCell", forget_bias, t_max)
        super().__init__(input_size, hidden_size, 3, bias=bias, device=device, dtype=dtype)
        self.forget_bias, self.t_max = forget_bias, t_max
        self.reset_after = reset_after
        self.activation, self.act = activation, get_activation(activation)
        self.recurrent_activation, self.gate = recurrent_activation, get_activation(recurrent_activation)
        self.init = init
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "uniform") -> None:
        super().reset_parameters(init)
        if self.forget_bias is not None and self.bias_ih is not None:  # gates (r, z, n): z is 1
            init_gate_bias(self, 1, self.forget_bias, self.t_max)

    def initial_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> GRUState:
        return GRUState(self._zeros(batch_size, self.hidden_size, device, dtype))

    _kernels: Any = None  # rnnkit.native, in the view for_steps() returns where it applies

    def step(self, x_proj: Tensor, state: GRUState) -> tuple[Tensor, GRUState]:
        h = state.h
        x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
        if self.reset_after:
            hh = F.linear(h, self.weight_hh, self.bias_hh)
            if self._kernels is not None:  # for_steps(): the same equations in one call, where no gradient is wanted
                fast = bptt.gru_step(self._kernels, x_proj, hh, h, self.activation, self.recurrent_activation)
                if fast is not None:
                    return fast, GRUState(fast)
            h_r, h_z, h_n = hh.chunk(3, dim=-1)
            r, z = self.gate(x_r + h_r), self.gate(x_z + h_z)
            n = self.act(x_n + r * h_n)
        else:
            H = self.hidden_size
            b_rz, b_n = (None, None) if self.bias_hh is None else self.bias_hh.split([2 * H, H])
            w_rz, w_n = self.weight_hh.split([2 * H, H])
            h_r, h_z = F.linear(h, w_rz, b_rz).chunk(2, dim=-1)
            r, z = self.gate(x_r + h_r), self.gate(x_z + h_z)
            n = self.act(x_n + F.linear(r * h, w_n, b_n))
        h = n + z * (h - n)  # = (1 - z) * n + z * h, one op fewer
        return h, GRUState(h)

    def for_steps(self) -> GRUCell:
        """This cell with each step's equations after its products in one rnnkit.native call where no gradient is
        wanted (generation, rnnkit.tasks.stepping): about ten torch operations fewer a step, each of which costs
        more there than it seems, after a product that streamed the weights through the caches. The same
        numbers within float rounding (tests/cells/test_gru.py)."""
        kernels = bptt.step_kernels(self.weight_hh, self.activation, self.recurrent_activation)
        if kernels is None or not self.reset_after:
            return self
        view = self.bound({})
        view.__dict__["_kernels"] = kernels
        return view

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, reset_after={self.reset_after}, init={self.init!r}"
