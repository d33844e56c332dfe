r"""Attention of a decoder over an encoder's outputs: Bahdanau's additive score, Luong's dot and general scores.

A decoder state :math:`h_t` (the query) scores every source position's encoder output :math:`\bar h_s` (the
memory), the scores are softmaxed over the source's real positions, and the context is the weighted sum:

.. math::
    \text{score}(h_t, \bar h_s) =
    \begin{cases}
    h_t^\top \bar h_s & \text{dot (Luong et al. 2015)} \\
    h_t^\top W_a \bar h_s & \text{general (Luong et al. 2015)} \\
    v_a^\top \tanh(W_a h_t + U_a \bar h_s) & \text{additive (Bahdanau et al. 2015)}
    \end{cases}
    \qquad a_t = \text{softmax}_s(\text{score}), \quad c_t = \textstyle\sum_s a_{ts} \bar h_s .

Every module takes ``query`` (B, Tq, Hq) or (B, Hq) (one step), ``memory`` (B, S, Hm) and ``mask`` (B, S), true
at real source positions, and returns ``(context, weights)``: (B, Tq, Hm) and (B, Tq, S), or (B, Hm) and (B, S)
for a one-step query. Padding gets weight exactly 0. The memory's share of the score (:math:`W_a \bar h_s` for
general, :math:`2 U_a \bar h_s` for additive) depends on the source alone: :meth:`Attention.keys` computes it once
per sentence and a decoder passes it back at every step (``keys=``), which is what makes step-by-step decoding
cheap.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.errors import RnnkitError

#: the score functions ``make_attention`` knows, and "none" (no attention)
ATTENTIONS = ("none", "additive", "dot", "general")


class Attention(nn.Module):
    """The shared part: the softmax over real positions, the context, and the one-step/many-step shapes."""

    def keys(self, memory: Tensor) -> Tensor:
        """The memory's share of the score, (B, S, K); computed once per source, passed to ``forward``."""
        return memory

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """(B, Tq, Hq), (B, S, K) -> (B, Tq, S)."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, memory: Tensor, mask: Tensor, keys: Tensor | None = None, source: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        keys = self.keys(memory) if keys is None else keys
        if source is not None:
            return self._shared(query, memory, mask, keys, source)
        one_step = query.dim() == 2
        q = query.unsqueeze(1) if one_step else query  # (B, Tq, Hq)
        scores = self.scores(q, keys)  # (B, Tq, S)
        weights = torch.softmax(scores.masked_fill(~mask.unsqueeze(1), float("-inf")), dim=-1)
        context = torch.bmm(weights, memory)  # (B, Tq, Hm)
        return (context.squeeze(1), weights.squeeze(1)) if one_step else (context, weights)

    def _shared(
        self, query: Tensor, memory: Tensor, mask: Tensor, keys: Tensor, source: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One step of N queries (N, Hq) over B memories that several queries share: query r reads memory
        ``source[r]`` (``source`` (N,) non-decreasing, as a beam search orders its hypotheses). Each memory is
        read once, by all its queries as one (W, Hq) x (Hq, S) product, instead of being copied to every
        hypothesis after every step: a beam-5 search of the Multi30k translator spent 5% of its time on those
        copies (one thread). When every memory has W queries (a full beam) the queries are already that grid."""
        count = torch.bincount(source, minlength=memory.shape[0])  # (B,)
        width, rows = int(count.max()), source.numel()
        if rows == memory.shape[0] * width:  # rows (b, 0), (b, 1), ... in order: a view
            grid = query.view(memory.shape[0], width, query.shape[1])
            index: tuple[Tensor, ...] | None = None
        else:  # ragged: rows into their (memory, slot) places of a zero grid, and back
            slot = torch.arange(rows, device=source.device) - (count.cumsum(0) - count)[source]
            index = (source, slot)
            grid = query.new_zeros(memory.shape[0], width, query.shape[1]).index_put_(index, query)
        scores = self.scores(grid, keys)  # (B, W, S)
        weights = torch.softmax(scores.masked_fill(~mask.unsqueeze(1), float("-inf")), dim=-1)
        context = torch.bmm(weights, memory)  # (B, W, Hm)
        if index is None:
            return context.view(rows, -1), weights.view(rows, -1)
        return context[index], weights[index]


