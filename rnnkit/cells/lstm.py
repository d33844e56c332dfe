"""Long short-term memory (Hochreiter and Schmidhuber 1997, with the forget gate of Gers et al. 2000)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import bptt
from rnnkit.activations import get_activation
from rnnkit.cells.base import WeightedCell
from rnnkit.errors import ArgumentTypeError, RnnkitError
from rnnkit.init import check_forget_bias, init_gate_bias


class LSTMState(NamedTuple):
    h: Tensor  # (B, H), or (B, proj_size) with a projection
    c: Tensor  # (B, H), the memory cell


class LSTMCell(WeightedCell):
    r"""LSTM cell; gate order (i, f, g, o) and parameters as torch.nn.LSTMCell / torch.nn.LSTM.

    .. math::
        i_t, f_t, g_t, o_t = \text{split}(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}) \\
        c_t = \sigma(f_t) \odot c_{t-1} + \sigma(i_t) \odot \phi(g_t) \\
        h_t = \sigma(o_t) \odot \phi(c_t) \qquad (h_t = W_{hr} h_t \text{ with } proj\_size > 0)

    Args:
        activation: phi, the cell input and output activation (Keras's ``activation``, default "tanh";
            "identity" gives a linear LSTM).
        recurrent_activation: sigma, the gates' activation (default "sigmoid").
        forget_bias: if given, the forget gate's bias starts at this value (b_ih) and 0 (b_hh), as
            Jozefowicz et al. 2015 recommend (1.0); otherwise it follows ``init``. ``"chrono"`` with
            ``t_max``: Tallec and Ollivier's 2018 chrono initialisation, b_f ~ log U(1, t_max - 1) and
            b_i = -b_f (see :func:`rnnkit.init.init_gate_bias`).
        t_max: the longest dependency to expect, in steps, for ``forget_bias="chrono"``.
        proj_size: if > 0, h_t is projected to this size by ``weight_hr`` (torch's LSTMP).

    >>> out, state = LSTMCell(3, 5)(torch.zeros(2, 3))
    >>> state.c.shape
    torch.Size([2, 5])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        proj_size: int = 0,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        forget_bias: float | str | None = None,
        t_max: int | None = None,
        init: str = "uniform",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if not isinstance(proj_size, int) or isinstance(proj_size, bool):
            raise ArgumentTypeError(f"LSTMCell: proj_size should be of type int, got: {type(proj_size).__name__}")
        if proj_size < 0:
            raise RnnkitError(
                f"LSTMCell: proj_size should be a positive integer or zero to disable projections, got {proj_size}"
            )
        if proj_size and isinstance(hidden_size, int) and proj_size >= hidden_size:
            raise RnnkitError(f"LSTMCell: proj_size has to be smaller than hidden_size ({proj_size} >= {hidden_size})")
        rec = proj_size or hidden_size
        super().__init__(input_size, hidden_size, 4, bias=bias, recurrent_input_size=rec, device=device, dtype=dtype)
        self.proj_size = proj_size
        if proj_size:
            self.weight_hr = nn.Parameter(torch.empty(proj_size, hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("weight_hr", None)
        self.activation, self.act = activation, get_activation(activation)
        self.recurrent_activation, self.gate = recurrent_activation, get_activation(recurrent_activation)
        check_forget_bias("LSTMCell", forget_bias, t_max)
        self.forget_bias, self.t_max, self.init = forget_bias, t_max, init
        self.reset_parameters(init)

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def reset_parameters(self, init: str = "uniform") -> None:
        super().reset_parameters(init)
        if self.forget_bias is not None and self.bias_ih is not None:  # gates (i, f, g, o): f is 1, i is 0
            init_gate_bias(self, 1, self.forget_bias, self.t_max, opposite=0 if self.forget_bias == "chrono" else None)

    def initial_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> LSTMState:
        return LSTMState(
            self._zeros(batch_size, self.output_size, device, dtype),
            self._zeros(batch_size, self.hidden_size, device, dtype),
        )

    _merged = False  # True in the view for_steps() returns: one product of [W_ih W_hh] and [x; h] a step

    def project_inputs(self, x: Tensor) -> Tensor:
        return x if self._merged else super().project_inputs(x)

    def step(self, x_proj: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        if self._merged:  # for_steps(): x_proj is the raw input
            z = F.linear(torch.cat([x_proj, state.h], -1), self.weight_xh, self.bias_xh)
            fast = bptt.lstm_step(self._kernels, z, state.c, self.activation, self.recurrent_activation)
            if fast is not None:  # the same equations in one call (rnnkit.native), where no gradient is wanted
                h = self._project(fast[0])
                return h, LSTMState(h, fast[1])
        else:
            z = x_proj + F.linear(state.h, self.weight_hh, self.bias_hh)
        i, f, g, o = z.chunk(4, dim=-1)
        c = self.gate(f) * state.c + self.gate(i) * self.act(g)
        h = self._project(self.gate(o) * self.act(c))
        return h, LSTMState(h, c)

    def _project(self, h: Tensor) -> Tensor:
        return h if self.weight_hr is None else F.linear(h, self.weight_hr)

    def for_steps(self) -> LSTMCell:
        """This cell with W_ih and W_hh side by side in one matrix, ``weight_xh`` (4H, input + H), and the two
        biases summed: a step is one product with [x; h], not one with x and one with h. At a few rows a
        product is memory-bound and two short ones cost more than one long one (measured for 2 x 512 at batch 1
        on 2 Intel Xeon cores: 0.22-0.24 ms for the (2048, 1024) product against 0.13-0.15 ms for each half;
        with the equations after it in one rnnkit.native call, a layer's step went from 0.50 to 0.37 ms). For
        generation (rnnkit.tasks.stepping), which steps many times with fixed weights; the same numbers within
        float rounding (tests/cells/test_lstm.py)."""
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        view = self.bound({})
        view.__dict__["_parameters"] = {
            "weight_xh": torch.cat([self.weight_ih, self.weight_hh], 1),
            "bias_xh": bias,
            "weight_hr": self.weight_hr,
        }
        view.__dict__["_merged"] = True
        view.__dict__["_kernels"] = bptt.step_kernels(self.weight_hh, self.activation, self.recurrent_activation)
        return view

    def sequence(
        self, xs_proj: Tensor, state: LSTMState, mask: Tensor | None = None, keep_steps: bool = False
    ) -> tuple[Tensor, LSTMState, list[LSTMState] | None]:
        """The reference loop, or, when a gradient is wanted and there is no projection, the same equations
        with backpropagation through time written out (:mod:`rnnkit.bptt`; tested against this loop), or,
        with no gradient wanted and rnnkit.native built, that path's forward alone. This is the path of the
        LSTMs torch's fused kernel cannot run: other activations, ``fused=False``."""
        if self._merged:  # for_steps(): each step takes its own product
            return super().sequence(xs_proj, state, mask, keep_steps)
        tensors = (xs_proj, state.h, state.c, self.weight_hh, self.bias_hh)
        names = self.activation, self.recurrent_activation
        if self.weight_hr is None and bptt.usable(tensors, keep_steps, *names):
            hs, h, c = bptt.lstm_sequence(self, xs_proj, state.h, state.c, mask)
        elif self.weight_hr is None and bptt.inference_usable(tensors, keep_steps, *names):
            hs, h, c = bptt.lstm_inference(self, xs_proj, state.h, state.c, mask)  # no gradient: the forward alone
        else:
            return super().sequence(xs_proj, state, mask, keep_steps)
        return hs, LSTMState(h, c), None

    def extra_repr(self) -> str:
        proj = f", proj_size={self.proj_size}" if self.proj_size else ""
        return f"{self.input_size}, {self.hidden_size}{proj}, init={self.init!r}"
