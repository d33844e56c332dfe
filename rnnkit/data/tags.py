"""Tag schemes of span labelling (BIO, IOB1, IOBES): detection, conversion, repair and spans.

A span of type ``X`` over three tokens, then a one-token span, in each scheme (``O`` is outside every span):

- BIO, also called IOB2 (CoNLL-2000, ATIS, Inspec, most copies of CoNLL-2003): ``B-X I-X I-X B-X``;
  every span starts with ``B-``.
- IOB1 (the original CoNLL-2003 files): ``I-X I-X I-X B-X``; ``B-`` only starts a span that directly follows
  another span of the same type.
- IOBES: ``B-X I-X E-X S-X``; ``E-`` ends a span, ``S-`` is a span of one token.

rnnkit's readers return BIO; :func:`from_bio` writes the others. Spans are ``(type, start, end)`` with ``end``
exclusive, as in a slice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain

from rnnkit.errors import RnnkitError

SCHEMES = ("bio", "iob1", "iobes")
"""The tag schemes rnnkit converts between (``"iob2"`` is accepted as another name for ``"bio"``)."""

_ALIASES = {"iob2": "bio"}


def check_scheme(scheme: str) -> str:
    """The scheme's canonical name (``"iob2"`` -> ``"bio"``); an unknown scheme is an RnnkitError.

    >>> check_scheme("IOB2")
    'bio'
    """
    name = str(scheme).lower()
    name = _ALIASES.get(name, name)
    if name not in SCHEMES:
        raise RnnkitError(f"unknown tag scheme {scheme!r}: use one of bio (or iob2), iob1, iobes")
    return name


def is_span_tag(tag: str) -> bool:
    """True for ``O`` and for ``B-``/``I-``/``E-``/``S-`` followed by a type; False for POS tags and the like."""
    return tag == "O" or (len(tag) > 2 and tag[1] == "-" and tag[0] in "BIES")


def _continues(previous: str, tag: str) -> bool:
    """True when ``tag`` (B-X or I-X) follows a B-X or I-X of the same type X."""
    return previous[:2] in ("B-", "I-") and previous[2:] == tag[2:]


def detect_scheme(sentences: Iterable[Sequence[str]]) -> str | None:
    """The scheme of a file's tags (one tag list per sentence), or None when they are not span tags.

    The rule: any tag that is not ``O`` or ``B-``/``I-``/``E-``/``S-`` plus a type -> None (POS tags, say);
    any ``E-`` or ``S-`` -> ``"iobes"``; some span starts with ``I-`` and none with ``B-`` -> ``"iob1"``;
    otherwise ``"bio"`` (a BIO file with a few broken ``I-`` starts is BIO to repair, not IOB1).

    >>> detect_scheme([["B-PER", "I-PER", "O"]])
    'bio'
    >>> detect_scheme([["I-PER", "B-PER", "O", "I-LOC"]])
    'iob1'
    >>> detect_scheme([["S-PER", "O", "B-LOC", "E-LOC"]])
    'iobes'
    >>> detect_scheme([["NN", "VBZ"]]) is None
    True
    """
    return _detect(_bigrams(sentences))


def _bigrams(sentences: Iterable[Sequence[str]]) -> set[tuple[str, str]]:
    """Every (previous tag, tag) pair, with ``"O"`` before a sentence: all that scheme detection looks at."""
    pairs: set[tuple[str, str]] = set()
    for tags in sentences:
        pairs.update(
            zip(chain(("O",), tags), tags, strict=False)
        )  # set-at-a-time: a file has a few hundred distinct pairs
    return pairs


def _detect(pairs: set[tuple[str, str]]) -> str | None:
    tags = {tag for _, tag in pairs}
    if not all(map(is_span_tag, tags)):
        return None
    if any(tag[0] in "ES" for tag in tags):
        return "iobes"
    starts = {tag[0] for previous, tag in pairs if tag != "O" and not _continues(previous, tag)}
    return "iob1" if "I" in starts and "B" not in starts else "bio"


def repair_bio(tags: Sequence[str]) -> tuple[list[str], int]:
    """BIO tags with every ``I-X`` that does not follow ``B-X``/``I-X`` turned into ``B-X``, and how many were.

    The caller reports the count (rnnkit's readers warn once per file). Reading IOB1 as BIO is this repair.

    >>> repair_bio(["O", "I-PER", "I-PER", "I-LOC"])
    (['O', 'B-PER', 'I-PER', 'B-LOC'], 2)
    """
    repaired, count, previous = [], 0, "O"
    for tag in tags:
        if tag.startswith("I-") and not _continues(previous, tag):
            repaired.append("B-" + tag[2:])
            count += 1
        else:
            repaired.append(tag)
        previous = tag
    return repaired, count


def to_bio(tags: Sequence[str], scheme: str) -> list[str]:
    """``tags`` written in ``scheme`` as BIO tags (IOB1's span-initial ``I-`` and IOBES's ``S-``/``E-`` rewritten).

    >>> to_bio(["I-PER", "B-PER", "O"], "iob1")
    ['B-PER', 'B-PER', 'O']
    >>> to_bio(["B-LOC", "E-LOC", "S-PER"], "iobes")
    ['B-LOC', 'I-LOC', 'B-PER']
    """
    scheme = check_scheme(scheme)
    if scheme == "iob1":
        return repair_bio(tags)[0]
    if scheme == "iobes":
        return ["B-" + t[2:] if t.startswith("S-") else "I-" + t[2:] if t.startswith("E-") else t for t in tags]
    return list(tags)


def from_bio(tags: Sequence[str], scheme: str) -> list[str]:
    """Valid BIO ``tags`` (see :func:`repair_bio`) written in ``scheme``; ``to_bio`` undoes it.

    >>> from_bio(["B-PER", "B-PER", "O", "B-LOC"], "iob1")
    ['I-PER', 'B-PER', 'O', 'I-LOC']
    >>> from_bio(["B-LOC", "I-LOC", "I-LOC", "B-PER"], "iobes")
    ['B-LOC', 'I-LOC', 'E-LOC', 'S-PER']
    """
    scheme = check_scheme(scheme)
    if scheme == "iob1":
        return [
            "I-" + t[2:] if t.startswith("B-") and not (i and _continues(tags[i - 1], t)) else t
            for i, t in enumerate(tags)
        ]
    if scheme == "bio":
        return list(tags)
    out = []
    for i, tag in enumerate(tags):
        inside = i + 1 < len(tags) and tags[i + 1].startswith("I-") and tags[i + 1][2:] == tag[2:]
        if tag.startswith("B-"):
            tag = tag if inside else "S-" + tag[2:]
        elif tag.startswith("I-"):
            tag = tag if inside else "E-" + tag[2:]
        out.append(tag)
    return out


def spans(tags: Sequence[str], scheme: str = "bio") -> list[tuple[str, int, int]]:
    """The labelled spans ``(type, start, end)`` of ``tags``, ``end`` exclusive, in order.

    As conlleval reads BIO, an ``I-X`` that does not continue a span of type X starts one.

    >>> spans(["B-PER", "I-PER", "O", "B-LOC", "B-LOC"])
    [('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5)]
    >>> spans(["I-ORG", "I-ORG", "B-ORG"], scheme="iob1")
    [('ORG', 0, 2), ('ORG', 2, 3)]
    """
    bio = to_bio(tags, scheme)
    found: list[list] = []
    for i, tag in enumerate(bio):
        if tag == "O":
            continue
        if not is_span_tag(tag) or tag[0] not in "BI":
            raise RnnkitError(f"tag {tag!r} at position {i} is not a {scheme} tag: give O, B-X or I-X")
        if tag[0] == "I" and found and found[-1][2] == i and found[-1][0] == tag[2:]:
            found[-1][2] = i + 1
        else:
            found.append([tag[2:], i, i + 1])
    return [(kind, start, end) for kind, start, end in found]


def as_bio(sentences: Sequence[Sequence[str]], scheme: str | None = "auto") -> tuple[list[list[str]], int]:
    """A file's tags (one list per sentence) as BIO, and how many ``I-`` starts :func:`repair_bio` turned into ``B-``.

    Args:
        sentences: the tags of each sentence.
        scheme: ``"bio"``, ``"iob1"`` or ``"iobes"``; ``"auto"``: :func:`detect_scheme`, and tags that are not
            span tags (POS tags) are kept as written; None: every tag is kept as written.

    Raises:
        RnnkitError: an unknown scheme, or a tag that is not one of the given scheme's (naming the sentence).

    >>> as_bio([["O", "I-PER"], ["B-LOC", "I-LOC"]])
    ([['O', 'B-PER'], ['B-LOC', 'I-LOC']], 1)
    >>> as_bio([["I-PER", "B-PER"]])  # detected as IOB1: converted, not repaired
    ([['B-PER', 'B-PER']], 0)
    """
    sentences = [tags if isinstance(tags, list) else list(tags) for tags in sentences]  # lists kept, not copied
    if scheme is None:
        return sentences, 0
    pairs = _bigrams(sentences)
    name = _detect(pairs) if scheme == "auto" else check_scheme(scheme)
    if name is None:
        return sentences, 0
    prefixes = "BIES" if name == "iobes" else "BI"
    valid = {tag for _, tag in pairs if tag == "O" or (is_span_tag(tag) and tag[0] in prefixes)}
    if len(valid) < len({tag for _, tag in pairs}):  # name the first bad tag in file order
        i, bad = next((i, t) for i, tags in enumerate(sentences, 1) for t in tags if t not in valid)
        raise RnnkitError(
            f"sentence {i} has the tag {bad!r}, which is not a {name} tag: "
            "pass scheme='auto' or scheme=None to keep tags as written"
        )
    if name == "bio" and all(_continues(previous, tag) for previous, tag in pairs if tag.startswith("I-")):
        return sentences, 0  # the usual case, and the fast one: nothing to convert or repair
    out, repaired = [], 0
    for tags in sentences:
        fixed, count = repair_bio(to_bio(tags, name))
        out.append(fixed)
        repaired += count
    return out, repaired
