"""A trained model's forward pass for generation: a few rows, one step at a time, as fast as the CPU allows.

Sampling, beam search, CTC fusion and ``rnnkit serve`` call a model one token at a time, at batch 1 or a few
rows. There the cost is not arithmetic but how it is done (../shared/MEASUREMENTS.md, 2 cores): torch's fused
LSTM kernel takes 3.5-4.5 ms for a 2 x 512 step at batch 1 through oneDNN, where the same equations written as
a plain step take 1.5-1.9 ms; and a matrix-vector product reads a (out, in) weight twice as fast when it lies
in memory transposed (Linear(512, 10000): 1.6-2.2 ms as stored, 0.7-0.8 ms pre-transposed).

:class:`Stepper` does exactly the model's eval-mode forward (embedding -> recurrent layers -> output layer;
dropout is off in eval) through each cell's own ``project_inputs`` and ``step`` (the equations of
:mod:`rnnkit.cells`, for every cell), each cell first prepared for many steps (:meth:`rnnkit.Cell.for_steps`:
the LSTM takes one product of [W_ih W_hh] and [x; h] a step, Clockwork masks its W_H once), with every weight
matrix copied once into a layout for few rows: the transposed one, and, where this machine runs them faster
(:func:`blocks_pay`), for the large matrices also column blocks whose products run on all of torch's threads
(:class:`ParallelMatrix`). benchmarks/generation_speed.py measures it against the model's forward and
torch.nn.LSTM stepped by hand (README). It takes and returns the model's own state (what ``model(x, state)``
does), so either path can continue the other's state, and the two give the same numbers within float rounding:
tests/tasks/test_stepping.py checks every cell and that sampling under a seed draws the same tokens whichever
path runs. The copies are made once per set of weights: :func:`stepper` keeps one per model and makes a new one
when a weight has changed (a training step, dynamic evaluation, ``load_state_dict``). For models of any of
rnnkit's cells, one step (T = 1) is one call of rnnkit.native, products included (:mod:`rnnkit.tasks.native_step`).
"""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import state as S
from rnnkit.errors import RnnkitError
from rnnkit.layers import Recurrent
from rnnkit.onednn import linear_call
from rnnkit.tasks.native_step import NativeModelStep


