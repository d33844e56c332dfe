"""Generation's step of a model of recurrent layers in one call of rnnkit.native, products included.

At batch 1 a 2 x 512 LSTM language model with 10,000 words reads 37 MB of weights a token, and this machine reads
them at 53-60 GB/s on its 2 cores: about 0.65 ms a token. :class:`rnnkit.tasks.stepping.Stepper` runs each cell's
``step`` in Python, and there the half-dozen torch calls around each product cost 80-90 us a layer, measured after
a product had streamed megabytes through the caches. :class:`NativeModelStep` is the same step (embedding, every
layer's cells, output layer) as one call of ``model_step`` (rnnkit/native/model_step.cpp), with the same products
(F.linear's addmm) and the same equations (the step kernels that the cells' ``step`` calls too).

One thing it adds: the first cell's W_ih x + b depends only on the word, so it is read from a table with a row
per word, computed once, when the step is made (one product: 85 ms for 10,000 words at 512 LSTM units on 2
cores). A step then reads W_hh alone of that cell's weights, 4 of its 8 MB for a 512-unit LSTM. The table takes
at most :data:`TABLE_MAX_BYTES` (else there is none). An LSTM's sum W_ih x + W_hh h + b is then formed in another
order than the cell's one product of [x; h]: the same numbers within float rounding, and the same samples under a
seed (tests/tasks/test_native_step.py). benchmarks/generation_speed.py measures it (README).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from rnnkit import bptt
from rnnkit.cells.clockwork import ClockworkCell
from rnnkit.cells.elman import ElmanCell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.jordan import JordanCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.mingru import MinGRUCell, MinLSTMCell
from rnnkit.cells.scrn import SCRNCell

#: the most memory the first cell's table of W_ih x + b may take: 82 MB for 10,000 words under 512 LSTM units
TABLE_MAX_BYTES = 1 << 28

#: model_step's numbers for the kinds of cell it runs
LSTM, GRU, ELMAN, JORDAN, MINGRU, MINLSTM, SCRN, CLOCKWORK = 0, 1, 2, 3, 4, 5, 6, 7
#: the kinds whose state has a second field: an LSTM's c, an SCRN's context s, a Clockwork cell's step count t
TWO_STATES = (LSTM, SCRN, CLOCKWORK)


class NativeModelStep:
    """A :class:`~rnnkit.tasks.stepping.Stepper`'s one step, T = 1, in one native call; :meth:`build` says
    whether it applies. Takes and returns the model's own state, as the stepper does."""

    def __init__(self, kernels: Any, layers: list, head_weight: Tensor, head_bias: Tensor | None,
                 embedding: Tensor | None, block_rows: int) -> None:  # fmt: skip
        self.kernels, self.layers, self.embedding, self.block_rows = kernels, layers, embedding, block_rows
        self.head_weight, self.head_bias, self.head_blocks = head_weight, head_bias, _blocks(head_weight)
        self.kinds = [_kind(layer.cells[0]) for layer in layers]
        self.weights = [[w for cell in layer.cells for w, _ in _matrices(cell)] for layer in layers]
        self.blocks = [[_blocks(w) for w in weights] for weights in self.weights]
        self.biases = [[b for cell in layer.cells for _, b in _matrices(cell)] for layer in layers]
        self.acts = [bptt.ACT_IDS.get(a, 0) for layer in layers for a in _activations(layer.cells[0])]  # (0: unused)
        self.alphas = [float(getattr(layer.cells[0], "alpha", 0.0)) for layer in layers]  # SCRN's
        self.periods = [getattr(layer.cells[0], "unit_period", None) for layer in layers]  # Clockwork's
        self.residual = [bool(layer.residual) for layer in layers]
        self.table = None if embedding is None else _table(layers[0].cells[0], embedding)

    @staticmethod
    def build(layers: list, head_weight: Tensor, head_bias: Tensor | None, embedding: Tensor | None,
              block_rows: int) -> NativeModelStep | None:  # fmt: skip
        """A :class:`NativeModelStep` where rnnkit.native runs every cell: LSTM cells laid out by
        :meth:`rnnkit.LSTMCell.for_steps` (without a projection), GRU cells by :meth:`rnnkit.GRUCell.for_steps`
        (reset after the product), Clockwork cells by theirs (W_H masked once), Elman (IRNN's too), Jordan, SCRN
        and the min cells, with activations the kernels know; one kind, one pair of activations, one alpha or set
        of periods a layer.
        Else None. A weight that is a :class:`~rnnkit.tasks.stepping.ParallelMatrix` is multiplied over its
        column blocks at up to ``block_rows`` rows, as in Python."""
        if not layers:
            return None
        for layer in layers:
            first = layer.cells[0]
            for cell in layer.cells:
                usable = _kind(cell) is not None and _kind(cell) == _kind(first) and _kernels(cell) is not None
                alike = _activations(cell) == _activations(first) and _parameters(cell) == _parameters(first)
                if not (usable and alike):
                    return None
        return NativeModelStep(_kernels(layers[0].cells[0]), layers, head_weight, head_bias, embedding, block_rows)

    def __call__(self, x: Tensor, state: Any) -> tuple[Tensor, tuple]:
        """x (1, B) ids with an embedding, else (1, B, features); state: the model's, or None -> logits
        (1, B, V) and the new state. Nothing here is differentiated (the native call takes no gradient)."""
        if state is None:
            state = [_zero_state(layer, x.shape[1], self.head_weight) for layer in self.layers]
        # an LSTM layer's (h, c), an SCRN layer's (h, s); another's state of h (a Jordan layer's y), or h alone
        # from torch's drop-ins
        h0 = [s if isinstance(s, Tensor) else s[0] for s in state]
        c0 = [s[1] if kind in TWO_STATES else None for s, kind in zip(state, self.kinds, strict=True)]
        logits, hs, cs = self.kernels.model_step(
            x, self.embedding, self.table, self.kinds, self.weights, self.blocks, self.biases, h0, c0, self.acts,
            self.alphas, self.periods, self.residual, self.head_weight, self.head_blocks, self.head_bias,
            self.block_rows,
        )  # fmt: skip
        return logits, tuple(_layer_state(layer, h, c) for layer, h, c in zip(self.layers, hs, cs, strict=True))


