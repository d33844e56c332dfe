"""Labels: the closed set of classes or tags a classifier or tagger predicts, saved as ``labels.json``.

Unlike a :class:`~rnnkit.data.vocab.Vocabulary` there is no ``<unk>``: a label the run never saw cannot be
predicted, so reading one is counted and reported by name (``unknown``), never silently mapped.

>>> labels = Labels.build(["pos", "neg", "pos"])
>>> labels.names, labels.encode(["neg", "pos"])
(('neg', 'pos'), [0, 1])
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from rnnkit.errors import RnnkitError
from rnnkit.io import read_json, write_json

FORMAT = "rnnkit-labels"


class Labels:
    """An ordered set of label names; ids are positions in :attr:`names`."""

    def __init__(self, names: Sequence[str]) -> None:
        names = tuple(names)
        bad = next((n for n in names if not isinstance(n, str) or not n), None)
        if bad is not None or not names:
            raise RnnkitError(f"labels must be non-empty strings, got {bad!r}" if names else "no labels given")
        if len(set(names)) != len(names):
            dup = next(n for n, c in Counter(names).items() if c > 1)
            raise RnnkitError(f"label {dup!r} appears twice")
        self._names, self._index = names, {n: i for i, n in enumerate(names)}

    @classmethod
    def build(cls, names: Iterable[str], *, first: Sequence[str] = ()) -> Labels:
        """The distinct names, ``first`` ones first (e.g. ``"O"`` for tags), then sorted: deterministic."""
        seen = set(names) - set(first)
        return cls([*first, *sorted(seen)])

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Labels) and other._names == self._names

    def __repr__(self) -> str:
        return f"Labels({len(self)}: {', '.join(self._names[:5])}{', ...' if len(self) > 5 else ''})"

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise RnnkitError(f"unknown label {name!r}; the run knows {len(self)} labels") from None

    def encode(self, names: Iterable[str]) -> list[int]:
        return [self.index(n) for n in names]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self._names[int(i)] for i in ids]

    def unknown(self, names: Iterable[str]) -> Counter[str]:
        """How often each name this set does not hold occurs in ``names``."""
        return Counter(n for n in names if n not in self._index)

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(Path(path), {"format": FORMAT, "version": 1, "names": list(self._names)})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Labels:
        path = Path(path)
        payload = read_json(path, what="labels file")
        if not isinstance(payload, dict) or payload.get("format") != FORMAT or payload.get("version") != 1:
            raise RnnkitError(f"{path} is not an rnnkit labels file (format {FORMAT!r}, version 1); restore it")
        names = payload.get("names")
        if not isinstance(names, list):
            raise RnnkitError(f"{path}: 'names' must be a list of strings; restore the file")
        try:
            return cls(names)
        except RnnkitError as err:
            raise RnnkitError(f"{path}: {err}; restore the file") from None
