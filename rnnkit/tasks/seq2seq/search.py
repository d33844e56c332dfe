"""Greedy and batched beam search over a step function, kept apart from any model (OpenNMT's ``translate/`` split).

**The step function.** ``step(tokens, state) -> (log_probs, state)``: ``tokens`` (N,) long holds the last token of
each of the N live hypotheses (``bos`` at the first step) and ``log_probs`` (N, V) the log-probabilities of the next
token. ``state`` is any nesting of tuples, NamedTuples, lists, tensors and None whose tensors all have the N
hypotheses on dimension 0; an encoder memory (N, S, H) and its mask (N, S) ride along in it. The search tiles,
reorders and drops rows with ``reorder(state, index)`` (by default ``index_select(0, index)`` on every tensor), so
the step function never knows which hypotheses it holds. The batch size B is the first dimension of the first
tensor in the initial state.

**Stopping.** A sentence emits at most ``max_len`` tokens besides eos, which is free: once a hypothesis has
``max_len`` tokens the search takes one more step, in which it may still end with eos; if it does not (greedy: eos
is not the best token; beam: no eos among the K best candidates), it is cut and returned with ``finished=False``.
Beam search also stops a sentence as soon as it holds ``beam_size`` finished hypotheses (eos candidates count only
when they rank among the K best of the step, so a wide beam is exhaustive and ``beam_size=1`` is greedy). Stopped
sentences leave the batch and empty beam slots hold no row (at the first step each sentence has one hypothesis),
so every step runs only live hypotheses. ``shrink=True`` is GroundHog's and Nematus' search: a sentence keeps
``beam_size`` minus its finished hypotheses live, so its beam narrows as translations end.

**Early stop** (``early_stop=True``, off by default): a sentence also stops once it has ``n_best`` finished
hypotheses and its best live beam, scored as if it ended now, is worse than the ``n_best``-th of them. With
``length_penalty=0`` this is exact (a longer hypothesis only loses log-probability); with a positive penalty it
is the usual heuristic (Hugging Face's ``early_stopping=False``), which can miss a long hypothesis whose later
tokens are all likely. It saves the steps a sentence spends filling its beam with endings it will not return.

**Length penalty.** ``score = log_prob / length ** length_penalty`` where ``length`` counts the output tokens plus
the eos when the hypothesis ended with one (at least 1, so an empty cut output scores 0). 0 ranks by the summed
log-probability, 1 by the mean per token. Live beams compete by summed log-probability; the score ranks the
hypotheses a sentence returns.

``constraint(history, sentence)`` may forbid tokens: ``history`` (N, t) are the tokens each live hypothesis has
emitted (bos excluded), ``sentence`` (N,) the index of its sentence, and it returns a bool (N, V) mask, True where
allowed (a parser forces balanced brackets this way).

>>> import torch
>>> probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.15, 0.35], [0.4, 0.1, 0.5], [0.2, 0.5, 0.3]])
>>> table = probs.log()  # table[previous token] -> log-probs of the next; token 0 is eos, 3 is bos
>>> def step(tokens, state):
...     return table[tokens], state
>>> state = torch.zeros(2, 1)  # no memory at all: the state only says there are 2 sentences
>>> [(h.tokens, h.finished) for h in greedy_search(step, state, bos=3, eos=0, max_len=torch.tensor([5, 0]))]
[([1], True), ([], False)]
>>> best = beam_search(step, state, bos=3, eos=0, max_len=5, beam_size=3, n_best=2)[0]
>>> [(h.tokens, round(h.score, 3), h.finished) for h in best]
[([1], -0.693, True), ([1, 2], -0.886, True)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from rnnkit.errors import RnnkitError
from rnnkit.state import tree_leaves, tree_map

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]  # (tokens (N,), state) -> (log_probs (N, V), state)
Constraint = Callable[[Tensor, Tensor], Tensor]  # (history (N, t), sentence (N,)) -> allowed (N, V) bool
Reorder = Callable[[Any, Tensor], Any]  # (state, index (N',)) -> the state's rows ``index``

NEG_INF = float("-inf")


class Hypothesis(NamedTuple):
    """One output of a search."""

    tokens: list[int]  # the output, without bos and without eos
    score: float  # log_prob / length ** length_penalty (length counts the eos of a finished hypothesis)
    log_prob: float  # the summed log-probability of the tokens (and of the eos when it ended with one)
    finished: bool  # True when it ended with eos, False when cut at max_len


@dataclass(frozen=True)
class _Options:
    bos: int
    eos: int
    length_penalty: float
    constraint: Constraint | None
    reorder: Reorder
    n_best: int = 1
    early_stop: bool = False
    shrink: bool = False


@dataclass
class _Live:
    """The hypotheses still being extended; row r of ``history`` and of ``state`` belong together."""

    sentence: Tensor  # (n,) the sentence of each greedy row / of each group of K beams
    scores: Tensor  # (n,) or (n, K) summed log-probabilities; -inf marks an empty beam slot
    history: Tensor  # (rows, t) the tokens emitted so far, bos excluded
    state: Any


@torch.no_grad()
def greedy_search(
    step: StepFn,
    state: Any,
    *,
    bos: int,
    eos: int,
    max_len: Tensor | int,
    length_penalty: float = 1.0,
    constraint: Constraint | None = None,
    reorder: Reorder | None = None,
) -> list[Hypothesis]:
    """The most likely token at every step, for a batch of B sentences at once; one hypothesis per sentence.

    ``max_len`` is an int or a (B,) integer tensor: the most tokens per sentence, eos not counted.
    ``length_penalty`` only sets :attr:`Hypothesis.score` (as in :func:`beam_search`, for comparing the two).
    """
    batch, device = _batch_of(state)
    limits = _max_lengths(max_len, batch, device)
    opts = _Options(bos, eos, length_penalty, constraint, reorder or _select_rows)
    if batch == 0:
        return []
    out: list[list[Hypothesis]] = [[] for _ in range(batch)]
    sentence = torch.arange(batch, device=device)
    live: _Live | None = _Live(sentence, torch.zeros(batch, device=device), _empty_history(batch, device), state)
    while live is not None:
        live = _greedy_step(step, live, limits, out, opts)
    return [hyps[0] for hyps in out]


def _greedy_step(
    step: StepFn, live: _Live, limits: Tensor, out: list[list[Hypothesis]], opts: _Options
) -> _Live | None:
    t = live.history.shape[1]
    log_probs, state = step(_last_tokens(live.history, opts.bos), live.state)
    every = torch.ones_like(live.sentence, dtype=torch.bool)
    log_probs = _allowed_log_probs(log_probs, live.history, live.sentence, every, opts)
    # the argmax of the running sum, as beam search ranks it, so both compare the very same floats
    scores, tokens = (live.scores.unsqueeze(1) + log_probs).max(1)
    _check_stuck(scores == NEG_INF, live.sentence, t, log_probs.shape[1])
    ended = tokens == opts.eos
    cut = ~ended & (limits[live.sentence] == t)
    _record(out, live.sentence[ended], live.history[ended], scores[ended], True, opts.length_penalty)
    _record(out, live.sentence[cut], live.history[cut], live.scores[cut], False, opts.length_penalty)
    rows = (~(ended | cut)).nonzero().squeeze(1)
    if rows.numel() == 0:
        return None
    if rows.numel() == tokens.numel():  # every row goes on: nothing to select
        return _Live(live.sentence, scores, torch.cat([live.history, tokens.unsqueeze(1)], 1), state)
    history = torch.cat([live.history[rows], tokens[rows].unsqueeze(1)], 1)
    return _Live(live.sentence[rows], scores[rows], history, opts.reorder(state, rows))


@torch.no_grad()
def beam_search(
    step: StepFn,
    state: Any,
    *,
    bos: int,
    eos: int,
    beam_size: int,
    max_len: Tensor | int,
    length_penalty: float = 1.0,
    n_best: int = 1,
    constraint: Constraint | None = None,
    reorder: Reorder | None = None,
    early_stop: bool = False,
    shrink: bool = False,
) -> list[list[Hypothesis]]:
    """Beam search over a batch of B sentences at once: per sentence, its ``n_best`` hypotheses, best score first.

    Each sentence has ``beam_size`` slots; a slot holds a live hypothesis or is empty (score -inf), and every step
    runs one ``step`` call over the live hypotheses of all sentences only, in sentence then slot order (at the
    first step one per sentence). ``shrink`` (GroundHog's and Nematus' beam search) narrows a sentence's beam by
    one for each hypothesis that has finished, so it keeps ``beam_size - finished`` live ones instead of
    ``beam_size``: less work, and at ``n_best=1`` usually the same output. A sentence may return fewer than
    ``n_best`` hypotheses when the vocabulary, the constraint or ``max_len`` leave fewer distinct outputs.
    """
    _check_beam(beam_size, n_best)
    batch, device = _batch_of(state)
    limits = _max_lengths(max_len, batch, device)
    opts = _Options(bos, eos, length_penalty, constraint, reorder or _select_rows, n_best, early_stop, shrink)
    out: list[list[Hypothesis]] = [[] for _ in range(batch)]
    sentence = torch.arange(batch, device=device)
    # only slot 0 of each sentence is live at first, so the K beams do not all pick the same tokens
    scores = torch.full((batch, beam_size), NEG_INF, device=device)
    scores[:, 0] = 0.0
    live: _Live | None = _Live(sentence, scores, _empty_history(batch, device), state)
    finished = torch.zeros(batch, dtype=torch.long, device=device)
    bar = torch.full((batch,), NEG_INF, device=device)  # early_stop: each sentence's n_best-th finished score
    while live is not None and live.sentence.numel():
        live = _beam_step(step, live, limits, finished, bar, out, opts)
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[:n_best] for hyps in out]


def _beam_step(
    step: StepFn,
    live: _Live,
    limits: Tensor,
    finished: Tensor,
    bar: Tensor,
    out: list[list[Hypothesis]],
    opts: _Options,
) -> _Live | None:
    (n, k), t = live.scores.shape, live.history.shape[1]
    occupied = live.scores > NEG_INF  # (n, K) the slots that hold a row of history and state, in row order
    row_of = occupied.view(-1).cumsum(0) - 1  # slot -> its row (meaningless for empty slots)
    log_probs, state = step(_last_tokens(live.history, opts.bos), live.state)
    # each row's sentence: only a constraint reads it (a step's small ops add up: skip what is not needed)
    sentence = live.sentence.unsqueeze(1).expand(n, k)[occupied] if opts.constraint is not None else live.sentence
    every = torch.ones_like(sentence, dtype=torch.bool)
    log_probs = _allowed_log_probs(log_probs, live.history, sentence, every, opts)
    vocab = log_probs.shape[1]
    width = k - finished[live.sentence] if opts.shrink else torch.full_like(live.sentence, k)
    ranked = _candidates(live.scores, row_of.clamp(min=0), log_probs, opts.eos, width)
    top, slot, ends, cont, cont_slot, cont_token = ranked
    _check_stuck(top[:, 0] == NEG_INF, live.sentence, t, vocab)
    first_slot = (torch.arange(n, device=top.device) * k).unsqueeze(1)
    parents = row_of[first_slot + slot]  # (n, 2K) the history row each candidate extends
    groups = live.sentence.unsqueeze(1)
    some_end = bool(ends.any())
    if some_end:
        _record(out, groups.expand_as(ends)[ends], live.history[parents[ends]], top[ends], True, opts.length_penalty)
        finished.index_add_(0, live.sentence, ends.sum(1))
    full = finished[live.sentence] >= k
    at_limit = limits[live.sentence] == t
    # a sentence at its max_len that has not filled its beam with eos endings keeps its live beams, cut
    old = (at_limit & ~full).unsqueeze(1) & occupied
    if bool(old.any()):
        cut_history = live.history[row_of.view(n, k)[old]]
        _record(out, groups.expand_as(old)[old], cut_history, live.scores[old], False, opts.length_penalty)
    if opts.shrink:  # one live hypothesis fewer for each finished one
        cont = cont.masked_fill(
            torch.arange(k, device=cont.device) >= (k - finished[live.sentence]).unsqueeze(1), NEG_INF
        )
    keep = ~(full | at_limit | (cont == NEG_INF).all(1))
    if opts.early_stop and some_end:
        for s in groups.expand_as(ends)[ends].unique().tolist():
            if len(out[s]) >= opts.n_best:
                bar[s] = sorted((h.score for h in out[s]), reverse=True)[opts.n_best - 1]
    if opts.early_stop:  # no live beam, scored as if it ended now, beats the n_best-th finished: stop
        keep &= ~(bar[live.sentence] > cont.max(1).values / float(t + 1) ** opts.length_penalty)
    if not bool(keep.all()):
        cont, cont_slot, cont_token, first_slot = cont[keep], cont_slot[keep], cont_token[keep], first_slot[keep]
    alive = cont > NEG_INF  # (n', K) the next step's occupied slots
    if bool(alive.all()):  # full beams (the usual case): every slot, in order
        rows, tokens = row_of[(first_slot + cont_slot).view(-1)], cont_token.reshape(-1)
    else:
        rows, tokens = row_of[(first_slot + cont_slot)[alive]], cont_token[alive]
    if rows.numel() == 0:
        return None
    history = torch.cat([live.history[rows], tokens.unsqueeze(1)], 1)
    return _Live(live.sentence[keep], cont, history, opts.reorder(state, rows))


#: the columns a chunk of :func:`_candidates` bounds by its largest log-probability
CHUNK = 64


def _candidates(
    scores: Tensor, row_of: Tensor, log_probs: Tensor, eos: int, width: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The 2K best extensions of each sentence's K beams, those that end it, and the K best that do not.

    ``scores`` (n, K) the beams' sums (-inf at empty slots), ``row_of`` (n * K,) each slot's row in ``log_probs``
    (rows, V) (any row for an empty slot). Returns ``top`` (n, 2K) scores best first and each candidate's beam
    ``slot``, ``ends`` (n, 2K) true at the eos candidates among each sentence's ``width`` (n,) best (finite ones
    only), and the K best continuing candidates' scores, slots and tokens. Taking 2K leaves K continuing ones
    however many eos extensions rank high.

    Ranking all K x V sums would read each row K times over; instead each row's vocabulary is cut into chunks of
    :data:`CHUNK` tokens and a chunk's bound is its beam's score plus its largest log-probability (one vectorised
    max). The sentence's 2K chunks of highest bound hold its 2K best sums, exactly: their 2K maxima are sums at
    least as large as any outside them. Only those 2K x CHUNK sums (and each row's ragged tail) are ranked. On
    the Multi30k translator (V = 5921, beam 5, one thread, torch's profiler), the per-row top-2K this replaced
    took 10% of the search's operator time (beside another job), the chunk maxima and the two small rankings
    3.4% (quiet). Vocabularies too small for 2K chunks use chunks of one token, which ranks every sum.
    """
    n, k = scores.shape
    vocab = log_probs.shape[1]
    size = CHUNK if vocab // CHUNK >= 2 * k else 1
    whole = vocab // size
    blocks = log_probs[:, : whole * size].unflatten(1, (whole, size))  # (rows, whole, size), a view
    peak = blocks.amax(2) if size > 1 else blocks.squeeze(2)  # (rows, whole)
    bound = (scores.view(n * k, 1) + peak[row_of]).view(n, k * whole)
    chosen = bound.topk(min(2 * k, k * whole), dim=1).indices  # (n, m): slot * whole + chunk
    slot, row = chosen // whole, row_of.view(n, k).gather(1, chosen // whole)
    token = ((chosen % whole).unsqueeze(2) * size + torch.arange(size, device=scores.device)).flatten(1)
    slot, row = slot.repeat_interleave(size, 1), row.repeat_interleave(size, 1)  # (n, m * size)
    total = scores.gather(1, slot) + log_probs.view(-1)[row * vocab + token]
    if whole * size < vocab:  # the tail: every sum
        tail = torch.arange(whole * size, vocab, device=scores.device)
        sums = scores.unsqueeze(2) + log_probs[row_of, whole * size :].view(n, k, -1)  # (n, K, tail)
        total = torch.cat([total, sums.flatten(1)], 1)
        slot = torch.cat([slot, torch.arange(k, device=scores.device).repeat_interleave(tail.numel()).expand(n, -1)], 1)
        token = torch.cat([token, tail.repeat(k).expand(n, -1)], 1)
    top, index = total.topk(min(2 * k, k * vocab), dim=1)
    slot, token = slot.gather(1, index), token.gather(1, index)
    is_eos = token == eos
    rank = torch.arange(top.shape[1], device=top.device)
    ends = is_eos & (rank < width.unsqueeze(1)) & (top > NEG_INF)
    # eos candidates sort behind all others, each group keeping its order: the first K are the best continuations
    order = (rank + is_eos.long() * top.shape[1]).argsort(dim=1)[:, :k]
    cont = top.gather(1, order).masked_fill(is_eos.gather(1, order), NEG_INF)  # only when V = 1
    return top, slot, ends, cont, slot.gather(1, order), token.gather(1, order)


