r"""CTC decoding kept apart from any model: greedy (best path) and prefix beam search with shallow LM fusion.

Conventions: ``log_probs`` are a log_softmax's output, (T, C) for one utterance or (B, T, C) with ``lengths``
(B,) for a batch; index ``blank`` (0 by default) is CTC's blank and every other index is a label (a character:
the caller maps labels to text). A frame path :math:`\pi` collapses to its labelling :math:`\ell = \mathcal{B}(\pi)`
by merging repeats, then dropping blanks (:func:`ctc_collapse`), so a doubled letter needs a blank between its
two frames: "a a _ a" -> "aa", "a a a" -> "a".

**Greedy** (:func:`greedy_decode`): the most probable label of each frame, collapsed. That is the labelling of
the best *path*, not always the best *labelling*: :func:`greedy_alignment` also gives each emitted label's first
and last frame in that path (timestamps).

**Prefix beam search** (:func:`prefix_beam_search`; Hannun et al. 2014, Graves 2012 §7.5). For a prefix
:math:`\ell` after t frames, :math:`p_b(\ell)` and :math:`p_{nb}(\ell)` sum the probabilities of the paths of
frames 1..t that collapse to :math:`\ell` and end in a blank / in :math:`\ell`'s last label. With :math:`y_t(k)`
the probability of k at frame t, one frame does

.. math::
    p_b^t(\ell) = \big(p_b^{t-1}(\ell) + p_{nb}^{t-1}(\ell)\big)\, y_t(\text{blank}), \qquad
    p_{nb}^t(\ell) \mathrel{+}= p_{nb}^{t-1}(\ell)\, y_t(\text{last}(\ell)) \quad \text{(a repeat merges)},

.. math::
    p_{nb}^t(\ell c) \mathrel{+}= \big(p_b^{t-1}(\ell) + [c \ne \text{last}(\ell)]\, p_{nb}^{t-1}(\ell)\big)\,
    y_t(c)\; P_{lm}(c \mid \ell)^{\alpha}\; e^{\beta},

and keeps the ``beam_size`` prefixes of highest :math:`p_b + p_{nb}`. The bracket is the repeated-label rule:
appending c = last(:math:`\ell`) only continues the paths that end in a blank. Everything runs in log space,
so a prefix's score is :math:`\log P_{ctc}(\ell) + \alpha \log P_{lm}(\ell) + \beta |\ell|`, with
:math:`\alpha` = ``lm_weight`` and :math:`\beta` = ``insertion_bonus`` (exact, for the paths the beam kept; a
wide enough beam keeps them all). The language model is any object with the three methods of
:class:`FusionLM`.

>>> probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]])  # 2 frames; blank 0 and one label, 1
>>> greedy_decode(probs.log())  # the best path is "_ _"
[[]]
>>> [(labels, round(math.exp(score), 2)) for labels, score in prefix_beam_search(probs.log(), None, beam_size=2)]
[([1], 0.64), ([], 0.36)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from rnnkit.errors import RnnkitError

__all__ = [
    "FusionLM",
    "Span",
    "ctc_collapse",
    "forced_alignment",
    "greedy_alignment",
    "greedy_decode",
    "prefix_beam_search",
]

Prefix = tuple[int, ...]


@runtime_checkable
class FusionLM(Protocol):
    """What :func:`prefix_beam_search` needs of a language model for shallow fusion, labels in CTC's indexing.

    - ``initial_state()``: the state before the first label (the LM has read its begin-of-sentence, if any);
    - ``next_log_probs(state)``: a (C,) tensor, ``log P(label | prefix)`` for every index; the blank's entry is
      never read. Called at most once per prefix while it stays in the beam (the search caches it);
    - ``advance(state, label)``: the state after appending ``label``. It must not change ``state`` in place:
      several prefixes extend the same parent.

    States are opaque to the search (a character RNN's (h, c), an n-gram context, ...).
    """

    def initial_state(self) -> Any: ...

    def next_log_probs(self, state: Any) -> Tensor: ...

    def advance(self, state: Any, label: int) -> Any: ...


class Span(NamedTuple):
    """One emitted label of the best path and the frames it covers, ``start`` .. ``end`` inclusive."""

    label: int
    start: int
    end: int


def ctc_collapse(path: Sequence[int] | Tensor, blank: int = 0) -> list[int]:
    """A frame path's labelling: merge repeats, then drop blanks.

    >>> ctc_collapse([1, 1, 0, 1, 2, 2, 0, 0])
    [1, 1, 2]
    """
    ids = path.tolist() if isinstance(path, Tensor) else list(path)
    return [c for i, c in enumerate(ids) if c != blank and (i == 0 or ids[i - 1] != c)]


def greedy_decode(log_probs: Tensor, lengths: Tensor | None = None, *, blank: int = 0) -> list[list[int]]:
    """The best path's labelling of each sequence: argmax per frame, repeats merged, blanks dropped.

    ``log_probs`` (B, T, C) with ``lengths`` (B,) (None: all T frames), or (T, C), which is a batch of one.
    Frames past a sequence's length are never read.

    >>> lp = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]]).float().log_softmax(-1)
    >>> greedy_decode(lp), greedy_decode(lp[None].expand(2, 5, 3), torch.tensor([5, 3]))
    ([[1, 1]], [[1, 1], [1]])
    """
    best, lengths = _best_paths(log_probs, lengths, blank)
    previous = torch.cat([torch.full_like(best[:, :1], -1), best[:, :-1]], dim=1)
    valid = torch.arange(best.shape[1]) < lengths[:, None]
    keep = (best != blank) & (best != previous) & valid  # a label starts a new run: that run emits it
    return [row[mask].tolist() for row, mask in zip(best, keep, strict=True)]


def greedy_alignment(log_probs: Tensor, lengths: Tensor | None = None, *, blank: int = 0) -> list[list[Span]]:
    """Each emitted label of the best path with its first and last frame (:class:`Span`), per sequence.

    Same inputs as :func:`greedy_decode`, whose labels these are. Frames are indices; with a frame shift of s
    seconds a label spans ``start * s`` to ``(end + 1) * s``.

    >>> lp = torch.tensor([[0, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]]).float().log_softmax(-1)
    >>> [tuple(span) for span in greedy_alignment(lp)[0]]
    [(1, 0, 1), (2, 3, 3)]
    """
    best, lengths = _best_paths(log_probs, lengths, blank)
    aligned = []
    for row, n in zip(best, lengths.tolist(), strict=True):
        labels, counts = torch.unique_consecutive(row[:n], return_counts=True)
        ends = counts.cumsum(0) - 1
        starts = ends - counts + 1
        runs = zip(labels.tolist(), starts.tolist(), ends.tolist(), strict=True)
        aligned.append([Span(label, start, end) for label, start, end in runs if label != blank])
    return aligned


def forced_alignment(log_probs: Tensor, labels: Sequence[int], *, blank: int = 0) -> list[Span]:
    r"""The most probable path of one utterance's ``log_probs`` (T, C) among those that collapse to ``labels``
    (a CTC Viterbi alignment), as each label's first and last frame: the timestamps of a transcript that the
    prefix beam search chose, which need not be the best path's (:func:`greedy_alignment`).

    The path runs over the labels with blanks around and between them, :math:`(\_, l_1, \_, l_2, \dots, \_)`:
    each frame stays in its state, moves to the next, or skips a blank between two different labels.

    >>> lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()   # the best path "_ _" says nothing
    >>> forced_alignment(lp, [1])                           # "1" is best said at the first frame (a tie: the first)
    [Span(label=1, start=0, end=0)]
    """
    if log_probs.dim() != 2 or log_probs.shape[-1] == 0:
        raise RnnkitError(f"forced alignment expects one utterance's log_probs (T, C), got {tuple(log_probs.shape)}")
    T, C = log_probs.shape
    _check_blank(blank, C)
    labels = list(labels)
    if any(not 0 <= c < C or c == blank for c in labels):
        raise RnnkitError(f"forced alignment: labels must be indices below {C} other than the blank {blank}")
    if not labels:
        return []
    ext = torch.tensor([blank if s % 2 == 0 else labels[s // 2] for s in range(2 * len(labels) + 1)])
    S, lp = len(ext), log_probs.detach().double().cpu()[:, ext]  # (T, S): each state's score at each frame
    skip = torch.zeros(S, dtype=torch.bool)  # a label may follow the label two states back: no blank needed
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    score = torch.full((S,), -math.inf, dtype=torch.float64)
    score[:2] = lp[0, :2]
    moves = torch.zeros(T, S, dtype=torch.long)  # how many states each frame's best predecessor is behind
    for t in range(1, T):
        options = torch.stack([score, _shift(score, 1), torch.where(skip, _shift(score, 2), -math.inf)])
        best, moves[t] = options.max(0)
        score = best + lp[t]
    end = S - 1 if S == 1 or score[S - 1] >= score[S - 2] else S - 2
    if score[end] == -math.inf:
        raise RnnkitError(f"forced alignment: {len(labels)} labels cannot be said in {T} frames")
    states = [end]
    for t in range(T - 1, 0, -1):
        states.append(states[-1] - int(moves[t, states[-1]]))
    states.reverse()
    spans: dict[int, list[int]] = {}
    for t, state in enumerate(states):
        if state % 2:
            spans.setdefault(state // 2, [t, t])[1] = t
    return [Span(labels[k], first, last) for k, (first, last) in sorted(spans.items())]


def _shift(x: Tensor, k: int) -> Tensor:
    """x moved k places to the right, -inf coming in: each state's score k states back."""
    return torch.cat([x.new_full((k,), -math.inf), x[:-k]])


