"""Generation's step of a model made of LSTM layers in one call of rnnkit.native, products included.

At batch 1 a 2 x 512 LSTM language model with 10,000 words reads 37 MB of weights a token, and this machine reads
them at 53-60 GB/s on its 2 cores: about 0.65 ms a token. :class:`rnnkit.tasks.stepping.Stepper` runs each cell's
``step`` in Python, and there the half-dozen torch calls around each product cost 80-90 us a layer, measured after
a product had streamed megabytes through the caches. :class:`LSTMModelStep` is the same step (embedding, every
layer's cells, output layer) as one call of ``lstm_model_step`` (rnnkit/native/gated_steps.cpp), with the same
products (F.linear's addmm) and the same equations (``lstm_forward_step``, which the cells' ``step`` calls too).

One thing it adds: the first cell's W_ih x + b depends only on the word, so it is read from a table with a row
per word, computed once, when the step is made (one product: 85 ms for 10,000 words at 512 units on 2 cores). A
step then reads W_hh alone of that cell's weights, 4 of its 8 MB at 2 x 512. The table takes at most
:data:`TABLE_MAX_BYTES` (else there is none). The sum W_ih x + W_hh h + b is then formed in another order than the
cells' one product of [x; h]: the same numbers within float rounding, and the same samples under a seed
(tests/tasks/test_lstm_steps.py). benchmarks/generation_speed.py measures it (README).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from rnnkit import bptt
from rnnkit.cells.lstm import LSTMCell

#: the most memory the first cell's table of W_ih x + b may take: 82 MB for 10,000 words under 512 LSTM units
TABLE_MAX_BYTES = 1 << 28


class LSTMModelStep:
    """A :class:`~rnnkit.tasks.stepping.Stepper`'s one step, T = 1, in one native call; :meth:`build` says
    whether it applies. Takes and returns the model's own state, as the stepper does."""

    def __init__(self, kernels: Any, layers: list, head_weight: Tensor, head_bias: Tensor | None,
                 embedding: Tensor | None) -> None:  # fmt: skip
        self.kernels, self.embedding = kernels, embedding
        self.head_weight, self.head_bias = head_weight, head_bias
        self.weights = [[cell.weight_xh for cell in layer.cells] for layer in layers]
        self.biases = [[cell.bias_xh for cell in layer.cells] for layer in layers]
        self.acts = [bptt.ACT_IDS[a] for layer in layers for a in _activations(layer.cells[0])]
        self.residual = [bool(layer.residual) for layer in layers]
        self.layers = layers
        self.table = None if embedding is None else _table(layers[0].cells[0], embedding)

    @staticmethod
    def build(layers: list, head_weight: Tensor, head_bias: Tensor | None, embedding: Tensor | None):
        """An :class:`LSTMModelStep` where rnnkit.native runs every cell: each an LSTM cell laid out by
        :meth:`rnnkit.LSTMCell.for_steps` with the kernels built for it, without a projection; every weight a
        plain tensor (not a :class:`~rnnkit.tasks.stepping.ParallelMatrix`: where those pay, torch's product of
        one row runs on one thread, and the native call would take the plain one). Else None."""
        kernels = None
        for layer in layers:  # (no layers: kernels stays None)
            names = _activations(layer.cells[0])
            for cell in layer.cells:
                usable = isinstance(cell, LSTMCell) and type(cell).step is LSTMCell.step and cell.weight_hr is None
                if not (usable and cell._merged and _activations(cell) == names):
                    return None
                kernels = cell.__dict__.get("_kernels")
                if kernels is None or type(cell.weight_xh) is not Tensor:
                    return None
        if kernels is None or type(head_weight) is not Tensor:
            return None
        return LSTMModelStep(kernels, layers, head_weight, head_bias, embedding)

    def __call__(self, x: Tensor, state: Any) -> tuple[Tensor, tuple]:
        """x (1, B) ids with an embedding, else (1, B, features); state: the model's, or None -> logits
        (1, B, V) and the new state."""
        ids = x[0].long() if self.embedding is not None else None
        inputs = F.embedding(ids, self.embedding) if ids is not None else x[0]
        if state is None:
            state = [_zeros(layer, inputs) for layer in self.layers]
        h0, c0 = [s[0] for s in state], [s[1] for s in state]
        logits, hs, cs = self.kernels.lstm_model_step(
            inputs, self.weights, self.biases, h0, c0, self.acts, self.residual, self.head_weight, self.head_bias,
            None if self.table is None else ids, self.table,
        )  # fmt: skip
        new = tuple(
            layer.layer._state_out(layer.state_type(h, c)) for layer, h, c in zip(self.layers, hs, cs, strict=True)
        )
        return logits.unsqueeze(0), new


def _table(cell: LSTMCell, embedding: Tensor) -> Tensor | None:
    """W_ih x + b of ``cell`` (laid out for steps) for every row x of ``embedding``: (V, 4H), or None where it
    would take more than :data:`TABLE_MAX_BYTES`."""
    gates = cell.weight_xh.shape[0]
    if embedding.shape[0] * gates * embedding.element_size() > TABLE_MAX_BYTES:
        return None
    return F.linear(embedding, cell.weight_xh[:, : embedding.shape[1]], cell.bias_xh)  # [W_ih W_hh]'s W_ih


def _activations(cell: Any) -> tuple[str | None, str | None]:
    return getattr(cell, "activation", None), getattr(cell, "recurrent_activation", None)


def _zeros(layer: Any, like: Tensor) -> tuple[Tensor, Tensor]:
    """A layer's zero state (h, c), each (cells, B, H)."""
    shape = (len(layer.cells), like.shape[0], layer.cells[0].hidden_size)
    return like.new_zeros(shape), like.new_zeros(shape)
