"""Drop-in replacements for torch.nn.RNN, torch.nn.LSTM and torch.nn.GRU.

Same constructor arguments, same call, same state_dict names and shapes, same outputs (within float
rounding), and the same default initialisation draws under a seed. They are :class:`rnnkit.Recurrent`
layers, so they also take rnnkit's extensions: ``nonlinearity="identity"``, ``activation`` /
``recurrent_activation``, ``reset_after=False`` (GRU), ``forget_bias`` and ``init`` schemes, ``lengths=``
for padded input, ``residual=True`` and ``return_steps=True``.

Speed is a dispatch, not a fork: :meth:`_fused_unsupported` names every condition under which torch's
fused kernels (cuDNN on GPU, the native/oneDNN kernels on CPU) compute exactly this layer. When it
returns None, :meth:`forward` calls the kernel; otherwise the loop of :class:`Recurrent` runs (for LSTM
cells that a gradient will be asked of, with the backward written by hand: :mod:`rnnkit.bptt`).
``fused=False`` forces the loop and ``fused=True`` raises if the kernel cannot be used.
tests/test_compat.py runs both paths on the same weights and compares them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import state as S
from rnnkit.activations import ACTIVATIONS
from rnnkit.cells import ElmanCell, GRUCell, LSTMCell
from rnnkit.errors import ArgumentTypeError, RnnkitError
from rnnkit.layers import Recurrent, _Batch

_FUSED_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}


class _TorchCompatible(Recurrent):
    """torch.nn.RNNBase's signature on rnnkit's layer, plus the fused-kernel dispatch."""

    _kernel: Any  # the _VF function
    _single_tensor_state = True  # RNN and GRU take and return h alone; LSTM a (h, c) pair

    def __init__(
        self,
        cell: type,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        residual: bool = False,
        fused: bool | str = "auto",
        **cell_kwargs: Any,
    ) -> None:
        name = type(self).__name__
        if not (fused == "auto" or fused is True or fused is False):  # identity: 0 and 1 are not booleans here
            raise RnnkitError(f"{name}: fused must be 'auto', True or False, got {fused!r}")
        if not isinstance(bias, bool):
            raise ArgumentTypeError(f"{name}: bias should be of type bool, got: {type(bias).__name__}")
        if self._single_tensor_state and cell_kwargs.pop("proj_size", 0):
            raise RnnkitError(f"{name}: proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__(
            cell,
            input_size,
            hidden_size,
            num_layers,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            residual=residual,
            bias=bias,
            device=device,
            dtype=dtype,
            **cell_kwargs,
        )
        self.bias, self.fused = bias, fused

    def forward(
        self, input: Tensor | PackedSequence, hx: Any = None, lengths: Any = None, *, return_steps: bool = False
    ) -> tuple[Any, ...]:
        batch = self._prepare(input, lengths)
        state = self._check_state(hx, batch)
        reason = self._fused_unsupported(batch.x, return_steps)
        if reason is None and self.fused is not False:
            out, final = _run_fused(self, batch, state)
            return self._finish(batch, out, final, None)
        if self.fused is True:
            raise RnnkitError(f"{type(self).__name__}: fused=True but torch's fused kernel cannot run this: {reason}")
        out, final, steps = self._loop(batch, state, return_steps)
        return self._finish(batch, out, final, steps)

    def _fused_unsupported(self, x: Tensor, return_steps: bool) -> str | None:
        """Why torch's fused kernel cannot compute this call, or None when it can."""
        if return_steps:
            return "return_steps=True needs every step's state, which the kernel does not give"
        if self.residual:
            return "residual connections are not in the kernel"
        if x.dtype not in _FUSED_DTYPES.get(x.device.type, ()):
            return f"no fused kernel for {x.dtype} on {x.device.type}"
        return self._cell_unsupported(self.cells[0])

    def _cell_unsupported(self, cell: Any) -> str | None:
        raise NotImplementedError

    def _fused(self, batch: _Batch, state: Any) -> tuple[Tensor | PackedSequence, Any]:
        """Run torch's kernel: on the padded input, or packed (as it came, or packed here from lengths)."""
        weights = self._flat_weights  # read by name: weight_norm'd or parametrized weights included
        hx = state[0] if self._single_tensor_state else tuple(state)
        args = (weights, self.bias, self.num_layers, self.dropout, self.training, self.bidirectional)
        if batch.lengths is None and batch.packed is None:
            out, *final = self._kernel(batch.x, hx, *args, False)
            return out, type(state)(*final)
        packed = batch.packed
        if packed is None:
            packed = pack_padded_sequence(batch.x, batch.lengths.cpu(), enforce_sorted=False)
        if packed.sorted_indices is not None:  # the kernel wants the state in sorted (longest-first) order
            hx = tuple(S.select(_as_tuple(hx), packed.sorted_indices, dim=1))
            hx = hx[0] if self._single_tensor_state else hx
        out, *final = self._kernel(packed.data, packed.batch_sizes, hx, *args)
        if packed.unsorted_indices is not None:
            final = S.select(tuple(final), packed.unsorted_indices, dim=1)
        out = PackedSequence(out, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        if batch.packed is None:  # padded input with lengths: padded output
            out, _ = pad_packed_sequence(out, total_length=batch.x.shape[0])
        return out, type(state)(*final)

    def _state_out(self, state: Any) -> Any:
        return state[0] if self._single_tensor_state else state

    # -- torch.nn.RNNBase's face: repr, cuDNN's flat weight buffer -------------------------------------

    def extra_repr(self) -> str:
        """torch.nn.RNNBase's ``extra_repr`` for what torch has, then rnnkit's own options where set."""
        s = f"{self.input_size}, {self.hidden_size}"
        torch_options = {"proj_size": 0, "num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0}
        for key, default in (torch_options | {"bidirectional": False}).items():
            value = getattr(self, key, default)
            if value != default:
                s += f", {key}={value}"
        if self.residual:
            s += ", residual=True"
        if self.fused != "auto":
            s += f", fused={self.fused}"
        return s + self._cell_repr(self.cells[0])

    def _cell_repr(self, cell: Any) -> str:
        """The cell options torch's classes do not have, where they differ from the defaults."""
        return "" if cell.init == "uniform" else f", init={cell.init!r}"

    def __repr__(self) -> str:
        # torch's one line (the cells hold no weights of their own here, and torch.nn.LSTM shows no children)
        return f"{type(self).__name__}({self.extra_repr()})"

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        result = super()._apply(fn, recurse)
        self.flatten_parameters()  # after .cuda() / .to(): as torch.nn.RNNBase does
        return result

    def flatten_parameters(self) -> None:
        """On CUDA, put the weights in one contiguous buffer in cuDNN's layout (the parameters become views
        of it), so the kernel uses them as they are instead of copying them at every call (torch.nn.RNNBase's
        ``flatten_parameters``). Elsewhere, or when the weights are not plain tensors on one CUDA device of one
        dtype (a parametrization, a deleted weight), a no-op."""
        weights = self._flat_weights
        if not weights or not all(isinstance(w, nn.Parameter) and w.is_cuda for w in weights):
            return
        if len({w.dtype for w in weights}) != 1 or not all(torch.backends.cudnn.is_acceptable(w) for w in weights):
            return
        if len({w.data_ptr() for w in weights}) != len(weights) or not torch._use_cudnn_rnn_flatten_weight():
            return
        import torch.backends.cudnn.rnn as cudnn_rnn

        with torch.cuda.device_of(weights[0]), torch.no_grad():
            torch._cudnn_rnn_flatten_weight(
                weights,
                len(self._all_weights[0]),
                self.input_size,
                cudnn_rnn.get_cudnn_mode(self._cudnn_mode),
                self.hidden_size,
                getattr(self, "proj_size", 0),
                self.num_layers,
                self.batch_first,
                self.bidirectional,
            )


def _run_fused(layer: _TorchCompatible, batch: _Batch, state: Any) -> tuple[Tensor | PackedSequence, Any]:
    """The fused kernel call. Under torch.compile it stays out of the graph (as torch.compile does with
    torch.nn.LSTM) and runs eagerly between compiled parts; ``fused=False`` makes the whole layer traceable
    (fullgraph=True). torch.export and torch.jit.trace record the kernel's ops as they do torch.nn.LSTM's."""
    if torch.compiler.is_compiling():
        return _fused_outside_graph(layer, batch, state)
    return layer._fused(batch, state)


# torch's lazy form of torch.compiler.disable: it imports torch._dynamo at the first call, which only a compiling
# process makes (the decorator itself would import it, 2.5 s of every process: tests/test_layers.py checks)
@torch._disable_dynamo
def _fused_outside_graph(layer: _TorchCompatible, batch: _Batch, state: Any) -> tuple[Tensor | PackedSequence, Any]:
    return layer._fused(batch, state)


def _as_tuple(hx: Any) -> tuple:
    return (hx,) if isinstance(hx, Tensor) else tuple(hx)


class RNN(_TorchCompatible):
    r"""torch.nn.RNN's drop-in: h_t = g(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), g = tanh | relu | identity.

    Reference loop: :class:`rnnkit.ElmanCell` run by :class:`rnnkit.Recurrent`. Fused kernel: tanh and relu.

    >>> rnn = RNN(10, 20, 2)
    >>> out, h_n = rnn(torch.randn(5, 3, 10), torch.zeros(2, 3, 20))
    >>> out.shape, h_n.shape
    (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("nonlinearity", nonlinearity)
        if kwargs["nonlinearity"] not in ACTIVATIONS:
            raise RnnkitError(
                f"{type(self).__name__}: Unknown nonlinearity {kwargs['nonlinearity']!r}. Select from 'tanh' or "
                f"'relu' (torch's fused kernels) or another of rnnkit's: {', '.join(sorted(ACTIVATIONS))}"
            )
        super().__init__(
            ElmanCell,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device,
            dtype,
            **kwargs,
        )
        self.nonlinearity = kwargs["nonlinearity"]

    @property
    def _kernel(self) -> Any:
        return _VF.rnn_tanh if self.nonlinearity == "tanh" else _VF.rnn_relu

    @property
    def _cudnn_mode(self) -> str:
        return "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"

    def _cell_repr(self, cell: ElmanCell) -> str:
        # torch's RNN repr omits its nonlinearity; rnnkit shows it when it is not tanh
        shown = "" if cell.nonlinearity == "tanh" else f", nonlinearity={cell.nonlinearity!r}"
        return shown + super()._cell_repr(cell)

    def _cell_unsupported(self, cell: ElmanCell) -> str | None:
        if cell.nonlinearity not in ("tanh", "relu"):
            return f"nonlinearity={cell.nonlinearity!r} (the kernel has tanh and relu)"
        return None


class IRNN(RNN):
    """The IRNN (Le, Jaitly and Hinton 2015): :class:`RNN` with ReLU, identity recurrent matrices and zero
    biases (see :class:`rnnkit.IRNNCell`). Runs on torch's fused relu kernel."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs: Any) -> None:
        kwargs.setdefault("nonlinearity", "relu")
        kwargs.setdefault("init", "identity")
        super().__init__(input_size, hidden_size, num_layers, **kwargs)


class GRU(_TorchCompatible):
    r"""torch.nn.GRU's drop-in (gate order r, z, n). See :class:`rnnkit.GRUCell` for the equations and for
    ``reset_after=False`` (Cho et al. 2014), ``activation`` and ``recurrent_activation``.

    >>> out, h_n = GRU(10, 20, batch_first=True)(torch.randn(3, 5, 10))
    >>> out.shape, h_n.shape
    (torch.Size([3, 5, 20]), torch.Size([1, 3, 20]))
    """

    _kernel = staticmethod(_VF.gru)
    _cudnn_mode = "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            GRUCell,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device,
            dtype,
            **kwargs,
        )

    def _cell_unsupported(self, cell: GRUCell) -> str | None:
        if not cell.reset_after:
            return "reset_after=False (the kernel computes torch's formulation)"
        return _default_activations(cell)

    def _cell_repr(self, cell: GRUCell) -> str:
        reset = "" if cell.reset_after else ", reset_after=False"
        return reset + _activations_repr(cell) + _forget_repr(cell) + super()._cell_repr(cell)


class LSTM(_TorchCompatible):
    r"""torch.nn.LSTM's drop-in (gate order i, f, g, o; ``proj_size`` for LSTMP). See :class:`rnnkit.LSTMCell`
    for the equations, ``activation``, ``recurrent_activation`` and ``forget_bias``.

    >>> lstm = LSTM(10, 20, 2, proj_size=5)
    >>> out, (h_n, c_n) = lstm(torch.randn(7, 3, 10))
    >>> out.shape, h_n.shape, c_n.shape
    (torch.Size([7, 3, 5]), torch.Size([2, 3, 5]), torch.Size([2, 3, 20]))
    """

    _kernel = staticmethod(_VF.lstm)
    _cudnn_mode = "LSTM"
    _single_tensor_state = False

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            LSTMCell,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device,
            dtype,
            proj_size=proj_size,
            **kwargs,
        )
        self.proj_size = proj_size

    def _cell_unsupported(self, cell: LSTMCell) -> str | None:
        return _default_activations(cell)

    def _cell_repr(self, cell: LSTMCell) -> str:
        return _activations_repr(cell) + _forget_repr(cell) + super()._cell_repr(cell)


