"""One layer that runs any cell over time: :class:`Recurrent`.

It stacks cells (``num_layers``), runs a second stack on the reversed sequences (``bidirectional``),
applies dropout between layers and optional residual connections, and takes padded batches with
``lengths=`` or a PackedSequence. It knows only the cell protocol of :mod:`rnnkit.cells.base`.

Shapes: T time steps, B batch, L layers, D = 2 if bidirectional else 1, O the cell's output size.
State: the cell's NamedTuple with every field stacked as (L*D, B, ...), index ``layer * D + direction``,
as torch's h_0 / c_0. Outputs at padded positions are zero, and padding never changes the output or the
final state of a real position: the final state is each sequence's state at its own last step.

Weights: the layer owns its cells' parameters under torch.nn.RNN's names: cell ``k``'s ``weight_ih`` is the
layer's ``weight_ih_l{layer}`` (``..._reverse`` for the backward direction), in torch's order. So
``named_parameters()``, ``state_dict()`` (torch.nn.LSTM/GRU/RNN state_dicts load unchanged), weight_norm,
parametrizations (orthogonal, spectral_norm, a user's own), replacing a named weight (AWD-LSTM's weight drop)
and name-based optimizer groups all act on the layer as they do on torch.nn.LSTM. Each forward reads the
weights by name (``getattr``, which applies any parametrization) and runs each cell on them through
:meth:`rnnkit.cells.Cell.bound`, so the cells keep reading like their equations (``self.weight_hh``).
A cell's own submodules (a user cell's ``nn.Linear``) stay in the cell. A layer made from one cell instance,
``Recurrent(cell)``, leaves the weights with the cell, which the caller may go on using on its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import onednn
from rnnkit import state as S
from rnnkit.cells import CELLS, Cell
from rnnkit.errors import ArgumentTypeError, RnnkitError, ShapeError

CellSpec = str | type[Cell] | Callable[..., Cell] | Cell


def flip_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence's first ``lengths[b]`` steps along dim 0; padding stays where it is.

    >>> x = torch.tensor([[1, 1], [2, 2], [3, 0]])        # (T=3, B=2): lengths 3 and 2
    >>> flip_padded(x, torch.tensor([3, 2])).tolist()
    [[3, 2], [2, 1], [1, 0]]
    """
    if lengths is None:
        return x.flip(0)
    T, B = x.shape[:2]
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    rev = lengths.to(x.device).unsqueeze(0) - 1 - t  # (T, B)
    index = torch.where(rev >= 0, rev, t.expand(T, B))
    index = index.view(T, B, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)


@dataclass
class _Batch:
    """The input put in one form: time-major padded, with what is needed to give results back."""

    x: Tensor  # (T, B, input_size)
    lengths: Tensor | None  # (B,) int64 on x's device, None when every sequence fills T
    mask: Tensor | None  # (T, B) bool, true at real positions; None when there is no padding
    batch_first: bool
    unbatched: bool
    packed: PackedSequence | None  # the PackedSequence that came in, to pack the output alike
    packed_lengths: Tensor | None  # its lengths (CPU, caller's order), as pad_packed_sequence gave them


