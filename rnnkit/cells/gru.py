"""The gated recurrent unit (Cho et al. 2014), in torch's formulation or the original one."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch.nn.functional as F
from torch import Tensor

from rnnkit.activations import get_activation
from rnnkit.cells.base import WeightedCell


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
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, 3, bias=bias, device=device, dtype=dtype)
        self.reset_after = reset_after
        self.activation, self.act = activation, get_activation(activation)
        self.recurrent_activation, self.gate = recurrent_activation, get_activation(recurrent_activation)
        self.init = init
        self.reset_parameters(init)

    def initial_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> GRUState:
        return GRUState(self._zeros(batch_size, self.hidden_size, device, dtype))

    def step(self, x_proj: Tensor, state: GRUState) -> tuple[Tensor, GRUState]:
        h = state.h
        x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
        if self.reset_after:
            h_r, h_z, h_n = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
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

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, reset_after={self.reset_after}, init={self.init!r}"