def _best_paths(log_probs: Tensor, lengths: Tensor | None, blank: int) -> tuple[Tensor, Tensor]:
    """Checked inputs -> the best path (B, T) and the lengths (B,), both int64 on the CPU."""
    if log_probs.dim() == 2:
        log_probs = log_probs[None]
    if log_probs.dim() != 3 or log_probs.shape[-1] == 0:
        raise RnnkitError(f"CTC decoding expects log_probs of shape (T, C) or (B, T, C), got {tuple(log_probs.shape)}")
    B, T, C = log_probs.shape
    _check_blank(blank, C)
    if lengths is None:
        lengths = torch.full((B,), T)
    lengths = torch.as_tensor(lengths).reshape(-1).cpu()
    bad = lengths.shape != (B,) or lengths.is_floating_point() or lengths.dtype == torch.bool
    if bad or (B and not (int(lengths.min()) >= 0 and int(lengths.max()) <= T)):
        raise RnnkitError(f"CTC decoding expects ({B},) integer lengths in 0..{T}, got {lengths.tolist()}")
    return log_probs.argmax(-1).cpu(), lengths.long()


def _check_blank(blank: int, num_classes: int) -> None:
    if not 0 <= blank < num_classes:
        raise RnnkitError(f"blank must be an index below the {num_classes} classes of log_probs, got {blank}")