def _allowed_log_probs(log_probs: Tensor, history: Tensor, sentence: Tensor, live: Tensor, opts: _Options) -> Tensor:
    """Check the step's output, set what the constraint forbids to -inf, and insist every live row keeps a token."""
    rows, t = history.shape
    if log_probs.dim() != 2 or log_probs.shape[0] != rows:
        raise RnnkitError(f"the step function must return log-probs of shape ({rows}, V), got {tuple(log_probs.shape)}")
    vocab = log_probs.shape[1]
    if not 0 <= opts.eos < vocab:
        raise RnnkitError(f"eos must be a token id below the step function's vocabulary of {vocab}, got {opts.eos}")
    if opts.constraint is not None:
        allowed = opts.constraint(history, sentence)
        if allowed.shape != log_probs.shape or allowed.dtype != torch.bool:
            got = f"{allowed.dtype} {tuple(allowed.shape)}"
            raise RnnkitError(f"the constraint must return a bool mask of shape {tuple(log_probs.shape)}, got {got}")
        log_probs = log_probs.masked_fill(~allowed, NEG_INF)
    # empty beam slots (score -inf) carry stale histories, so only live rows must keep an allowed token; without a
    # constraint the searches check the best candidate instead (_check_stuck), which costs nothing
    if opts.constraint is not None:
        _check_stuck(live & ~(log_probs > NEG_INF).any(1), sentence, t, vocab)
    return log_probs


