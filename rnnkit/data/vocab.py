"""Vocabulary: tokens <-> ids with fixed specials, built from counts, saved as JSON (never pickled)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from rnnkit.data.text import EOS as _EOS
from rnnkit.data.text import read_json, short_repr
from rnnkit.errors import RnnkitError

FORMAT = "rnnkit-vocab"
VERSION = 1
WRITTEN_BY_RNNKIT = "a vocab.json written by rnnkit"


class Vocabulary:
    """A bijection between tokens and ids ``0 .. len-1``, with four specials at fixed ids.

    The specials come first: ``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3. A corpus that
    already contains one of these strings (Penn Treebank writes ``<unk>`` for rare words, and word-level
    tokenization ends lines with ``<eos>``) uses the special itself; it never becomes a second entry.
    Encoding maps tokens the vocabulary lacks to ``<unk>``. Two vocabularies are equal when they map the
    same tokens to the same ids.

    Args:
        tokens: all tokens in id order, starting with the four specials.
        counts: how often each token was seen when building (zeros when not given).

    >>> from rnnkit.data import Vocabulary
    >>> vocab = Vocabulary.build("the cat <unk> the mat".split())
    >>> len(vocab), vocab.index("the"), vocab.unk_id
    (7, 4, 1)
    >>> vocab.encode(["the", "dog"])
    [4, 1]
    >>> vocab.decode([4, 5, 3])
    ['the', 'cat', '<eos>']
    """

    PAD: ClassVar[str] = "<pad>"
    UNK: ClassVar[str] = "<unk>"
    BOS: ClassVar[str] = "<bos>"
    EOS: ClassVar[str] = _EOS
    SPECIALS: ClassVar[tuple[str, ...]] = (PAD, UNK, BOS, EOS)

    def __init__(self, tokens: Sequence[str], counts: Sequence[int] | None = None) -> None:
        tokens = list(tokens)
        try:
            counts = [0] * len(tokens) if counts is None else [int(c) for c in counts]
        except (TypeError, ValueError, OverflowError) as err:
            raise RnnkitError(f"invalid vocabulary: counts must be integers ({err})") from None
        problem = _token_problem(tokens) or _problem(tokens, counts)
        if problem:
            raise RnnkitError(f"invalid vocabulary: {problem}")
        self._tokens = tokens
        self._counts = counts
        self._ids = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def build(cls, tokens: Iterable[str], *, min_freq: int = 1, max_size: int | None = None) -> Vocabulary:
        """Count ``tokens`` and keep the specials, then the others by descending count.

        Ties keep the order of first appearance, so the same corpus always gives the same ids.

        Args:
            tokens: the training tokens (any iterable, read once).
            min_freq: drop tokens seen fewer times than this (they will encode as ``<unk>``).
            max_size: at most this many entries in all, the four specials included.

        Returns:
            The vocabulary.

        Raises:
            RnnkitError: ``min_freq`` < 1 or ``max_size`` smaller than the number of specials.
        """
        if min_freq < 1:
            raise RnnkitError(f"min_freq must be at least 1, got {min_freq}")
        if max_size is not None and max_size < len(cls.SPECIALS):
            raise RnnkitError(f"max_size must be at least {len(cls.SPECIALS)} (the specials), got {max_size}")
        seen = Counter(tokens)
        special_counts = [seen.pop(s, 0) for s in cls.SPECIALS]
        kept = sorted((item for item in seen.items() if item[1] >= min_freq), key=lambda item: -item[1])
        if max_size is not None:
            kept = kept[: max_size - len(cls.SPECIALS)]
        return cls([*cls.SPECIALS, *(t for t, _ in kept)], [*special_counts, *(c for _, c in kept)])

    # -- ids --------------------------------------------------------------------------------------------------

    @property
    def pad_id(self) -> int:
        """Id of ``<pad>`` (0)."""
        return 0

    @property
    def unk_id(self) -> int:
        """Id of ``<unk>`` (1)."""
        return 1

    @property
    def bos_id(self) -> int:
        """Id of ``<bos>`` (2)."""
        return 2

    @property
    def eos_id(self) -> int:
        """Id of ``<eos>`` (3)."""
        return 3

    @property
    def tokens(self) -> tuple[str, ...]:
        """All tokens in id order."""
        return tuple(self._tokens)

    @property
    def counts(self) -> tuple[int, ...]:
        """How often each token was seen when the vocabulary was built, in id order."""
        return tuple(self._counts)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._tokens == other._tokens

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value type: equality without hashing

    def __repr__(self) -> str:
        shown = ", ".join(repr(t) for t in self._tokens[:8])
        return f"Vocabulary({len(self)} tokens: {shown}{', ...' if len(self) > 8 else ''})"

    def index(self, token: str) -> int:
        """The id of ``token``; an error if it is not in the vocabulary (``encode`` maps it to ``<unk>``)."""
        try:
            return self._ids[token]
        except KeyError:
            raise RnnkitError(f"{token!r} is not in the vocabulary of {len(self)} tokens") from None

    def token(self, id: int) -> str:
        """The token with id ``id``; an error if the id is out of range."""
        if not 0 <= id < len(self._tokens):
            raise RnnkitError(f"id {id} is out of range for a vocabulary of {len(self)} tokens (0..{len(self) - 1})")
        return self._tokens[id]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; tokens not in the vocabulary become ``unk_id``."""
        get, unk = self._ids.get, self.unk_id
        return [get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Tokens of ``ids`` (a list or a 1-D tensor); an error on an id out of range."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return [self.token(int(i)) for i in ids]

    def unknown_count(self, tokens: Iterable[str]) -> int:
        """How many of ``tokens`` are not in the vocabulary and would encode as ``<unk>``.

        A literal ``"<unk>"`` in ``tokens`` is in the vocabulary and is not counted.
        """
        return sum(t not in self._ids for t in tokens)

    # -- files ------------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as JSON, atomically: a temporary file in the same folder, fsync, rename.

        The file is ``{"format": "rnnkit-vocab", "version": 1, "tokens": [...], "counts": [...]}``.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise RnnkitError(f"{path.parent}: no such folder to save the vocabulary in")
        payload = {"format": FORMAT, "version": VERSION, "tokens": self._tokens, "counts": self._counts}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, ensure_ascii=False, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the vocabulary private to this user
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`, checking it; errors name the file.

        Raises:
            RnnkitError: the file is missing, not UTF-8 JSON, not an rnnkit vocabulary, of a newer version, or
                inconsistent (a token not a string, duplicate tokens, specials not first, counts not matching
                tokens or negative); the message names the file and the token or count.
        """
        path = Path(path)
        if not path.is_file():
            raise RnnkitError(f"{path}: no such vocabulary file" + (" (it is a folder)" if path.is_dir() else ""))
        payload = read_json(path, what=WRITTEN_BY_RNNKIT)
        problem = _payload_problem(payload)
        if problem:
            raise RnnkitError(f"{path}: {problem}")
        return cls(payload["tokens"], payload["counts"])


def _payload_problem(payload: Any) -> str | None:
    """What is wrong with a loaded JSON value, as a phrase, or None."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return f'not an rnnkit vocabulary (no "format": "{FORMAT}" marker): give {WRITTEN_BY_RNNKIT}'
    version = payload.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f'"version" must be a positive integer, got {short_repr(version)}: give {WRITTEN_BY_RNNKIT}'
    if version > VERSION:
        shown = short_repr(version)
        return f"vocabulary version {shown} is not supported (this rnnkit reads version {VERSION}): upgrade rnnkit"
    tokens, counts = payload.get("tokens"), payload.get("counts")
    if not isinstance(tokens, list):
        return f'"tokens" must be a list of strings, got {short_repr(tokens)}'
    if not isinstance(counts, list):
        return f'"counts" must be a list of integers, got {short_repr(counts)}'
    bad = next((i for i, c in enumerate(counts) if isinstance(c, bool) or not isinstance(c, int)), None)
    if bad is not None:
        return f'"counts" must be a list of integers: count {bad} is {short_repr(counts[bad])}'
    return _token_problem(tokens) or _problem(tokens, counts)


def _token_problem(tokens: list[Any]) -> str | None:
    """Which token is not a string of valid Unicode, as a phrase, or None."""
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            return f'"tokens" must be a list of strings: token {i} is {short_repr(token)}'
        if not token.isascii():
            try:
                token.encode("utf-8")
            except UnicodeEncodeError:
                return f"token {i} {short_repr(token)} is not valid Unicode (a lone surrogate): fix the file"
    return None


def _problem(tokens: list[str], counts: list[int]) -> str | None:
    """What is inconsistent in a token list and its counts, as a phrase, or None."""
    specials = list(Vocabulary.SPECIALS)
    if tokens[: len(specials)] != specials:
        got = ", ".join(short_repr(t) for t in tokens[: len(specials)])
        return f"the tokens must start with the specials {', '.join(specials)}, got [{got}]"
    duplicates = [t for t, n in Counter(tokens).items() if n > 1]
    if duplicates:
        shown = ", ".join(short_repr(t) for t in duplicates[:5])
        return f"duplicate tokens [{shown}]{' and more' if len(duplicates) > 5 else ''}: each token must appear once"
    if len(counts) != len(tokens):
        return f"{len(counts)} counts for {len(tokens)} tokens: give one count per token"
    negative = next((i for i, c in enumerate(counts) if c < 0), None)
    if negative is not None:
        token = short_repr(tokens[negative])
        return f"count {negative} (of token {token}) is {short_repr(counts[negative])}: a count must be at least 0"
    return None