class _Beam(NamedTuple):
    prefixes: list[Prefix]
    blank: Tensor  # (P,) log score of the prefix's paths that end in a blank (fusion terms included)
    label: Tensor  # (P,) ... that end in the prefix's last label


class _Options(NamedTuple):
    beam_size: int
    blank: int
    insertion_bonus: float


def prefix_beam_search(
    log_probs: Tensor,
    length: int | Tensor | None = None,
    *,
    beam_size: int,
    blank: int = 0,
    lm: FusionLM | None = None,
    lm_weight: float = 0.0,
    insertion_bonus: float = 0.0,
    prune: int | None = None,
) -> list[tuple[list[int], float]]:
    """CTC prefix beam search over one utterance's ``log_probs`` (T, C), its first ``length`` frames (None: all).

    Returns the final beam, at most ``beam_size`` prefixes, best first, each with its score
    ``log P_ctc(prefix) + lm_weight * log P_lm(prefix) + insertion_bonus * len(prefix)`` (module docstring).
    ``lm`` (a :class:`FusionLM`) is only called when ``lm_weight`` is not 0. ``prune``: extend each prefix with
    only the ``prune`` most probable labels of each frame (the blank and a prefix's own repeated last label
    are always scored). Runs in float64 on the CPU; for a batch, the caller loops over its utterances.
    """
    frames = _utterance_frames(log_probs, length, blank)
    _check_search(beam_size, prune)
    C = frames.shape[1]
    candidates = _candidate_labels(frames, blank, prune)
    fusion = _Fusion(lm, lm_weight, C) if lm is not None and lm_weight != 0 else None
    opts = _Options(beam_size, blank, float(insertion_bonus))
    beam = _Beam([()], torch.zeros(1, dtype=torch.float64), torch.full((1,), -math.inf, dtype=torch.float64))
    for frame, labels in zip(frames, candidates, strict=True):
        beam = _search_step(beam, frame, labels, fusion, opts)
    totals = torch.logaddexp(beam.blank, beam.label)
    order = torch.sort(totals, descending=True, stable=True).indices.tolist()
    return [(list(beam.prefixes[i]), float(totals[i])) for i in order]