class Recurrent(nn.Module):
    """Run any cell over batches of variable-length sequences, stacked and in both directions.

    Args:
        cell: a cell class (or any ``factory(input_size, hidden_size, **cell_kwargs) -> Cell``), a name in
            :data:`rnnkit.cells.CELLS` ("lstm", "gru", "rnn", "jordan", ...), or one Cell instance
            (then ``num_layers`` must be 1 and ``bidirectional`` False).
        input_size, hidden_size: sizes of the first layer's input and of each cell's hidden state.
        num_layers: cells stacked; layer l > 0 reads D * output_size features.
        batch_first: input and output are (B, T, F) instead of (T, B, F).
        dropout: dropout on each layer's output except the last (as torch.nn.LSTM).
        bidirectional: add a second stack that reads each sequence backwards; outputs are concatenated.
        residual: add each layer's input to its output, from the second layer on (Wu et al. 2016).
        **cell_kwargs: passed to every cell (``nonlinearity=``, ``init=``, ``output_size=``, ...).

    Call: ``out, state = layer(x, state=None, lengths=None)``; with ``return_steps=True`` a third
    value holds every step's full state (fields (L*D, T, B, ...), (L*D, B, T, ...) if batch_first; zero at
    padding), e.g. an LSTM's memory c_t, which torch's fused kernels cannot give.

    >>> layer = Recurrent("lstm", 8, 16, num_layers=2, bidirectional=True, batch_first=True)
    >>> out, state = layer(torch.randn(4, 10, 8), lengths=torch.tensor([10, 7, 3, 1]))
    >>> out.shape, state.c.shape
    (torch.Size([4, 10, 32]), torch.Size([4, 4, 16]))
    """

    def __init__(
        self,
        cell: CellSpec,
        input_size: int | None = None,
        hidden_size: int | None = None,
        num_layers: int = 1,
        *,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        residual: bool = False,
        **cell_kwargs: Any,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        # the messages carry torch.nn.RNNBase's wording, and its TypeError for a wrong type (see rnnkit.errors)
        for arg, value in (("batch_first", batch_first), ("bidirectional", bidirectional), ("residual", residual)):
            if not isinstance(value, bool):
                raise ArgumentTypeError(f"{name}: {arg} should be of type bool, got: {type(value).__name__}")
        if not isinstance(num_layers, int) or isinstance(num_layers, bool):
            raise ArgumentTypeError(f"{name}: num_layers should be of type int, got: {type(num_layers).__name__}")
        if num_layers < 1:
            raise RnnkitError(f"{name}: num_layers must be greater than zero, got {num_layers}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise RnnkitError(
                f"{name}: dropout should be a number in range [0, 1] representing the probability of an element "
                f"being zeroed, got {dropout!r}"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{name}: dropout={dropout} acts between layers and num_layers=1: it has no effect", stacklevel=2
            )
        self.num_layers, self.batch_first, self.dropout = num_layers, batch_first, float(dropout)
        self.bidirectional, self.residual = bidirectional, residual
        D = 2 if bidirectional else 1
        if isinstance(cell, Cell):
            if num_layers != 1 or bidirectional or cell_kwargs:
                raise RnnkitError(
                    f"{name}: a cell instance makes a single one-way layer; for num_layers={num_layers} or "
                    "bidirectional=True pass the cell class (e.g. rnnkit.LSTMCell) and its keyword arguments"
                )
            cells = [cell]
        else:
            factory = CELLS[cell] if isinstance(cell, str) and cell in CELLS else cell
            if isinstance(factory, str) or not callable(factory):
                raise RnnkitError(f"{name}: unknown cell {cell!r}: choose one of {', '.join(CELLS)} or pass a class")
            if input_size is None or hidden_size is None:
                raise RnnkitError(f"{name}: input_size and hidden_size are required with a cell class or name")
            cells, size = [], input_size
            for _ in range(num_layers):
                cells += [factory(size, hidden_size, **cell_kwargs) for _ in range(D)]
                size = D * cells[-1].output_size
        self.cells = nn.ModuleList(cells)
        self.input_size, self.hidden_size = cells[0].input_size, cells[0].hidden_size
        self._all_weights: list[list[tuple[str, str]]] = [[] for _ in cells]  # per cell: (its name, the layer's)
        if not isinstance(cell, Cell):  # a given instance stays its caller's, owning its weights (module docstring)
            self._adopt_weights()

    def _adopt_weights(self) -> None:
        """Move each cell's own parameters onto the layer under torch's names, in torch's order."""
        D = self.num_directions
        for k, cell in enumerate(self.cells):
            suffix = f"_l{k // D}{'_reverse' if k % D else ''}"
            names = [(name, name + suffix) for name, p in cell._parameters.items() if p is not None]
            for name, own in names:
                self.register_parameter(own, cell._parameters.pop(name))
            self._all_weights[k] = names

    @property
    def _flat_weights_names(self) -> list[str]:
        """The layer's weight names in torch's order (as torch.nn.RNNBase's)."""
        return [own for names in self._all_weights for _, own in names]

    @property
    def _flat_weights(self) -> list[Tensor | None]:
        """The current weights in torch's order, as read by name (None for one deleted), as torch.nn.RNNBase's."""
        return [getattr(self, own, None) for own in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """Each cell's current weights (one list per layer and direction), as torch.nn.RNN's ``all_weights``."""
        return [[w for _, w in cell.named_parameters(recurse=False)] for cell in self.bound_cells()]

    def bound_cells(self) -> list[Cell]:
        """The cells computing with the layer's current weights (see :meth:`rnnkit.cells.Cell.bound`): for
        stepping a trained layer's cell by hand, e.g. ``cell = layer.bound_cells()[0]; y, s = cell(x_t, s)``."""
        return [
            cell.bound({name: getattr(self, own) for name, own in names})
            for cell, names in zip(self.cells, self._all_weights, strict=True)
        ]

    def reset_parameters(self) -> None:
        """Re-draw every weight with its cell's own scheme (``init=``, ``forget_bias=``), as when built."""
        for cell in self.bound_cells():
            cell.reset_parameters(getattr(cell, "init", "uniform"))

    def flatten_parameters(self) -> None:
        """As torch.nn.RNN's: a no-op here (the drop-ins :class:`rnnkit.LSTM` etc. give cuDNN one buffer)."""

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Features of each output step: D times the cell's output size."""
        return self.num_directions * self.cells[-1].output_size

    def initial_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> Any:
        """Zeros, each field (L*D, B, ...), on the weights' device and dtype unless told otherwise."""
        # the weights only to learn their device and dtype: reading them runs any parametrization (spectral_norm's
        # power iteration), so not when both are given, as in every forward without a state
        cells = self.cells if device is not None and dtype is not None else self.bound_cells()
        return S.stack([c.initial_state(batch_size, device=device, dtype=dtype) for c in cells])

    def forward(
        self, input: Tensor | PackedSequence, state: Any = None, lengths: Any = None, *, return_steps: bool = False
    ) -> tuple[Any, ...]:
        batch = self._prepare(input, lengths)
        state = self._check_state(state, batch)
        out, final, steps = self._loop(batch, state, return_steps)
        return self._finish(batch, out, final, steps)

    # -- the reference loop: every cell, every option -------------------------------------------------

    def _loop(self, batch: _Batch, state: Any, keep_steps: bool) -> tuple[Tensor, Any, Any]:
        D, lengths, mask = self.num_directions, batch.lengths, batch.mask
        states_in, cells = S.unbind(state), self.bound_cells()
        if onednn.available(batch.x):  # the wide products through oneDNN: faster on CPU (see rnnkit.onednn)
            # without a gradient the transposes, which only the backward reads, are not packed (at hidden 512 their
            # copies and packing took 9 of a 69 ms forward)
            cells = onednn.onednn_cells(cells, batch.x.shape[1], backward=torch.is_grad_enabled())
        finals, all_steps, layer_input = [], [], batch.x
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                cell = cells[layer * D + d]
                x = layer_input if d == 0 else flip_padded(layer_input, lengths)
                y, final, steps = cell.sequence(cell.project_inputs(x), states_in[layer * D + d], mask, keep_steps)
                if d == 1:
                    y = flip_padded(y, lengths)
                if keep_steps:
                    steps = S.stack(steps)  # fields (T, B, ...)
                    if d == 1:
                        steps = S.map_state(lambda t: flip_padded(t, lengths), steps)
                    all_steps.append(steps)
                outs.append(y)
                finals.append(final)
            y = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (T, B, D*O)
            if mask is not None:
                y = y.masked_fill(~mask.unsqueeze(-1), 0.0)
            if self.residual and layer > 0:
                y = y + layer_input
            if self.dropout and self.training and layer < self.num_layers - 1:
                y = F.dropout(y, self.dropout, training=True)
            layer_input = y
        steps = None
        if keep_steps:
            steps = S.stack(all_steps)  # fields (L*D, T, B, ...)
            if mask is not None:
                steps = S.map_state(lambda t: _zero_padding(t, mask), steps)
        return layer_input, S.stack(finals), steps

    # -- input, state and output handling shared by every layer ---------------------------------------

    def _prepare(self, input: Tensor | PackedSequence, lengths: Any) -> _Batch:
        name, packed, packed_lengths = type(self).__name__, None, None
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise RnnkitError(f"{name}: pass either a PackedSequence or lengths=, not both")
            packed = input
            x, lengths = pad_packed_sequence(input)  # (T, B, F) in the caller's batch order
            packed_lengths = lengths
            unbatched = False
        elif not isinstance(input, Tensor) or input.dim() not in (2, 3):
            got = f"{input.dim()}D" if isinstance(input, Tensor) else type(input).__name__
            want = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            shape = f" {tuple(input.shape)}" if isinstance(input, Tensor) else ""
            raise RnnkitError(
                f"{name}: Expected input to be 2D or 3D, got {got}{shape} instead: pass {want} or (T, input_size)"
            )
        else:
            unbatched = input.dim() == 2
            x = input.unsqueeze(1) if unbatched else input.transpose(0, 1) if self.batch_first else input
        T, B, features = x.shape
        shape = tuple(input.data.shape if packed is not None else input.shape)
        if features != self.input_size:
            raise ShapeError(
                f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, got {features} "
                f"(input {shape})"
            )
        weight = next(iter(self.parameters()), None)
        if x.is_floating_point() and weight is not None and weight.dtype != x.dtype:
            raise RnnkitError(
                f"{name}: RNN input dtype ({x.dtype}) does not match weight dtype ({weight.dtype}). Convert input: "
                f"input.to({weight.dtype}), or convert model: model.to({x.dtype})"
            )
        if T == 0:
            raise ShapeError(
                f"{name}: Expected sequence length to be larger than 0 in RNN (input {shape}): "
                "each sequence needs at least one step"
            )
        lengths = _check_lengths(name, lengths, T, B, x.device) if B else None
        mask = None
        # full-length batches skip the mask in eager mode; a compiled graph cannot branch on the values: it masks
        if lengths is not None and (torch.compiler.is_compiling() or bool((lengths < T).any())):
            mask = torch.arange(T, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
        else:
            lengths = None
        return _Batch(x, lengths, mask, self.batch_first and packed is None, unbatched, packed, packed_lengths)

    def _check_state(self, state: Any, batch: _Batch) -> Any:
        B, x = batch.x.shape[1], batch.x
        if state is None:
            return self.initial_state(B, device=x.device, dtype=x.dtype)
        # the shapes a given state must have: one cell's state on the meta device (nothing allocated), with the
        # L*D cells stacked in front. Not self.initial_state(device="meta"): torch.stack of meta tensors runs
        # torch's Python reference, whose first call imports torch._dynamo, 2.5 s of every process's first forward.
        one = self.cells[0].initial_state(B, device="meta", dtype=x.dtype)
        expected = type(one)(*(torch.empty(len(self.cells), *t.shape, device="meta") for t in one))
        name, fields = type(self).__name__, expected._fields
        if isinstance(state, Tensor):
            state = (state,)
        if not isinstance(state, (tuple, list)) or len(state) != len(fields):
            raise RnnkitError(f"{name} expected a state with fields {fields}, got {_describe(state)}")
        for field, got, want in zip(fields, state, expected, strict=True):
            want_dim = want.dim() - batch.unbatched
            if isinstance(got, Tensor) and got.dim() != want_dim:
                kind = "unbatched 2-D" if batch.unbatched else "batched 3-D"
                shape = want.shape[:1] + want.shape[2:] if batch.unbatched else want.shape
                raise ShapeError(
                    f"{name}: For {kind} input, hx should also be {want_dim}-D but got {got.dim()}-D tensor: "
                    f"expected state {field} of shape {tuple(shape)}, got {tuple(got.shape)}"
                )
        if batch.unbatched:
            state = [t.unsqueeze(1) if isinstance(t, Tensor) else t for t in state]
        for i, (field, got, want) in enumerate(zip(fields, state, expected, strict=True)):
            if not isinstance(got, Tensor) or got.shape != want.shape:
                got_shape = list(got.shape) if isinstance(got, Tensor) else type(got).__name__
                which = "hidden" if len(fields) == 1 else f"hidden[{i}]"  # torch.nn's wording
                raise ShapeError(
                    f"{name}: Expected {which} size {tuple(want.shape)}, got {got_shape}: state {field} is "
                    "(num_layers * num_directions, batch, size)"
                )
        return type(expected)(*state)

    def _finish(self, batch: _Batch, out: Tensor | PackedSequence, final: Any, steps: Any) -> tuple[Any, ...]:
        if isinstance(out, PackedSequence):
            pass  # a fused kernel's packed output, already in the caller's form
        elif batch.packed is not None:
            out = _pack_like(out, batch.packed, batch.packed_lengths)
        elif batch.unbatched:
            out = out.squeeze(1)
        elif batch.batch_first:
            out = out.transpose(0, 1)
        if batch.unbatched:
            final = S.map_state(lambda t: t.squeeze(1), final)
        result = (out, self._state_out(final))
        if steps is not None:
            if batch.unbatched:
                steps = S.map_state(lambda t: t.squeeze(2), steps)
            elif batch.batch_first:
                steps = S.map_state(lambda t: t.transpose(1, 2), steps)
            result += (steps,)
        return result

    def _state_out(self, state: Any) -> Any:
        """The final state as this layer returns it (torch-compatible layers return a bare tensor)."""
        return state


def _check_lengths(name: str, lengths: Any, T: int, B: int, device: torch.device) -> Tensor | None:
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise RnnkitError(f"{name} expected lengths as a 1-D integer tensor of size {B}, got {_describe(lengths)}")
    if lengths.numel() != B:
        raise RnnkitError(f"{name} got {lengths.numel()} lengths for a batch of {B} sequences: give one per sequence")
    if torch.compiler.is_compiling():  # reading the values would end the graph: a compiled call trusts them
        return lengths.to(device=device, dtype=torch.long)
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1 or high > T:
        raise RnnkitError(f"{name} expected lengths in 1..{T} (the padded length), got values from {low} to {high}")
    return lengths.to(device=device, dtype=torch.long)


def _pack_like(out: Tensor, packed: PackedSequence, lengths: Tensor) -> PackedSequence:
    """Pack a padded (T, B, F) output with the batch order and sizes of the PackedSequence that came in."""
    if packed.sorted_indices is not None:
        out, lengths = out.index_select(1, packed.sorted_indices), lengths[packed.sorted_indices.cpu()]
    data = pack_padded_sequence(out, lengths, enforce_sorted=True).data
    return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)


def _zero_padding(t: Tensor, mask: Tensor) -> Tensor:
    m = mask.view(1, *mask.shape, *([1] * (t.dim() - 3)))
    return torch.where(m, t, torch.zeros((), dtype=t.dtype, device=t.device))


def _describe(x: Any) -> str:
    if isinstance(x, Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)}"
    return type(x).__name__


class Jordan(Recurrent):
    """A Jordan network layer: :class:`rnnkit.JordanCell` run over time (stacked, bidirectional, ...).

    >>> out, state = Jordan(4, 16, 3)(torch.randn(6, 2, 4))
    >>> out.shape, state.y.shape
    (torch.Size([6, 2, 3]), torch.Size([1, 2, 3]))
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1, **kwargs: Any):
        from rnnkit.cells import JordanCell

        super().__init__(JordanCell, input_size, hidden_size, num_layers, output_size=output_size, **kwargs)


class SCRN(Recurrent):
    """An SCRN layer (:class:`rnnkit.SCRNCell`): outputs [h_t; s_t], D * (hidden_size + context_size) features.

    >>> out, state = SCRN(4, 16, context_size=8)(torch.randn(6, 2, 4))
    >>> out.shape, state.s.shape
    (torch.Size([6, 2, 24]), torch.Size([1, 2, 8]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs: Any):
        from rnnkit.cells import SCRNCell

        super().__init__(SCRNCell, input_size, hidden_size, num_layers, **kwargs)


class Clockwork(Recurrent):
    """A Clockwork RNN layer (:class:`rnnkit.ClockworkCell`); ``periods=`` sets the modules' clocks.

    >>> out, state = Clockwork(4, 16, periods=[1, 2, 4, 8])(torch.randn(6, 2, 4))
    >>> out.shape, state.t.tolist()
    (torch.Size([6, 2, 16]), [[6, 6]])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs: Any):
        from rnnkit.cells import ClockworkCell

        super().__init__(ClockworkCell, input_size, hidden_size, num_layers, **kwargs)


class MinGRU(Recurrent):
    """A minGRU layer (:class:`rnnkit.MinGRUCell`): trained by a parallel scan over each sequence.

    >>> out, state = MinGRU(4, 16, num_layers=2)(torch.randn(6, 2, 4))
    >>> out.shape, state.h.shape
    (torch.Size([6, 2, 16]), torch.Size([2, 2, 16]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs: Any):
        from rnnkit.cells import MinGRUCell

        super().__init__(MinGRUCell, input_size, hidden_size, num_layers, **kwargs)


class MinLSTM(Recurrent):
    """A minLSTM layer (:class:`rnnkit.MinLSTMCell`): trained by a parallel scan over each sequence."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs: Any):
        from rnnkit.cells import MinLSTMCell

        super().__init__(MinLSTMCell, input_size, hidden_size, num_layers, **kwargs)