def _kind(cell: Any) -> int | None:
    """model_step's number for a cell it runs as the cell's own step would, else None."""
    if isinstance(cell, LSTMCell) and type(cell).step is LSTMCell.step:
        return LSTM if cell._merged and cell.weight_hr is None else None
    if isinstance(cell, GRUCell) and type(cell).step is GRUCell.step:
        return GRU if cell.reset_after else None
    if isinstance(cell, ElmanCell) and type(cell).step is ElmanCell.step:
        return ELMAN
    if isinstance(cell, JordanCell) and type(cell).step is JordanCell.step:
        return JORDAN
    if isinstance(cell, ClockworkCell) and type(cell).step is ClockworkCell.step:
        return CLOCKWORK if cell._premasked else None  # (for_steps(): W_H masked once)
    for kind, cls in ((MINGRU, MinGRUCell), (MINLSTM, MinLSTMCell), (SCRN, SCRNCell)):
        if isinstance(cell, cls) and type(cell).step is cls.step:
            return kind
    return None


def _kernels(cell: Any) -> Any:
    """rnnkit.native's kernels for the cell's step: those its for_steps() view holds (LSTM, GRU), else looked up."""
    if _kind(cell) in (LSTM, GRU):
        return cell.__dict__.get("_kernels")
    return bptt.step_kernels(cell.weight_ih, *(a for a in _activations(cell) if a is not None))


def _matrices(cell: Any) -> list[tuple[Tensor, Tensor | None]]:
    """A cell's (matrix, bias) pairs in model_step's order."""
    if _kind(cell) == LSTM:
        return [(cell.weight_xh, cell.bias_xh)]
    if _kind(cell) in (MINGRU, MINLSTM):
        return [(cell.weight_ih, cell.bias_ih)]
    if _kind(cell) == SCRN:
        return [(cell.weight_ih, None), (cell.weight_sh, cell.bias), (cell.weight_hh, None)]
    if _kind(cell) == CLOCKWORK:
        return [(cell.weight_ih, cell.bias_ih), (cell.weight_hh, None)]
    if _kind(cell) == JORDAN:
        return [(cell.weight_ih, cell.bias_ih), (cell.weight_yh, None), (cell.weight_hy, cell.bias_hy)]
    return [(cell.weight_ih, cell.bias_ih), (cell.weight_hh, cell.bias_hh)]


def _blocks(weight: Tensor) -> Tensor | None:
    """The column blocks of a :class:`~rnnkit.tasks.stepping.ParallelMatrix`, else None."""
    return getattr(weight, "blocks", None)


def _table(cell: Any, embedding: Tensor) -> Tensor | None:
    """W_ih x + b of the first cell (laid out for steps) for every row x of ``embedding``: (V, gates), or None
    where it would take more than :data:`TABLE_MAX_BYTES`."""
    weight, bias = _matrices(cell)[0]
    if embedding.shape[0] * weight.shape[0] * embedding.element_size() > TABLE_MAX_BYTES:
        return None
    return F.linear(embedding, weight[:, : embedding.shape[1]], bias)  # an LSTM's W_ih: [W_ih W_hh]'s first columns


def _activations(cell: Any) -> tuple[str | None, str | None]:
    """(phi, sigma) of a gated cell; an Elman or Clockwork cell's g twice; a Jordan cell's g and act_y; none for
    the SCRN and min cells (theirs are fixed)."""
    if _kind(cell) in (MINGRU, MINLSTM, SCRN):
        return None, None
    if _kind(cell) in (ELMAN, CLOCKWORK):
        return cell.nonlinearity, cell.nonlinearity
    if _kind(cell) == JORDAN:
        return cell.nonlinearity, cell.output_activation
    return getattr(cell, "activation", None), getattr(cell, "recurrent_activation", None)


def _parameters(cell: Any) -> tuple:
    """What else a layer's cells must share to run in one call: an SCRN's alpha, a Clockwork cell's periods."""
    return getattr(cell, "alpha", None), tuple(getattr(cell, "periods", ()))


def _zero_state(layer: Any, rows: int, like: Tensor) -> list[Tensor]:
    """A layer's zero state, field by field (cells, rows, width), as its cells' initial_state gives it."""
    fields = layer.cells[0].initial_state(rows, device=like.device, dtype=like.dtype)
    return [f.new_zeros(len(layer.cells), *f.shape) for f in fields]


def _layer_state(layer: Any, h: Tensor, c: Tensor | None) -> Any:
    """A layer's state as its own forward returns it."""
    return layer.layer._state_out(layer.state_type(h) if c is None else layer.state_type(h, c))
