r"""Pooling: one vector per sequence from a recurrent layer's outputs, padding excluded (many-to-one).

Shapes: B sequences, T steps (the longest), H features per step. Every function takes batch-first outputs
``h`` (B, T, H) and ``lengths`` (B,) (each at least 1, on any device) and returns (B, H); what sits at a
padded step (t >= lengths[b]) never changes the result, so a sequence pools the same alone or padded in a
batch. With the valid steps :math:`\mathcal{V}_b = \{0, \dots, n_b - 1\}`, :math:`n_b` = ``lengths[b]``:

.. math::
    \text{last}(h)_b = h_{b, n_b - 1}, \qquad
    \text{mean}(h)_b = \frac{1}{n_b} \sum_{t \in \mathcal{V}_b} h_{b,t}, \qquad
    \text{max}(h)_b = \max_{t \in \mathcal{V}_b} h_{b,t} \ \text{(per feature)},

and attention (:class:`AttentionPooling`, additive, Bahdanau et al. 2015; Yang et al. 2016):

.. math::
    s_{b,t} = v^\top \tanh(W h_{b,t} + c), \qquad
    \alpha_{b,t} = \frac{\exp s_{b,t}}{\sum_{u \in \mathcal{V}_b} \exp s_{b,u}} \ (0 \text{ at padding}), \qquad
    \text{att}(h)_b = \sum_{t} \alpha_{b,t} h_{b,t}.

A bidirectional layer's outputs are ``[forward; backward]`` along H. Its forward half has read the whole
sequence at step :math:`n_b - 1` and its backward half at step 0, so ``last_pool(..., bidirectional=True)``
concatenates the forward half at :math:`n_b - 1` with the backward half at 0: both directions' final states.
(The backward half at :math:`n_b - 1` has read one token only.)

These are plain functions and modules, for any model:

>>> h = torch.randn(2, 5, 8)                       # (B, T, H) outputs of any recurrent layer
>>> lengths = torch.tensor([5, 3])
>>> pooled, weights = Pooling("attention", 8)(h, lengths)
>>> pooled.shape, weights.shape, weights[1, 3:].tolist()
(torch.Size([2, 8]), torch.Size([2, 5]), [0.0, 0.0])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "POOLINGS",
    "AttentionPooling",
    "LabelAttention",
    "Pooling",
    "last_pool",
    "max_pool",
    "mean_pool",
    "valid_mask",
]

#: the pooling names :class:`Pooling` (and ``rnnkit classify train --pooling``) takes
POOLINGS = ("last", "mean", "max", "attention")


def valid_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B, T) bool, True at the valid steps t < lengths[b].

    >>> valid_mask(torch.tensor([3, 1]), 4).int().tolist()
    [[1, 1, 1, 0], [1, 0, 0, 0]]
    """
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def last_pool(h: Tensor, lengths: Tensor, *, bidirectional: bool = False) -> Tensor:
    """Each sequence's own last valid step (B, T, H) -> (B, H); bidirectional: see the module docstring.

    >>> h = torch.arange(12.0).view(2, 3, 2)       # (B=2, T=3, H=2)
    >>> last_pool(h, torch.tensor([3, 2])).tolist()
    [[4.0, 5.0], [8.0, 9.0]]
    >>> last_pool(h, torch.tensor([3, 2]), bidirectional=True).tolist()   # forward at n-1, backward at 0
    [[4.0, 1.0], [8.0, 7.0]]
    """
    lengths = _check(h, lengths)
    last = h[torch.arange(h.shape[0], device=h.device), lengths - 1]  # (B, H)
    if not bidirectional:
        return last
    if h.shape[-1] % 2:
        raise ValueError(f"last_pool: a bidirectional layer's outputs have an even size, got {h.shape[-1]}")
    half = h.shape[-1] // 2
    return torch.cat([last[:, :half], h[:, 0, half:]], dim=-1)


def mean_pool(h: Tensor, lengths: Tensor) -> Tensor:
    """The mean over each sequence's valid steps (B, T, H) -> (B, H).

    >>> h = torch.tensor([[[1.0], [3.0], [100.0]]])  # the third step is padding
    >>> mean_pool(h, torch.tensor([2])).tolist()
    [[2.0]]
    """
    lengths = _check(h, lengths)
    mask = valid_mask(lengths, h.shape[1]).unsqueeze(-1)  # (B, T, 1)
    return h.masked_fill(~mask, 0.0).sum(1) / lengths.unsqueeze(1).to(h.dtype)


def max_pool(h: Tensor, lengths: Tensor) -> Tensor:
    """The feature-wise maximum over each sequence's valid steps (B, T, H) -> (B, H).

    >>> h = torch.tensor([[[1.0, -5.0], [3.0, -4.0], [100.0, 100.0]]])  # the third step is padding
    >>> max_pool(h, torch.tensor([2])).tolist()
    [[3.0, -4.0]]
    """
    lengths = _check(h, lengths)
    mask = valid_mask(lengths, h.shape[1]).unsqueeze(-1)
    return h.masked_fill(~mask, float("-inf")).amax(1)