class ParallelMatrix(Tensor):
    """A weight matrix whose ``F.linear`` at a few rows runs on every torch thread.

    On some machines torch computes a matrix-vector product on one thread (measured on an AMD EPYC: the same time
    at 1 and 2 threads), so a step's products use one core's memory bandwidth, and a 2 x 512 LSTM with 10,000
    words reads 37 MB per token. Here the matrix is also kept as ``parts`` column blocks, (parts, in, out /
    parts), and ``F.linear(x, w, b)`` becomes one ``torch.bmm`` over the blocks, which torch spreads over its
    threads (measured there on 2 cores: Linear(512, 10000) at batch 1 in 0.21 ms against 0.51 ms; where torch
    uses every thread itself the blocks only cost, and :func:`fast_layout` does not make them). Each output is
    still the dot product of x and one row of the matrix: the same numbers up to float rounding. Every other
    operation, and ``F.linear`` of many rows, sees the plain matrix (in the transposed layout), so the cells'
    equations run unchanged.
    """

    blocks: Tensor

    @staticmethod
    def __new__(cls, weight: Tensor, parts: int) -> ParallelMatrix:
        out, inp = weight.shape
        self = Tensor._make_subclass(cls, transposed_layout(weight))
        width = -(-out // parts)
        padded = F.pad(weight, (0, 0, 0, width * parts - out))  # zero rows: every block the same width
        self.blocks = padded.view(parts, width, inp).transpose(1, 2).contiguous()  # (parts, in, width)
        return self

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        call = linear_call(cls, func, args, kwargs)
        if call is not None and call[0].dim() >= 2 and call[0][..., 0].numel() <= SMALL_BATCH:
            return call[1]._linear(call[0], call[2])
        with torch._C.DisableTorchFunctionSubclass():  # everything else: the plain matrix, plain results
            return func(*args, **kwargs)

    def _linear(self, x: Tensor, bias: Tensor | None) -> Tensor:
        """x (..., in) of few rows -> (..., out)."""
        parts, inp, width = self.blocks.shape
        with torch._C.DisableTorchFunctionSubclass():
            rows = x.reshape(-1, inp)
            y = torch.bmm(rows.expand(parts, *rows.shape), self.blocks)  # (parts, rows, width)
            y = y.transpose(0, 1).reshape(rows.shape[0], parts * width)[:, : self.shape[0]]
            y = y.reshape(*x.shape[:-1], self.shape[0])
            return y if bias is None else y + bias


#: ``F.linear`` of at most this many rows runs on the blocks of a :class:`ParallelMatrix` (generation, beams)
SMALL_BATCH = 16
#: matrices smaller than this stay plain: splitting costs more than it saves (measured: ~30 us a product)
PARALLEL_MIN_SIZE = 1 << 17


def fast_layout(weight: Tensor) -> Tensor:
    """``weight`` laid out for products at a few rows: a :class:`ParallelMatrix` over torch's threads when it
    is large enough, there is more than one thread and the blocks are faster on this machine
    (:func:`blocks_pay`), else :func:`transposed_layout`."""
    parts = torch.get_num_threads()
    large = weight.dim() == 2 and weight.numel() >= PARALLEL_MIN_SIZE and weight.device.type == "cpu"
    if large and parts > 1 and blocks_pay(*weight.shape, weight.dtype, parts):
        return ParallelMatrix(weight, parts)
    return transposed_layout(weight)


@functools.cache
def blocks_pay(out: int, inp: int, dtype: torch.dtype, parts: int) -> bool:
    """Whether a :class:`ParallelMatrix` of this shape multiplies one row at least 10% faster than the plain
    transposed matrix: measured once per process and shape (20-60 ms), because machines differ. On an AMD
    EPYC torch ran a matrix-vector product on one thread, and the blocks took Linear(512, 10000) from 0.51 to
    0.21 ms; on an Intel Xeon torch used both threads itself (0.45 ms), and the blocks were 15-30% slower."""
    w = torch.ones(inp, out, dtype=dtype).t()  # already transposed; the values do not change the time
    plain, blocks, x = w, ParallelMatrix(w, parts), torch.ones(1, inp, dtype=dtype)
    times: dict[str, list[float]] = {"plain": [], "blocks": []}
    with torch.no_grad():
        for _ in range(7):  # interleaved, so that drift hits both
            for name, m in (("plain", plain), ("blocks", blocks)):
                start = time.perf_counter()
                F.linear(x, m)
                times[name].append(time.perf_counter() - start)
    return statistics.median(times["blocks"]) < 0.9 * statistics.median(times["plain"])


def fast_cells(cells: list) -> list:
    """``cells`` prepared for stepping (:meth:`rnnkit.Cell.for_steps`) and bound to copies of their weights in
    :func:`fast_layout` (no gradients reach the parameters)."""
    prepared = [cell.for_steps() for cell in cells]
    return [
        cell.bound({name: fast_layout(w.detach()) for name, w in cell._parameters.items() if w is not None})
        for cell in prepared
    ]


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
        self.cells = fast_cells(layer.bound_cells())
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
            if x.shape[0] == 1:  # one step (generation): the cell's step, without its loop's lists
                y, final = cell.step(cell.project_inputs(x[0]), s)
                y = y.unsqueeze(0)
            else:
                y, final, _ = cell.sequence(cell.project_inputs(x), s)
            x = y + x if self.residual and k > 0 else y
            finals.append(final)
        if len(finals) == 1:  # what S.stack gives, as views: one operation fewer a field and step
            return x, self.layer._state_out(S.map_state(_unsqueeze, final))
        return x, self.layer._state_out(S.stack(finals))


def _unsqueeze(t: Tensor) -> Tensor:
    return t.unsqueeze(0)


class Stepper:
    """``model(x, state)`` in eval mode for a model made of an optional ``embedding``, recurrent ``layers``
    and an output ``head`` (a Linear), with the weights re-laid-out for small batches (module docstring).

    Call it as the model: ``logits, state = stepper(x, state)``, x (T, B) ids with an embedding or
    (T, B, features) without. Gradients are not tracked (weights are copies).
    """

    def __init__(self, layers: nn.ModuleList, head: nn.Linear, embedding: nn.Embedding | None = None) -> None:
        self.embedding = None if embedding is None else embedding.weight.detach()
        self.layers = [_LayerSteps(layer) for layer in layers]
        self.head_weight = fast_layout(head.weight.detach())
        self.head_bias = None if head.bias is None else head.bias.detach()
        self.device = head.weight.device
        # one step in one native call (rnnkit.tasks.native_step), where its kernels are built
        self.native = NativeModelStep.build(self.layers, self.head_weight, self.head_bias, self.embedding, SMALL_BATCH)

    def __call__(self, x: Tensor, state: Any = None) -> tuple[Tensor, tuple]:
        if self.native is not None and x.shape[0] == 1:  # (outside no_grad: a context costs after a step)
            return self.native(x, state)
        return self._forward(x, state)

    @torch.no_grad()
    def _forward(self, x: Tensor, state: Any) -> tuple[Tensor, tuple]:
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
