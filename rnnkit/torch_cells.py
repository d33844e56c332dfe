"""Drop-ins for torch.nn.RNNCell, torch.nn.LSTMCell and torch.nn.GRUCell: rnnkit's cells with torch's call.

rnnkit's own cells return ``(output, state)`` with the state a NamedTuple, the protocol a layer runs. These
subclasses take and return what torch's cells do: ``h' = cell(x, h)`` (RNNCell, GRUCell) and
``h', c' = cell(x, (h, c))`` (LSTMCell), with unbatched 1-D input, ``hx=None`` for zeros, torch's argument
order, its checks and their error classes and wording, and its ``repr``. Parameters, their names and
their default initialisation are torch's, so state_dicts move either way. The equations are the parent
cells' (:class:`rnnkit.ElmanCell`, :class:`rnnkit.LSTMCell`, :class:`rnnkit.GRUCell`), so rnnkit's
options come along (``nonlinearity="identity"``, ``activation=``, ``forget_bias=``, ``init=``).

>>> from rnnkit.torch_cells import LSTMCell
>>> h, c = LSTMCell(10, 20)(torch.randn(3, 10))
>>> h.shape, c.shape
(torch.Size([3, 20]), torch.Size([3, 20]))
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from rnnkit import cells
from rnnkit.errors import RnnkitError, ShapeError


class _TorchCellCall:
    """torch.nn.RNNCellBase's forward around an rnnkit cell's ``step`` (mixed in before the cell class)."""

    min_hidden_size = 0
    _state_names = ("hidden",)  # how torch's messages name the state tensors

    def forward(self, input: Tensor, hx: Tensor | tuple[Tensor, ...] | None = None) -> Any:
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise RnnkitError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        tensors = None if hx is None else (hx,) if isinstance(hx, Tensor) else tuple(hx)
        if tensors is not None:
            for i, t in enumerate(tensors):
                if t.dim() not in (1, 2):
                    what = self._state_names[0] if isinstance(hx, Tensor) else f"hx[{i}]"
                    raise RnnkitError(f"{name}: Expected {what} to be 1D or 2D, got {t.dim()}D instead")
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        if x.shape[1] != self.input_size:
            raise ShapeError(f"{name}: input has inconsistent input_size: got {x.shape[1]} expected {self.input_size}")
        if tensors is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        else:
            tensors = tuple(t if batched else t.unsqueeze(0) for t in tensors)
            sizes = self._state_sizes()
            if len(tensors) != len(sizes):
                raise RnnkitError(f"{name}: expected a state of {len(sizes)} tensor(s), got {len(tensors)}")
            B = x.shape[0]
            for i, (t, want) in enumerate(zip(tensors, sizes, strict=True)):
                if t.shape[0] != B:
                    raise ShapeError(f"{name}: Input batch size {B} doesn't match hidden{i} batch size {t.shape[0]}")
                if t.shape[1] != want:
                    got = t.shape[1]
                    raise ShapeError(f"{name}: hidden{i} has inconsistent hidden_size: got {got}, expected {want}")
            state = self._state_type(*tensors)
        _, new = self.step(self.project_inputs(x), state)
        out = tuple(t if batched else t.squeeze(0) for t in new)
        return out[0] if len(out) == 1 else out

    def _state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def extra_repr(self) -> str:
        """torch.nn.RNNCellBase's: sizes, then bias and nonlinearity where not the defaults."""
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(_TorchCellCall, cells.ElmanCell):
    r"""torch.nn.RNNCell's drop-in: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or relu, or identity).

    >>> RNNCell(4, 5, nonlinearity="relu")
    RNNCell(4, 5, nonlinearity=relu)
    """

    _state_type = cells.ElmanState

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            input_size, hidden_size, bias=bias, nonlinearity=nonlinearity, device=device, dtype=dtype, **kwargs
        )


class GRUCell(_TorchCellCall, cells.GRUCell):
    """torch.nn.GRUCell's drop-in (gate order r, z, n; torch's reset-after formulation).

    >>> GRUCell(4, 5)(torch.randn(4)).shape   # unbatched, as torch's
    torch.Size([5])
    """

    _state_type = cells.GRUState

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(input_size, hidden_size, bias=bias, device=device, dtype=dtype, **kwargs)


class LSTMCell(_TorchCellCall, cells.LSTMCell):
    """torch.nn.LSTMCell's drop-in (gate order i, f, g, o): ``h', c' = cell(x, (h, c))``.

    >>> LSTMCell(4, 5, bias=False)
    LSTMCell(4, 5, bias=False)
    """

    _state_names = ("hx",)
    _state_type = cells.LSTMState

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(input_size, hidden_size, bias=bias, device=device, dtype=dtype, **kwargs)

    def _state_sizes(self) -> tuple[int, ...]:
        return (self.output_size, self.hidden_size)
