"""The Jordan network (Jordan 1986): the state fed back is the previous *output*, not the hidden layer."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import bptt
from rnnkit.activations import get_activation
from rnnkit.cells.base import Cell, _check_sizes


class JordanState(NamedTuple):
    y: Tensor  # (B, output_size): the previous output


class JordanCell(Cell):
    r"""Jordan cell: a hidden layer that sees the input and the previous output, and an output layer.

    .. math::
        h_t = g(W_{ih} x_t + b_{ih} + W_{yh} y_{t-1}) \\
        y_t = act_y(W_{hy} h_t + b_{hy})

    The state is y_t (after the output activation); the layer's output is y_t too, so
    ``output_size`` is what a layer stacked on this one receives.

    Args:
        nonlinearity: g (default "tanh"); output_activation: act_y (default "tanh"; "softmax",
            "sigmoid" and "identity" are common choices).

    >>> cell = JordanCell(3, 8, output_size=2)
    >>> cell(torch.zeros(4, 3))[1].y.shape
    torch.Size([4, 2])
    """

    recurrent_weights = ("weight_yh",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        output_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        output_activation: str = "tanh",
        init: str = "uniform",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        _check_sizes("JordanCell", input_size=input_size, hidden_size=hidden_size, output_size=output_size)
        self.input_size, self.hidden_size, self._output_size, self.bias = input_size, hidden_size, output_size, bias
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size, **kw))
        self.weight_yh = nn.Parameter(torch.empty(hidden_size, output_size, **kw))
        self.weight_hy = nn.Parameter(torch.empty(output_size, hidden_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size, **kw)) if bias else None
        self.bias_hy = nn.Parameter(torch.empty(output_size, **kw)) if bias else None
        self.nonlinearity, self.g = nonlinearity, get_activation(nonlinearity)
        self.output_activation, self.act_y = output_activation, get_activation(output_activation)
        self.init = init
        self.reset_parameters(init)

    @property
    def output_size(self) -> int:
        return self._output_size

    def initial_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> JordanState:
        return JordanState(self._zeros(batch_size, self._output_size, device, dtype))

    def project_inputs(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, x_proj: Tensor, state: JordanState) -> tuple[Tensor, JordanState]:
        h = self.g(x_proj + F.linear(state.y, self.weight_yh))
        y = self.act_y(F.linear(h, self.weight_hy, self.bias_hy))
        return y, JordanState(y)

    def sequence(
        self, xs_proj: Tensor, state: JordanState, mask: Tensor | None = None, keep_steps: bool = False
    ) -> tuple[Tensor, JordanState, list[JordanState] | None]:
        """The reference loop, or, when a gradient is wanted or rnnkit.native is built, the same equations with
        backpropagation through time written out (:mod:`rnnkit.bptt`; tested against this loop)."""
        weights = (xs_proj, state.y, self.weight_yh, self.weight_hy, self.bias_hy)
        if not bptt.loop_usable(weights, keep_steps, self.nonlinearity, self.output_activation):
            return super().sequence(xs_proj, state, mask, keep_steps)
        ys, y = bptt.jordan_sequence(self, xs_proj, state.y, mask)
        return ys, JordanState(y), None

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, output_size={self._output_size}, init={self.init!r}"