def _check_stuck(stuck: Tensor, sentence: Tensor, t: int, vocab: int) -> None:
    """One line when a live row (or sentence) has no finite candidate left."""
    if bool(stuck.any()):
        s = int(sentence[stuck.nonzero()[0, 0]])
        raise RnnkitError(
            f"no token is allowed for sentence {s} after {t} tokens: the constraint (or the step function's "
            f"log-probs, all -inf) rules out every one of the {vocab} tokens, eos included"
        )


def _record(
    out: list[list[Hypothesis]], sentence: Tensor, history: Tensor, log_prob: Tensor, finished: bool, penalty: float
) -> None:
    """Append finished or cut hypotheses to their sentences' lists (host bookkeeping, only when some end)."""
    for s, tokens, lp in zip(sentence.tolist(), history.tolist(), log_prob.tolist(), strict=True):
        length = max(len(tokens) + finished, 1)
        out[s].append(Hypothesis(tokens, lp / length**penalty, lp, finished))


def _batch_of(state: Any) -> tuple[int, torch.device]:
    leaves = tree_leaves(state)
    if not leaves:
        raise RnnkitError("the search state holds no tensors, so it has no batch size: put a (B, ...) tensor in it")
    if leaves[0].dim() == 0:
        raise RnnkitError("the search state's tensors need the batch on dim 0, but its first tensor is a scalar")
    return leaves[0].shape[0], leaves[0].device