class DotAttention(Attention):
    r"""Luong's dot score :math:`h_t^\top \bar h_s`, divided by :math:`\sqrt{d}` unless ``scaled=False``; query
    and memory must have the same size.

    Why the scale (Vaswani et al. 2017): unscaled products of 256-wide states reach tens, the softmax saturates
    before it has learned to align, and gradients stop: a general-attention translator on Multi30k then put all
    its weight on the source's last word at every step (benchmarks/translate_multi30k.py, measured).

    >>> att = DotAttention(scaled=False)
    >>> memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    >>> context, weights = att(torch.tensor([[2.0, 0.0]]), memory, torch.tensor([[True, True, False]]))
    >>> [round(w, 4) for w in weights[0].tolist()]  # softmax(2, 0) over the two real positions
    [0.8808, 0.1192, 0.0]
    """

    def __init__(self, *, scaled: bool = True) -> None:
        super().__init__()
        self.scaled = scaled

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        scores = torch.bmm(query, keys.transpose(1, 2))
        return scores / math.sqrt(query.shape[-1]) if self.scaled else scores


class GeneralAttention(DotAttention):
    r"""Luong's general score :math:`h_t^\top W_a \bar h_s`; ``W_a`` (query_size, memory_size), no bias; divided by
    :math:`\sqrt{d}` unless ``scaled=False`` (see :class:`DotAttention`).

    >>> att = GeneralAttention(3, 4)
    >>> context, weights = att(torch.randn(2, 5, 3), torch.randn(2, 6, 4), torch.ones(2, 6, dtype=torch.bool))
    >>> context.shape, weights.shape
    (torch.Size([2, 5, 4]), torch.Size([2, 5, 6]))
    """

    def __init__(self, query_size: int, memory_size: int, *, scaled: bool = True) -> None:
        super().__init__(scaled=scaled)
        self.linear = nn.Linear(memory_size, query_size, bias=False)  # W_a, applied to the memory once

    def keys(self, memory: Tensor) -> Tensor:
        return self.linear(memory)  # (B, S, Hq)


class AdditiveAttention(Attention):
    r"""Bahdanau's additive score :math:`v_a^\top \tanh(W_a h_t + U_a \bar h_s)`, of hidden size ``size``.

    ``query_proj`` is W_a (with the bias), ``memory_proj`` U_a, ``v`` is v_a.

    >>> att = AdditiveAttention(3, 4, 8)
    >>> mask = torch.tensor([[True, True, False]])
    >>> context, weights = att(torch.randn(1, 3), torch.randn(1, 3, 4), mask)
    >>> weights[0, 2].item(), round(weights.sum().item(), 6)
    (0.0, 1.0)
    """

    def __init__(self, query_size: int, memory_size: int, size: int | None = None) -> None:
        super().__init__()
        size = size or query_size
        self.query_proj = nn.Linear(query_size, size)
        self.memory_proj = nn.Linear(memory_size, size, bias=False)
        self.v = nn.Linear(size, 1, bias=False)
        nn.init.uniform_(self.v.weight, -1 / math.sqrt(size), 1 / math.sqrt(size))

    def keys(self, memory: Tensor) -> Tensor:
        return 2 * self.memory_proj(memory)  # (B, S, A): 2 U_a h_s, doubled for the sigmoid form (scores)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        # tanh(z) = 2 sigmoid(2z) - 1, so v.tanh(z) = 2 v.sigmoid(2z) - sum(v): the same score, but torch's float
        # tanh took 2.2 ns an element on this machine's AVX-512 CPU and sigmoid 0.23 (one thread, 2.7M elements:
        # 5.9 ms and 0.6), and this (B, Tq, S, A) sum is the attention's largest tensor, in training and decoding.
        # (B, Tq, 1, A) + (B, 1, S, A) -> (B, Tq, S, A) -> (B, Tq, S); in place: the sum is a fresh tensor
        e = torch.sigmoid_((2 * self.query_proj(query)).unsqueeze(2) + keys.unsqueeze(1))
        return 2 * self.v(e).squeeze(-1) - self.v.weight.sum()


def make_attention(
    kind: str, query_size: int, memory_size: int, size: int | None = None, *, scaled: bool = True
) -> Attention | None:
    """The attention called ``kind`` (one of :data:`ATTENTIONS`; None for "none"); ``scaled``: dot and general
    scores divided by the square root of the query's size.

    >>> type(make_attention("general", 4, 8)).__name__
    'GeneralAttention'
    >>> make_attention("dot", 4, 8)
    Traceback (most recent call last):
    ...
    rnnkit.errors.RnnkitError: dot attention needs equal query and memory sizes, got 4 and 8: use general or additive
    """
    if kind == "none":
        return None
    if kind == "dot":
        if query_size != memory_size:
            raise RnnkitError(
                f"dot attention needs equal query and memory sizes, got {query_size} and {memory_size}: "
                "use general or additive"
            )
        return DotAttention(scaled=scaled)
    if kind == "general":
        return GeneralAttention(query_size, memory_size, scaled=scaled)
    if kind == "additive":
        return AdditiveAttention(query_size, memory_size, size)
    raise RnnkitError(f"unknown attention {kind!r}: choose one of {', '.join(ATTENTIONS)}")