class AttentionPooling(nn.Module):
    r"""Additive attention over the valid steps: :math:`s_t = v^\top \tanh(W h_t + c)`, softmax, weighted sum.

    Args:
        size: H, the features of each step.
        attention_size: rows of W (the default: H).

    Parameters: ``proj`` (W (A, H) and c (A,)) and ``score`` (v (1, A), no bias: a constant shift of every
    score would not change the softmax).

    Call: ``pooled, weights = pool(h, lengths)``: pooled (B, H), weights (B, T) summing to 1 over each
    sequence's valid steps and exactly 0 at its padding.

    >>> pool = AttentionPooling(4)
    >>> with torch.no_grad():
    ...     pooled, weights = pool(torch.randn(2, 3, 4), torch.tensor([3, 1]))
    >>> weights[1].tolist(), round(float(weights[0].sum()), 6)
    ([1.0, 0.0, 0.0], 1.0)
    """

    def __init__(self, size: int, attention_size: int | None = None) -> None:
        super().__init__()
        self.proj = nn.Linear(size, attention_size or size)  # W h_t + c
        self.score = nn.Linear(attention_size or size, 1, bias=False)  # v^T

    def forward(self, h: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        lengths = _check(h, lengths)
        mask = valid_mask(lengths, h.shape[1])  # (B, T)
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, T)
        weights = torch.softmax(scores, dim=1)  # exp(-inf) = 0: padding gets no weight
        h = h.masked_fill(~mask.unsqueeze(-1), 0.0)  # and 0 * (NaN or inf at padding) is no NaN
        return torch.bmm(weights.unsqueeze(1), h).squeeze(1), weights  # (B, H), (B, T)


class LabelAttention(nn.Module):
    r"""One attention per label, each scoring its own label from what it attends to, for many labels (CAML,
    Mullenbach et al. 2018; LAAT, Vu et al. 2020): a label's query finds the words that speak for it.

    .. math::
        z_t = \tanh(W h_t + c), \qquad
        a_{l,t} = \operatorname{softmax}_{t \in \mathcal{V}_b}(u_l^\top z_t), \qquad
        v_l = \sum_t a_{l,t} h_t, \qquad
        \text{logit}_l = w_l^\top \operatorname{dropout}(v_l) + b_l

    Args:
        size: H, the features of each step.
        num_labels: L.
        attention_size: rows of W (the default: H).
        dropout: on each label's attended vector, in training.

    Parameters: ``proj`` (W (A, H), c), ``queries`` (U (L, A), rows u_l), ``weight`` (L, H) (rows w_l) and ``bias``
    (L).

    Call: ``logits, weights = module(h, lengths)``: logits (B, L); weights (B, L, T), each label's attention,
    summing to 1 over each sequence's valid steps and 0 at its padding.

    >>> module = LabelAttention(4, num_labels=3)
    >>> with torch.no_grad():
    ...     logits, weights = module(torch.randn(2, 5, 4), torch.tensor([5, 2]))
    >>> logits.shape, weights.shape, weights[1, :, 2:].abs().sum().item()
    (torch.Size([2, 3]), torch.Size([2, 3, 5]), 0.0)
    """

    def __init__(self, size: int, num_labels: int, attention_size: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.Linear(size, attention_size or size)  # W h_t + c
        self.queries = nn.Linear(attention_size or size, num_labels, bias=False)  # u_l^T z_t for every l
        bound = size**-0.5  # nn.Linear's initialisation, one row per label
        self.weight = nn.Parameter(torch.empty(num_labels, size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_labels).uniform_(-bound, bound))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        mask = valid_mask(torch.as_tensor(lengths).to(h.device), h.shape[1])  # (B, T)
        scores = self.queries(torch.tanh(self.proj(h))).transpose(1, 2)  # (B, L, T)
        weights = torch.softmax(scores.masked_fill(~mask.unsqueeze(1), float("-inf")), dim=-1)
        attended = torch.bmm(weights, h.masked_fill(~mask.unsqueeze(-1), 0.0))  # (B, L, H)
        return (self.drop(attended) * self.weight).sum(-1) + self.bias, weights


class Pooling(nn.Module):
    """Any of :data:`POOLINGS` as one module: ``pooled, weights = pooling(h, lengths)``.

    ``weights`` is the attention (B, T) for ``"attention"`` and None for the others.

    Args:
        kind: ``"last"``, ``"mean"``, ``"max"`` or ``"attention"``.
        size: H (used by attention).
        bidirectional: ``"last"`` takes both directions' final states (see the module docstring).
        attention_size: the attention's hidden size (default H).

    >>> pooled, weights = Pooling("max", 3)(torch.randn(2, 4, 3), torch.tensor([4, 2]))
    >>> pooled.shape, weights
    (torch.Size([2, 3]), None)
    """

    def __init__(self, kind: str, size: int, *, bidirectional: bool = False, attention_size: int | None = None) -> None:
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"unknown pooling {kind!r}: choose one of {', '.join(POOLINGS)}")
        self.kind, self.bidirectional = kind, bidirectional
        self.attention = AttentionPooling(size, attention_size) if kind == "attention" else None

    def forward(self, h: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.attention is not None:
            return self.attention(h, lengths)
        if self.kind == "last":
            return last_pool(h, lengths, bidirectional=self.bidirectional), None
        return (mean_pool if self.kind == "mean" else max_pool)(h, lengths), None

    def extra_repr(self) -> str:
        return f"{self.kind!r}" + (", bidirectional=True" if self.bidirectional else "")


def _check(h: Tensor, lengths: Tensor) -> Tensor:
    """``lengths`` on h's device as int64, after checking shapes and that every length is in [1, T]."""
    if h.dim() != 3:
        raise ValueError(f"pooling expects batch-first outputs (B, T, H), got shape {tuple(h.shape)}")
    lengths = torch.as_tensor(lengths).to(device=h.device, dtype=torch.long)
    if lengths.shape != (h.shape[0],):
        raise ValueError(f"pooling expects lengths of shape ({h.shape[0]},), got {tuple(lengths.shape)}")
    if len(lengths) and (int(lengths.min()) < 1 or int(lengths.max()) > h.shape[1]):
        raise ValueError(f"every length must lie in [1, {h.shape[1]}], got {lengths.tolist()}")
    return lengths