def _activations_repr(cell: Any) -> str:
    s = "" if cell.activation == "tanh" else f", activation={cell.activation!r}"
    return s + (
        "" if cell.recurrent_activation == "sigmoid" else f", recurrent_activation={cell.recurrent_activation!r}"
    )


def _forget_repr(cell: Any) -> str:
    if cell.forget_bias is None:
        return ""
    return f", forget_bias={cell.forget_bias!r}" + ("" if cell.t_max is None else f", t_max={cell.t_max}")


def _default_activations(cell: Any) -> str | None:
    if (cell.activation, cell.recurrent_activation) != ("tanh", "sigmoid"):
        return f"activation={cell.activation!r}, recurrent_activation={cell.recurrent_activation!r}"
    return None


#: the fastest layer for each cell name; other names run on the generic :class:`Recurrent`
LAYERS: dict[str, type[_TorchCompatible]] = {"lstm": LSTM, "gru": GRU, "rnn": RNN, "elman": RNN, "irnn": IRNN}


def make_layer(cell: str, input_size: int, hidden_size: int, **kwargs: Any) -> Recurrent:
    """A one-cell-type layer by name: torch-compatible (fused) where there is one, else :class:`Recurrent`.

    >>> make_layer("jordan", 4, 8).cells[0].output_size   # a Jordan layer's output defaults to hidden_size
    8
    """
    if cell in LAYERS:
        return LAYERS[cell](input_size, hidden_size, **kwargs)
    if cell == "jordan":
        kwargs.setdefault("output_size", hidden_size)
    return Recurrent(cell, input_size, hidden_size, **kwargs)
