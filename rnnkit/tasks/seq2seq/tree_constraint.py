"""Constrained decoding of linearised trees: a search constraint that only lets well-formed trees out.

A :class:`TreeConstraint` is the ``constraint(history, sentence)`` hook of :mod:`rnnkit.tasks.seq2seq.search`
for targets in the Vinyals et al. linearisation (:mod:`rnnkit.data.trees`: ``(X`` opens phrase X, ``)X``
closes it, ``XX`` stands for one word). It allows, at each step, exactly the tokens after which the output can
still become one bracketed tree with as many ``XX`` as the sentence has words:

- the first token opens a bracket (the root); after the root closes only ``<eos>`` is allowed, and ``<eos>``
  only then, with all the sentence's ``XX`` written;
- ``XX`` only inside an open bracket and while fewer than n have been written;
- ``)X`` only for the innermost open bracket, when it holds an ``XX`` (every bracket of the treebank does),
  and the root only once all n ``XX`` are written;
- ``(X`` only while an ``XX`` is still to come (it will fill the new bracket), at most ``max_open_run`` in a
  row without an ``XX`` between them, within ``max_len`` when one is given, and only labels the vocabulary
  can also close;
- ``<pad>``, ``<unk>``, ``<bos>`` and any other token never.

So every allowed prefix can be finished, and every output has at most n (2 ``max_open_run`` + 1) tokens, the
bound :meth:`TreeConstraint.max_lengths` gives the search: decoding under it always ends with a tree that
:func:`~rnnkit.data.trees.rebuild` takes without repair. A sentence of no words may only end at once (empty
output).

Each call costs O(1) Python work per row beyond reading the rows: the parser state of each history is kept in
a dict keyed by the history, and a row's state is its parent prefix's state (from the previous call) advanced
by its last token, since the search reorders rows between calls. Rows the search keeps as empty beam slots may
hold any tokens; their masks are all False or meaningless, which the search ignores.

>>> import torch
>>> from rnnkit.data import Vocabulary
>>> vocab = Vocabulary([*Vocabulary.SPECIALS, "(S", ")S", "(NP", ")NP", "XX"])
>>> constraint = TreeConstraint(vocab, [1])
>>> history = torch.tensor([vocab.encode("(S (NP XX )NP".split())])
>>> vocab.decode(constraint(history, torch.tensor([0]))[0].nonzero().squeeze(1))
[')S']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.trees import CLOSE, LEAF, OPEN, token_kind
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError

MAX_OPEN_RUN = 8
"""Default of ``max_open_run``: brackets opened in a row before an XX (6 at most in the sample's train trees)."""

_OTHER, _OPEN, _CLOSE, _WORD = range(4)
_MISSING = object()


class _State(NamedTuple):
    """The parser state after a prefix: what is open, how many XX, how many brackets since the last XX."""

    stack: tuple | None  # the open brackets as a linked list (close id, rest), innermost first
    depth: int  # how many brackets are open
    words: int  # XX written so far
    run: int  # brackets opened since the last XX: the innermost `run` open brackets hold no XX yet
    started: bool  # the root has been opened


_START = _State(None, 0, 0, 0, False)


class TreeConstraint:
    """The search constraint of linearised trees for one batch of sentences (see the module docstring).

    Args:
        vocab: the target vocabulary: ``(X``, ``)X`` and ``XX`` tokens besides the specials (other tokens are
            never allowed; an ``(X`` without its ``)X`` neither).
        lengths: the number of words of each of the batch's B sentences (a list or a (B,) integer tensor).
        max_open_run: the most brackets opened one after another without an ``XX`` between them.
        max_len: the search's ``max_len`` (an int or B of them) to fit every tree into, or None for the bound of
            :meth:`max_lengths`; must leave room for the shortest tree, n + 2 tokens.

    Raises:
        RnnkitError: the vocabulary has no ``XX`` or no bracket it can both open and close, a length is
            negative, ``max_open_run`` < 1, or ``max_len`` is too short for a sentence.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        lengths: Sequence[int] | Tensor,
        *,
        max_open_run: int = MAX_OPEN_RUN,
        max_len: int | Sequence[int] | Tensor | None = None,
    ) -> None:
        if max_open_run < 1:
            raise RnnkitError(f"max_open_run must be at least 1, got {max_open_run}")
        self._lengths = _ints(lengths, "lengths")
        self._max_open_run = max_open_run
        self._limits = None if max_len is None else _limits(max_len, self._lengths)
        self._classify(vocab)
        # history length -> {history: state}; only the latest two lengths are kept, the memory stays O(N t)
        self._cache: dict[int, dict[tuple[int, ...], _State | None]] = {}

    def _classify(self, vocab: Vocabulary) -> None:
        """Token kinds and, for each ``(X``, the id of its ``)X``; the open-token row of the mask."""
        kinds = [token_kind(token) for token in vocab.tokens]
        closes = {label: i for i, (kind, label) in enumerate(kinds) if kind == CLOSE}
        self._kind = [_OTHER] * len(kinds)
        self._close_of = [-1] * len(kinds)
        for i, (kind, label) in enumerate(kinds):
            if kind == OPEN and label in closes:  # an open that can never close would strand the search
                self._kind[i], self._close_of[i] = _OPEN, closes[label]
            elif kind in (CLOSE, LEAF):
                self._kind[i] = _CLOSE if kind == CLOSE else _WORD
        self._kind[vocab.eos_id] = _OTHER
        if _WORD not in self._kind:
            raise RnnkitError("the target vocabulary has no XX token: build it from linearised trees (.linear)")
        self._open_row = np.array([k == _OPEN for k in self._kind])
        if not self._open_row.any():
            raise RnnkitError("the target vocabulary has no bracket it can both open and close: it needs (X and )X")
        self._word_id = self._kind.index(_WORD)
        self._eos_id = vocab.eos_id

    def max_lengths(self) -> Tensor:
        """(B,) long: the most tokens each sentence's tree can take, eos not counted; give it as ``max_len``.

        That is ``max_len`` when one was given, else n (2 ``max_open_run`` + 1) for n words.
        """
        if self._limits is not None:
            return torch.tensor(self._limits, dtype=torch.long)
        return torch.tensor([n * (2 * self._max_open_run + 1) for n in self._lengths], dtype=torch.long)

    def __call__(self, history: Tensor, sentence: Tensor) -> Tensor:
        """The (N, V) bool mask of the tokens allowed after each row of ``history`` (N, t) for ``sentence`` (N,)."""
        rows, t = history.shape
        index = sentence.tolist()
        if index and not 0 <= min(index) <= max(index) < len(self._lengths):
            raise RnnkitError(f"sentence index {max(index)} is out of range: this constraint has {len(self._lengths)}")
        opens, closes, close_ids, words, ends = self._allowed(self._states(history.tolist(), t), index, t)
        allowed = np.zeros((rows, len(self._kind)), dtype=bool)
        allowed[opens] = self._open_row  # a few fancy-indexed writes rather than four per row
        allowed[closes, close_ids] = True
        allowed[words, self._word_id] = True
        allowed[ends, self._eos_id] = True
        return torch.from_numpy(allowed).to(history.device)

    def _allowed(self, states: list[_State | None], index: list[int], t: int) -> tuple[list[int], ...]:
        """The rows that may open, those that may close (and their close ids), write XX, and end."""
        opens: list[int] = []
        closes: list[int] = []
        close_ids: list[int] = []
        words: list[int] = []
        ends: list[int] = []
        for r, (state, s) in enumerate(zip(states, index, strict=True)):
            limit = None if self._limits is None else self._limits[s]
            can_open, close_id, word, eos = self._rules(state, self._lengths[s], t, limit)
            if can_open:
                opens.append(r)
            if close_id >= 0:
                closes.append(r)
                close_ids.append(close_id)
            if word:
                words.append(r)
            if eos:
                ends.append(r)
        return opens, closes, close_ids, words, ends

    def _states(self, rows: list[list[int]], t: int) -> list[_State | None]:
        """The parser state of each history row: its parent's state advanced by one token, or parsed afresh."""
        previous, current = self._cache.get(t - 1, {}), self._cache.get(t, {})
        states = []
        for row in rows:
            key = tuple(row)
            state = current.get(key, _MISSING)
            if state is _MISSING:
                state = current[key] = self._state_of(key, previous)
            states.append(state)
        self._cache = {t - 1: previous, t: current}
        return states

    def _state_of(self, key: tuple[int, ...], previous: dict[tuple[int, ...], _State | None]) -> _State | None:
        """The state after history ``key``, from its parent's when the previous call saw the parent."""
        if not key:
            return _START
        parent = previous.get(key[:-1], _MISSING)
        if parent is _MISSING:
            return self._parse(key)
        return self._advance(parent, key[-1])  # type: ignore[arg-type]

    def _parse(self, tokens: tuple[int, ...]) -> _State | None:
        """The state after a whole history (rows the cache has not seen, e.g. a first call past step 0)."""
        state: _State | None = _START
        for token in tokens:
            state = self._advance(state, token)
        return state

    def _advance(self, state: _State | None, token: int) -> _State | None:
        """The state after one more token; None (dead) when the token breaks the tree's structure."""
        if state is None or not 0 <= token < len(self._kind):
            return None
        kind, (stack, depth, words, run, started) = self._kind[token], state
        if kind == _OPEN and (depth or not started):
            return _State((self._close_of[token], stack), depth + 1, words, run + 1, True)
        if kind == _CLOSE and stack is not None and stack[0] == token and run == 0:
            return _State(stack[1], depth - 1, words, 0, True)
        if kind == _WORD and depth:
            return _State(stack, depth, words + 1, 0, True)
        return None

    def _rules(self, state: _State | None, n: int, t: int, limit: int | None) -> tuple[bool, int, bool, bool]:
        """(may open, the close id allowed or -1, may write XX, may end) for a state of a sentence of n words."""
        if state is None:
            return False, -1, False, False
        stack, depth, words, run, started = state
        left = n - words  # XX still to write (negative only in rows that broke the rules)
        # an open costs 2 tokens of the budget: XX and close keep t + left + depth, the shortest finish, fixed
        in_budget = limit is None or t + 2 + left + depth <= limit
        can_open = left > 0 and run < self._max_open_run and (depth > 0 or not started) and in_budget
        can_close = stack is not None and run == 0 and (depth > 1 or left == 0)
        eos = depth == 0 and left == 0 and (started or n == 0)
        return can_open, stack[0] if can_close else -1, depth > 0 and left > 0, eos  # type: ignore[index]


def _ints(values: Sequence[int] | Tensor, name: str) -> list[int]:
    """A list of non-negative ints from a list or a 1-D integer tensor."""
    if isinstance(values, Tensor):
        if values.dim() != 1 or values.dtype.is_floating_point or values.dtype == torch.bool:
            raise RnnkitError(f"{name} must be a 1-D integer tensor, got {values.dtype} {tuple(values.shape)}")
        values = values.tolist()
    out = [int(v) for v in values]
    if any(v < 0 for v in out):
        raise RnnkitError(f"{name} must be at least 0, got {min(out)}")
    return out


def _limits(max_len: int | Sequence[int] | Tensor, lengths: list[int]) -> list[int]:
    """``max_len`` as one int per sentence, checked to leave room for each sentence's shortest tree."""
    limits = [int(max_len)] * len(lengths) if isinstance(max_len, int) else _ints(max_len, "max_len")
    if len(limits) != len(lengths):
        raise RnnkitError(f"max_len has {len(limits)} values for {len(lengths)} sentences: give one per sentence")
    for i, (limit, n) in enumerate(zip(limits, lengths, strict=True)):
        if n and limit < n + 2:
            raise RnnkitError(
                f"max_len {limit} is too short for sentence {i} of {n} words: its shortest tree takes {n + 2} tokens"
            )
    return limits