def _utterance_frames(log_probs: Tensor, length: int | Tensor | None, blank: int) -> Tensor:
    """Checked (T, C) log-probs -> the first ``length`` frames as float64 on the CPU (exact sums of many terms)."""
    if log_probs.dim() != 2 or log_probs.shape[1] == 0:
        raise RnnkitError(f"prefix_beam_search expects one utterance's log_probs (T, C), got {tuple(log_probs.shape)}")
    T, C = log_probs.shape
    _check_blank(blank, C)
    n = T if length is None else int(length)
    if not 0 <= n <= T:
        raise RnnkitError(f"prefix_beam_search expects a length in 0..{T} (log_probs' frames), got {n}")
    return log_probs[:n].detach().to("cpu", torch.float64)


def _check_search(beam_size: int, prune: int | None) -> None:
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise RnnkitError(f"beam_size must be an int of at least 1, got {beam_size!r}")
    if prune is not None and (isinstance(prune, bool) or not isinstance(prune, int) or prune < 1):
        raise RnnkitError(f"prune must be None or an int of at least 1, got {prune!r}")


def _candidate_labels(frames: Tensor, blank: int, prune: int | None) -> Tensor:
    """(T, K) the labels each frame may append: all non-blank ones, or the ``prune`` most probable of them."""
    T, C = frames.shape
    if prune is None or prune >= C - 1:
        labels = torch.tensor([c for c in range(C) if c != blank], dtype=torch.long)
        return labels.expand(T, C - 1)
    scores = frames.clone()
    scores[:, blank] = -math.inf
    return scores.topk(prune, dim=1).indices


def _search_step(beam: _Beam, frame: Tensor, labels: Tensor, fusion: _Fusion | None, opts: _Options) -> _Beam:
    """One frame of the prefix beam search (module docstring): every stay and every extension, merged, pruned."""
    last = torch.tensor([p[-1] if p else -1 for p in beam.prefixes], dtype=torch.long)
    total = torch.logaddexp(beam.blank, beam.label)
    stay_blank = total + frame[opts.blank]
    # the paths ending in the last label take one more frame of it: the same prefix (a repeat merges)
    stay_label = torch.where(last >= 0, beam.label + frame[last.clamp(min=0)], -math.inf)
    # appending c = last(prefix) needs a blank in between, so it continues only the paths ending in a blank
    base = torch.where(labels[None, :] == last[:, None], beam.blank[:, None], total[:, None])
    extend = base + frame[labels][None, :] + opts.insertion_bonus
    if fusion is not None:
        extend = extend + fusion.weighted_rows(beam.prefixes)[:, labels]
    _merge_extensions_into_beam(beam.prefixes, labels, stay_label, extend)
    return _best_of(beam.prefixes, labels, stay_blank, stay_label, extend, opts.beam_size)


