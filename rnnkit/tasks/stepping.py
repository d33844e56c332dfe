"""A trained model's forward pass for generation: a few rows, one step at a time, as fast as the CPU allows.

Sampling, beam search, CTC fusion and ``rnnkit serve`` call a model one token at a time, at batch 1 or a few
rows. There the cost is not arithmetic but how it is done (../shared/MEASUREMENTS.md, 2 cores): torch's fused
LSTM kernel takes 3.5-4.5 ms for a 2 x 512 step at batch 1 through oneDNN, where the same equations written as
a plain step take 1.5-1.9 ms; and a matrix-vector product reads a (out, in) weight twice as fast when it lies
in memory transposed (Linear(512, 10000): 1.6-2.2 ms as stored, 0.7-0.8 ms pre-transposed).

:class:`Stepper` does exactly the model's eval-mode forward (embedding -> recurrent layers -> output layer;
dropout is off in eval) through each cell's own ``project_inputs`` and ``step`` (the equations of
:mod:`rnnkit.cells`, for every cell), with every weight matrix copied once into the transposed layout. It takes
and returns the model's own state (what ``model(x, state)`` does), so either path can continue the other's
state, and the two give the same numbers within float rounding: tests/tasks/test_stepping.py checks every cell
and that sampling under a seed draws the same tokens whichever path runs. The copies are made once per set of
weights: :func:`stepper` keeps one per model and makes a new one when a weight has changed (a training step,
dynamic evaluation, ``load_state_dict``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import state as S
from rnnkit.errors import RnnkitError
from rnnkit.layers import Recurrent


def transposed_layout(weight: Tensor) -> Tensor:
    """The same matrix, stored transposed: ``F.linear(x, w)`` then reads it row by row (a 2x faster
    matrix-vector product on CPU, measured). 1-D tensors (biases) and others are returned as they are.

    >>> w = torch.arange(6.0).view(2, 3)
    >>> v = transposed_layout(w)
    >>> torch.equal(v, w), v.stride()
    (True, (1, 2))
    """
    return weight.t().contiguous().t() if weight.dim() == 2 else weight


class _LayerSteps:
    """One :class:`rnnkit.Recurrent` layer (any cell, stacked, residual) with its cells bound to re-laid-out
    weights; runs its reference loop's equations without its input checks, masks and packing."""

    def __init__(self, layer: Recurrent) -> None:
        if layer.bidirectional:
            raise RnnkitError("a bidirectional layer cannot generate one step at a time: it reads the future")
        self.layer, self.residual = layer, layer.residual
        self.cells = [
            cell.bound({name: transposed_layout(w.detach()) for name, w in cell._parameters.items() if w is not None})
            for cell in layer.bound_cells()
        ]
        self.state_type = type(self.cells[0].initial_state(1, device="meta"))

    def __call__(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        """x (T, B, input) and the layer's own state (or None) -> output (T, B, output) and new state."""
        if state is None:
            states = [cell.initial_state(x.shape[1], device=x.device, dtype=x.dtype) for cell in self.cells]
        else:
            fields = (state,) if isinstance(state, Tensor) else tuple(state)  # the drop-ins return a bare h
            states = [self.state_type(*(f[k] for f in fields)) for k in range(len(self.cells))]
        finals = []
        for k, (cell, s) in enumerate(zip(self.cells, states, strict=True)):
            y, final, _ = cell.sequence(cell.project_inputs(x), s)
            x = y + x if self.residual and k > 0 else y
            finals.append(final)
        return x, self.layer._state_out(S.stack(finals))


class Stepper:
    """``model(x, state)`` in eval mode for a model made of an optional ``embedding``, recurrent ``layers``
    and an output ``head`` (a Linear), with the weights re-laid-out for small batches (module docstring).

    Call it as the model: ``logits, state = stepper(x, state)``, x (T, B) ids with an embedding or
    (T, B, features) without. Gradients are not tracked (weights are copies).
    """

    def __init__(self, layers: nn.ModuleList, head: nn.Linear, embedding: nn.Embedding | None = None) -> None:
        self.embedding = None if embedding is None else embedding.weight.detach()
        self.layers = [_LayerSteps(layer) for layer in layers]
        self.head_weight = transposed_layout(head.weight.detach())
        self.head_bias = None if head.bias is None else head.bias.detach()
        self.device = head.weight.device

    @torch.no_grad()
    def __call__(self, x: Tensor, state: Any = None) -> tuple[Tensor, tuple]:
        h = F.embedding(x.to(self.device), self.embedding) if self.embedding is not None else x.to(self.device)
        new_state = []
        for i, layer in enumerate(self.layers):
            h, s = layer(h, None if state is None else state[i])
            new_state.append(s)
        return F.linear(h, self.head_weight, self.head_bias), tuple(new_state)


def stepper(model: nn.Module, build: Any) -> Stepper:
    """``model``'s :class:`Stepper`, made by ``build()`` the first time and again whenever one of the model's
    weights has changed since (torch counts each in-place change in a tensor's ``_version``)."""
    key = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in model.parameters())
    cached = model.__dict__.get("_stepper")
    if cached is None or cached[0] != key:
        cached = (key, build())
        model.__dict__["_stepper"] = cached  # not a submodule or buffer: state_dict and .to() ignore it
    return cached[1]
