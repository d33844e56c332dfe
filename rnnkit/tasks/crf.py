"""Linear-chain conditional random field (Lafferty et al. 2001): forward algorithm (loss) and Viterbi (decode).

Shapes: B sequences, T steps, K tags. Emissions are batch-first (B, T, K). Variable lengths come as a
(B, T) bool ``mask`` whose rows are a prefix of Trues, or as ``lengths`` (B,); nothing needs sorting,
padded positions are ignored whatever they hold (even NaN), and every length must be at least 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["CRF", "FORBIDDEN", "Decoded", "bio_constraints"]

#: score of a forbidden transition in the loss: finite, so gradients stay finite; exp(-1e4) is 0 in float32
FORBIDDEN = -1e4
_BLOCK_FLOATS = 2**20  # the (K, C, K) max-plus sums of one decode block


class Decoded(NamedTuple):
    tags: Tensor  # (B, T) int64, the best tag sequence, ``pad`` after each sequence's length
    scores: Tensor  # (B,) its score(x, y)


class CRF(nn.Module):
    r"""Linear-chain CRF over K tags, to put on top of any emission scores (B, T, K).

    .. math::
        \text{score}(x, y) = \text{start}_{y_1} + \sum_{t=1}^{T} e_t(y_t)
            + \sum_{t=2}^{T} A_{y_{t-1} y_t} + \text{end}_{y_T} \\
        \log p(y \mid x) = \text{score}(x, y) - \log Z(x), \qquad
        \log Z(x) = \log \sum_{y'} \exp \text{score}(x, y')

    with e = emissions and A = ``transitions`` (``A[i, j]``: tag i followed by tag j). log Z comes from
    the forward algorithm and the best y from Viterbi, each one loop over time, batched and masked.

    Args:
        num_tags: K.
        constraints: the allowed transitions, everything else forbidden: None (all allowed), a list of
            allowed ``(from, to)`` pairs, or a bool (K+2, K+2) matrix ``allowed[from, to]``; index K
            stands for start and K+1 for end (see :func:`bio_constraints`). A forbidden transition
            scores ``FORBIDDEN`` (-1e4, finite) in the loss and -inf in :meth:`decode`, which therefore
            never outputs one. Kept in the ``allowed`` buffer, so checkpoints carry it.

    Parameters ``transitions`` (K, K), ``start`` (K) and ``end`` (K) start at zero: an untrained CRF
    decodes the argmax of each step's emissions.

    >>> names = ["O", "B-PER", "I-PER"]
    >>> crf = CRF(3, constraints=bio_constraints(names))
    >>> emissions = torch.tensor([[[0.0, 1.0, 3.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]])  # (B=1, T=3, K=3)
    >>> crf.decode(emissions)  # start -> I-PER is forbidden, so B-PER B-PER I-PER
    Decoded(tags=tensor([[1, 1, 2]]), scores=tensor([5.]))
    >>> loss = crf(emissions, torch.tensor([[1, 1, 2]]))  # summed negative log-likelihood
    >>> loss.backward()
    """

    def __init__(self, num_tags: int, *, constraints: Any = None, device: Any = None, dtype: Any = None) -> None:
        if not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"CRF expected num_tags as a positive int, got {num_tags!r}")
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags, device=device, dtype=dtype))
        self.start = nn.Parameter(torch.zeros(num_tags, device=device, dtype=dtype))
        self.end = nn.Parameter(torch.zeros(num_tags, device=device, dtype=dtype))
        self.register_buffer("allowed", _allowed_matrix(constraints, num_tags).to(device))

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, *, lengths: Any = None) -> Tensor:
        """The training loss: -sum_b log p(y_b | x_b), summed over the batch (divide by B for a mean)."""
        return -self.log_likelihood(emissions, tags, mask, lengths=lengths).sum()

    nll = forward

    def log_likelihood(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, *, lengths: Any = None
    ) -> Tensor:
        """log p(y | x) = score(x, y) - log Z(x) of each sequence, (B,); ``tags`` (B, T), any value in padding."""
        mask = self._check(emissions, tags, mask, lengths)
        return self._score(emissions, tags, mask) - self._log_partition(emissions, mask)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, *, lengths: Any = None) -> Tensor:
        """score(x, y) of each sequence, (B,): differentiable, e.g. of the tags :meth:`decode` returns."""
        return self._score(emissions, tags, self._check(emissions, tags, mask, lengths))

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None, *, lengths: Any = None) -> Tensor:
        """log Z(x) of each sequence, (B,), by the forward algorithm."""
        return self._log_partition(emissions, self._check(emissions, None, mask, lengths))

    def marginals(self, emissions: Tensor, mask: Tensor | None = None, *, lengths: Any = None) -> Tensor:
        r"""p(y_t = k | x) of every position and tag, (B, T, K); 0 in padding. Each real row sums to 1.

        The gradient of log Z with respect to the emissions is exactly these marginals,
        :math:`\partial \log Z / \partial e_t(k) = p(y_t = k \mid x)`, so one backward pass through the forward
        algorithm is the forward-backward algorithm. Not differentiable itself (a confidence, not a loss).
        """
        mask = self._check(emissions, None, mask, lengths)
        with torch.enable_grad():
            e = emissions.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self._log_partition(e, mask).sum(), e)
        # rounding in float32 gives a near-certain tag up to 1 + 5e-5 (and its rivals -1e-9): a probability is in [0, 1]
        return grad.clamp(0.0, 1.0).masked_fill(~mask[:, :, None], 0.0)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None, *, lengths: Any = None, pad: int = -1) -> Decoded:
        r"""Viterbi: the best tags argmax_y score(x, y), (B, T) with ``pad`` after each length, and their scores (B,).

        .. math::
            \delta_1 = \text{start} + e_1, \qquad
            \delta_t(j) = \max_i \left[ \delta_{t-1}(i) + A_{ij} \right] + e_t(j), \qquad
            \text{score}^* = \max_j \left[ \delta_T(j) + \text{end}_j \right]

        The loop over time takes only maxima; the backpointer argmax_i [delta_{t-1}(i) + A_ij] is needed
        only at the chosen tag j = y_t, so backtracking computes it there, one (B, K) step per t. Ties go
        to the lowest tag index. Not differentiable: :meth:`score` of the returned tags is.
        """
        mask = self._check(emissions, None, mask, lengths)
        A, start, end = self._potentials(float("-inf"))  # exact: a forbidden transition can never win
        lengths = mask.sum(1)  # (B,)
        delta = _viterbi_deltas(emissions, lengths, A, start)  # (B, T, K)
        scores, last = (delta[torch.arange(len(delta)), lengths - 1] + end).max(1)  # (B,): at each one's own T
        return Decoded(_backtrack(delta, last, lengths, A).masked_fill(~mask, pad), scores)

    def _log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        r"""Forward algorithm in log space: alpha_t(j) = logsumexp_i [alpha_{t-1}(i) + A_ij] + e_t(j).

        Each step is one (B, K) @ (K, K) matmul of shifted exponentials (see :func:`_forward_step`), not a
        logsumexp over a (B, K, K) tensor: same values, an order of magnitude faster.
        """
        A, start, end = self._potentials(FORBIDDEN)
        dtype = torch.promote_types(emissions.dtype, A.dtype)
        A = A.to(dtype)
        mA = A.detach().amax(0)  # (K,) per column; log Z does not depend on the shift, so no gradient through it
        expA = torch.exp(A - mA)  # (K, K) in [0, 1]: a forbidden transition gives exactly 0, as it should
        alpha = start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            step = _forward_step(alpha, A, expA, mA, mask[:, t]) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t, None], step, alpha)  # padding carries alpha_T along
        return torch.logsumexp(alpha + end, dim=1)  # (B,)

    def _score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        A, start, end = self._potentials(FORBIDDEN)
        y = tags.masked_fill(~mask, 0)  # (B, T): padding points at tag 0, then is masked out
        last = y.gather(1, mask.sum(1, keepdim=True) - 1).squeeze(1)  # (B,) y_T
        e = emissions.gather(2, y.unsqueeze(2)).squeeze(2)  # (B, T) e_t(y_t)
        a = A[y[:, :-1], y[:, 1:]]  # (B, T-1) A[y_{t-1}, y_t]
        return start[y[:, 0]] + torch.where(mask, e, 0).sum(1) + torch.where(mask[:, 1:], a, 0).sum(1) + end[last]

    def _potentials(self, forbidden: float) -> tuple[Tensor, Tensor, Tensor]:
        """(transitions, start, end) with the forbidden transitions scoring ``forbidden``."""
        K, ok = self.num_tags, self.allowed
        A = self.transitions.masked_fill(~ok[:K, :K], forbidden)  # (K, K)
        return A, self.start.masked_fill(~ok[K, :K], forbidden), self.end.masked_fill(~ok[:K, K + 1], forbidden)

    def _check(self, emissions: Tensor, tags: Tensor | None, mask: Any, lengths: Any) -> Tensor:
        """Check the inputs at the boundary, once; return the (B, T) bool mask of real positions."""
        K = self.num_tags
        if not isinstance(emissions, Tensor) or emissions.dim() != 3 or emissions.shape[2] != K:
            got = tuple(emissions.shape) if isinstance(emissions, Tensor) else type(emissions).__name__
            raise ValueError(f"CRF expected emissions of shape (B, T, num_tags={K}), got {got}")
        B, T, _ = emissions.shape
        mask = _prefix_mask(mask, lengths, B, T, emissions.device)
        if tags is None:
            return mask
        if not isinstance(tags, Tensor) or tags.shape != (B, T) or tags.dtype.is_floating_point:
            got = f"{tuple(tags.shape)} {tags.dtype}" if isinstance(tags, Tensor) else type(tags).__name__
            raise ValueError(f"CRF expected integer tags of shape (B, T) = {(B, T)} like emissions, got {got}")
        bad = mask & ((tags < 0) | (tags >= K))
        if bool(bad.any()):
            b, t = bad.nonzero()[0].tolist()
            raise ValueError(f"CRF expected tags in 0..{K - 1} at real positions, got {int(tags[b, t])} at [{b}, {t}]")
        return mask

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, constrained={not bool(self.allowed.all())}"


def _forward_step(alpha: Tensor, A: Tensor, expA: Tensor, mA: Tensor, real: Tensor) -> Tensor:
    """logsumexp_i [alpha(i) + A_ij], (B, K), as m + mA_j + log sum_i exp(alpha(i) - m) exp(A_ij - mA_j).

    m = max_i alpha(i) per row and mA = ``A.amax(0)``, so every exponential is in [0, 1] and the largest
    term of each row is exp(0) = 1: nothing overflows. What can underflow is the sum of tag j when all its
    allowed predecessors are far below the row's best (about 87 nats in float32): log 0 = -inf, whose
    gradient is NaN. The clamp at ``finfo.tiny`` keeps the log finite (and its gradient 0 there), but the
    clamped value is not harmless by itself: alpha(j) would become m + mA_j - 87 instead of its true, lower
    value, and a large emission e_t(j) (here or later) can make that fake score dominate Z. So the rows of
    the few sums below tiny / eps, where underflow may have cost precision, are recomputed exactly by
    :func:`_forward_step_reference`; typical steps have none and cost just the matmul.
    """
    m = alpha.detach().amax(1, keepdim=True)  # (B, 1); the result does not depend on the shift
    sums = torch.exp(alpha - m) @ expA  # (B, K)
    info = torch.finfo(sums.dtype)
    out = torch.log(sums.clamp_min(info.tiny)) + m + mA  # (B, K)
    inexact = (sums < info.tiny / info.eps) & real.unsqueeze(1)  # (B, K): padded rows are discarded anyway
    if bool(inexact.any()):
        rows = inexact.any(1).nonzero().squeeze(1)  # (R,)
        exact = _forward_step_reference(alpha[rows], A)  # (R, K)
        out = out.index_put((rows,), torch.where(inexact[rows], exact, out[rows]))
    return out


def _forward_step_reference(alpha: Tensor, A: Tensor) -> Tensor:
    """logsumexp_i [alpha(i) + A_ij], (B, K), directly over the broadcast (B, K, K) sums: exact, but slow."""
    return torch.logsumexp(alpha.unsqueeze(2) + A, dim=1)


def _viterbi_deltas(emissions: Tensor, lengths: Tensor, A: Tensor, start: Tensor) -> Tensor:
    """delta_t(j) of every sequence up to its length, (B, T, K) (beyond it, anything), in blocks of sentences.

    On CPU a block holds C sentences whose (K, C, K) sums stay in cache (4 MB in float32), several times faster
    than all B at once, whose sums stream through memory; an accelerator takes all B at once. Blocks are cut
    from the sentences sorted by length, so that each stops at its own longest.
    """
    B, T, K = emissions.shape
    C = max(1, _BLOCK_FLOATS // A.numel() if emissions.device.type == "cpu" else B)
    delta = emissions.new_zeros(B, T, K, dtype=torch.promote_types(emissions.dtype, A.dtype))
    blocks = lengths.argsort(descending=True).split(C) if B else ()  # (C,) indices each
    for block in blocks:
        L = int(lengths[block[0]])
        delta[block, :L] = _viterbi_block(emissions[block, :L], A, start)
    return delta


def _viterbi_block(emissions: Tensor, A: Tensor, start: Tensor) -> Tensor:
    """delta_t for a block of sequences (C, T, K) of length T: start + e_1, then max_i [delta_{t-1}(i) + A_ij] + e_t."""
    C, T, K = emissions.shape
    sums = emissions.new_empty(K, C, K, dtype=torch.promote_types(emissions.dtype, A.dtype))  # reused every step
    deltas = [start + emissions[:, 0]]  # (C, K) each
    for t in range(1, T):
        # delta_{t-1}(i) + A_ij laid out (i, C, j): a max over the outer dim, which torch vectorises (amax(1) is not)
        torch.add(deltas[-1].t().unsqueeze(2), A.unsqueeze(1), out=sums)  # (K, C, K)
        deltas.append(sums.amax(0) + emissions[:, t])  # (C, K)
    return torch.stack(deltas, dim=1)  # (C, T, K)


def _backtrack(delta: Tensor, last: Tensor, lengths: Tensor, A: Tensor) -> Tensor:
    """Follow the backpointers y_{t-1} = argmax_i [delta_{t-1}(i) + A[i, y_t]] from y_T = ``last``, all rows at once."""
    y, path = last, [last]  # (B,)
    for t in range(delta.shape[1] - 1, 0, -1):
        prev = (delta[:, t - 1] + A.t()[y]).argmax(1)  # (B,): the same sums the forward max compared
        y = torch.where(t < lengths, prev, y)  # past a sequence's end, y stays its y_T
        path.append(y)
    return torch.stack(path[::-1], dim=1)  # (B, T)


def _prefix_mask(mask: Any, lengths: Any, B: int, T: int, device: torch.device) -> Tensor:
    """The (B, T) bool mask from ``mask`` or ``lengths`` (or all True), checked to be prefixes of length >= 1."""
    if mask is not None and lengths is not None:
        raise ValueError("CRF takes mask or lengths, not both")
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=device)
        if lengths.shape != (B,) or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise ValueError(f"CRF expected integer lengths of shape (B,) = ({B},), got {tuple(lengths.shape)}")
        if bool((lengths > T).any()):
            raise ValueError(f"CRF expected lengths <= T = {T} (emissions' steps), got {int(lengths.max())}")
        mask = torch.arange(T, device=device) < lengths.unsqueeze(1)  # (B, T)
    elif mask is None:
        mask = torch.ones(B, T, dtype=torch.bool, device=device)
    elif not isinstance(mask, Tensor) or mask.shape != (B, T) or mask.dtype.is_floating_point:
        got = f"{tuple(mask.shape)} {mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"CRF expected a bool mask of shape (B, T) = {(B, T)} like emissions, got {got}")
    mask = mask.to(device=device, dtype=torch.bool)
    gaps = mask[:, 1:] & ~mask[:, :-1]  # (B, T-1): a real step after padding
    if bool(gaps.any()):
        b = int(gaps.any(1).nonzero()[0])
        raise ValueError(f"CRF expected each mask row to be Trues then Falses, row {b} is {mask[b].int().tolist()}")
    if T == 0 or not bool(mask[:, 0].all()):
        b = 0 if T == 0 else int((~mask[:, 0]).nonzero()[0])
        raise ValueError(
            f"CRF needs at least one step per sequence: sequence {b} of emissions (B, T) = {(B, T)} is empty"
        )
    return mask


def _allowed_matrix(constraints: Any, K: int) -> Tensor:
    """(K+2, K+2) bool ``allowed[from, to]`` from None, allowed pairs or such a matrix; K is start, K+1 end."""
    if constraints is None:
        return torch.ones(K + 2, K + 2, dtype=torch.bool)
    if isinstance(constraints, Tensor):
        if constraints.shape != (K + 2, K + 2) or constraints.dtype != torch.bool:
            got = f"{tuple(constraints.shape)} {constraints.dtype}"
            raise ValueError(
                f"CRF expected constraints as a bool matrix of shape (K+2, K+2) = {(K + 2,) * 2}, got {got}"
            )
        return constraints.detach().clone().cpu()
    allowed = torch.zeros(K + 2, K + 2, dtype=torch.bool)
    for pair in constraints:
        i, j = pair
        if not (0 <= i <= K and (0 <= j < K or j == K + 1)):
            raise ValueError(
                f"CRF constraint {pair!r}: from must be in 0..{K} ({K} = start), to in 0..{K - 1} or {K + 1} (end)"
            )
        allowed[i, j] = True
    return allowed


#: scheme -> (its prefixes, the prefixes that continue a chunk, the prefixes after which a chunk must continue)
_SCHEMES = {"BIO": ("BI", "I", ""), "IOBES": ("BIES", "IE", "BI"), "BILOU": ("BILU", "IL", "BI")}
_SCHEMES.update(IOB2=_SCHEMES["BIO"], BIOES=_SCHEMES["IOBES"])


def bio_constraints(tag_names: Sequence[str], scheme: str = "BIO") -> Tensor:
    """The allowed transitions of a chunk tag set, a bool (K+2, K+2) matrix for ``CRF(constraints=...)``.

    Tags are "O" or "<prefix>-<type>" ("B-PER"). A chunk continues (I-X; I-X or E-X in IOBES) only right
    after B-X or I-X of the same type; in IOBES (and BILOU) B-X and I-X must be continued. Start and end
    act as O: nothing continues start, and end cannot follow an open chunk. Row K is start, column K+1 end.

    >>> allowed = bio_constraints(["O", "B-PER", "I-PER"])
    >>> allowed[0, 2].item(), allowed[1, 2].item(), allowed[3, 2].item()  # O, B-PER, start -> I-PER
    (False, True, False)
    """
    if scheme not in _SCHEMES:
        raise ValueError(f"bio_constraints: unknown scheme {scheme!r}, expected one of {sorted(_SCHEMES)}")
    prefixes, continuing, must_continue = _SCHEMES[scheme]
    tags = [_split_tag(name, prefixes, scheme) for name in tag_names]
    outside = ("O", "")
    froms, tos = [*tags, outside], [*tags, None, outside]  # row K = start, column K = start (never a target)
    allowed = [[to is not None and _may_follow(p, x, *to, continuing, must_continue) for to in tos] for (p, x) in froms]
    return torch.tensor([*allowed, [False] * len(tos)], dtype=torch.bool)  # row K+1 = end (nothing follows)


def _may_follow(p: str, x: str, q: str, y: str, continuing: str, must_continue: str) -> bool:
    if q in continuing:  # I-Y (or E-Y) continues a chunk, so it needs an open one of the same type
        return p in "BI" and x == y
    return p not in must_continue  # O, B-Y, S-Y or end: the previous chunk must be closed


def _split_tag(name: str, prefixes: str, scheme: str) -> tuple[str, str]:
    if name == "O":
        return "O", ""
    prefix, sep, kind = name.partition("-")
    if not (sep and kind and len(prefix) == 1 and prefix in prefixes):
        raise ValueError(
            f"bio_constraints: tag {name!r} is neither 'O' nor <prefix>-<type> with a prefix in {prefixes} ({scheme})"
        )
    return prefix, kind