def _best_of(
    prefixes: list[Prefix], labels: Tensor, stay_blank: Tensor, stay_label: Tensor, extend: Tensor, beam_size: int
) -> _Beam:
    """The ``beam_size`` best of the P prefixes that stay and the (P, K) new ones; never a prefix of score -inf
    (probability 0), unless every prefix has it: the beam is never empty."""
    P, K = extend.shape
    scores = torch.cat([torch.logaddexp(stay_blank, stay_label), extend.flatten()])
    blanks = torch.cat([stay_blank, torch.full((P * K,), -math.inf, dtype=scores.dtype)])
    endings = torch.cat([stay_label, extend.flatten()])
    # stable: on ties a prefix already in the beam wins, then the earlier one, so the search is deterministic
    chosen = torch.sort(scores, descending=True, stable=True).indices[:beam_size]
    chosen = chosen[(scores[chosen] > -math.inf) | (torch.arange(len(chosen)) == 0)]
    appended = labels.tolist()
    new = [prefixes[i] if i < P else prefixes[(i - P) // K] + (appended[(i - P) % K],) for i in chosen.tolist()]
    return _Beam(new, blanks[chosen], endings[chosen])


def _merge_extensions_into_beam(prefixes: list[Prefix], labels: Tensor, stay_label: Tensor, extend: Tensor) -> None:
    """Add to ``stay_label`` the extensions that reach a prefix already in the beam ("a" + "b" = the beam's "ab")
    and take them out of ``extend``, so that every remaining extension is a new prefix. In place."""
    row = {prefix: i for i, prefix in enumerate(prefixes)}
    column = {label: j for j, label in enumerate(labels.tolist())}
    for i, prefix in enumerate(prefixes):
        parent = row.get(prefix[:-1]) if prefix else None
        j = column.get(prefix[-1]) if prefix else None
        if parent is not None and j is not None:
            stay_label[i] = torch.logaddexp(stay_label[i], extend[parent, j])
            extend[parent, j] = -math.inf


class _Fusion:
    """The LM's states and weighted next-label rows per prefix, cached while the prefix stays in the beam."""

    def __init__(self, lm: FusionLM, weight: float, num_classes: int) -> None:
        self.lm, self.weight, self.num_classes = lm, float(weight), num_classes
        self.states: dict[Prefix, Any] = {(): lm.initial_state()}
        self.rows: dict[Prefix, Tensor] = {}

    def weighted_rows(self, prefixes: list[Prefix]) -> Tensor:
        """(P, C) ``weight * log P_lm(label | prefix)``; forgets the prefixes that left the beam."""
        for prefix in prefixes:
            if prefix not in self.states:  # a new prefix: its parent was in the previous beam
                self.states[prefix] = self.lm.advance(self.states[prefix[:-1]], prefix[-1])
            if prefix not in self.rows:
                self.rows[prefix] = self.weight * self._log_probs(self.states[prefix])
        kept = set(prefixes)
        self.states = {p: s for p, s in self.states.items() if p in kept}
        self.rows = {p: r for p, r in self.rows.items() if p in kept}
        return torch.stack([self.rows[p] for p in prefixes])

    def _log_probs(self, state: Any) -> Tensor:
        row = torch.as_tensor(self.lm.next_log_probs(state)).detach()
        if row.shape != (self.num_classes,):
            raise RnnkitError(
                f"the LM's next_log_probs must give ({self.num_classes},) log-probs (one per CTC class), "
                f"got {tuple(row.shape)}"
            )
        return row.to("cpu", torch.float64)