def _max_lengths(max_len: Tensor | int, batch: int, device: torch.device) -> Tensor:
    """``max_len`` as a (B,) long tensor on the state's device."""
    if isinstance(max_len, Tensor):
        if tuple(max_len.shape) != (batch,):
            raise RnnkitError(
                f"max_len must be an int or a ({batch},) tensor, got a tensor of shape {tuple(max_len.shape)}"
            )
        if max_len.dtype.is_floating_point or max_len.dtype.is_complex or max_len.dtype == torch.bool:
            raise RnnkitError(f"max_len must hold integers, got {max_len.dtype}")
        lengths = max_len.to(device=device, dtype=torch.long)
    elif isinstance(max_len, int) and not isinstance(max_len, bool):
        lengths = torch.full((batch,), max_len, dtype=torch.long, device=device)
    else:
        raise RnnkitError(f"max_len must be an int or a ({batch},) tensor, got {type(max_len).__name__}")
    if batch and int(lengths.min()) < 0:
        raise RnnkitError(f"max_len must be at least 0, got {int(lengths.min())}")
    return lengths


def _check_beam(beam_size: int, n_best: int) -> None:
    if beam_size < 1:
        raise RnnkitError(f"beam_size must be at least 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise RnnkitError(f"n_best must lie between 1 and beam_size={beam_size}, got {n_best}")


def _select_rows(state: Any, index: Tensor) -> Any:
    """The default ``reorder``: rows ``index`` of every tensor in the state."""
    return tree_map(lambda t: t.index_select(0, index), state)


def _empty_history(rows: int, device: torch.device) -> Tensor:
    return torch.empty(rows, 0, dtype=torch.long, device=device)


def _last_tokens(history: Tensor, bos: int) -> Tensor:
    if history.shape[1]:
        return history[:, -1]
    return torch.full((history.shape[0],), bos, dtype=torch.long, device=history.device)


__all__ = ["Constraint", "Hypothesis", "Reorder", "StepFn", "beam_search", "greedy_search"]
