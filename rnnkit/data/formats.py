"""Readers of labelled sequences: classification (TSV, SST, JSON lines) and tagging (CoNLL, ATIS folders, JSON lines).

Classification examples are :class:`Example` (tokens and one label, or several for multi-label data); tagging
examples are :class:`TaggedSentence` (one tag per token, and an ATIS intent). Text is split on whitespace: the
files these readers are for (SST-2, CoNLL, ATIS, Inspec) are already tokenized.

Every file goes through :func:`rnnkit.data.text.read_text`, so a file that is not UTF-8 text stops with one line
naming the file and the offset; every other problem is one :class:`RnnkitError` line naming ``file:line``.
What is skipped (empty lines, empty sentences) and what is repaired (an ``I-X`` without a ``B-X`` before it) is
reported by one warning per file, with the count. Span tags come back as BIO (see :mod:`rnnkit.data.tags`).
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnkit.data.tags import as_bio
from rnnkit.data.text import read_text, short_repr
from rnnkit.errors import RnnkitError

PathLike = str | os.PathLike[str]

CLASSIFICATION_FORMATS = ("tsv", "sst", "jsonl")
TAGGING_FORMATS = ("conll", "atis", "jsonl")
DOCSTART = "-DOCSTART-"
"""The first column of the line that starts a document in CoNLL-2003 files; such lines are skipped."""


@dataclass
class Example:
    """A classification example: the tokens and the label (several labels for multi-label data)."""

    tokens: list[str]
    labels: list[str]


@dataclass
class TaggedSentence:
    """A tagging example: one tag per token, and the sentence's intent where the data has one (ATIS)."""

    tokens: list[str]
    tags: list[str]
    intent: str | None = None
    keyphrases: list[str] | None = None  # JSON lines with a "keyphrases" list (Inspec): the gold keyphrases


@dataclass
class KeyphraseDocument:
    """An Inspec document: tokens and BIO tags (``B-KEY``/``I-KEY``/``O``), plus every gold keyphrase as written."""

    id: str
    tokens: list[str]
    tags: list[str]
    keyphrases: list[str]


# ---------------------------------------- classification


def read_classification(
    path: PathLike, format: str = "auto", *, label_sep: str | None = None, label_field: str | None = None
) -> list[Example]:
    """Read classification examples from a TSV, SST or JSON lines file.

    Args:
        path: the file.
        format: ``"tsv"`` (``label<TAB>text``), ``"sst"`` (``label text``: the label up to the first space, as in
            the SST-2 files ``stsa.binary.*``), ``"jsonl"`` (one object per line: ``"text"`` or ``"tokens"``,
            and ``"label"`` or a list ``"labels"``), or ``"auto"``: see :func:`detect_classification_format`.
        label_sep: split each TSV/SST label and JSON ``"label"`` on this string into several labels
            (``"#"`` for ATIS intents such as ``atis_flight#atis_airfare``); None keeps one label.
        label_field: JSON lines: read the labels from this field (a string, or a list of them) instead of
            ``"label"``/``"labels"``: ``"keyphrases"`` makes Inspec's gold keyphrases the labels.

    Returns:
        The examples, in file order; empty lines are skipped, with one warning giving their count.

    Raises:
        RnnkitError: one line naming ``file:line``: a TSV line without a tab, a label without text, a JSON line
            that is not an object with text and label, or a file that is not UTF-8 text.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "train.tsv"
    >>> _ = path.write_text("pos\\ta fine film\\nneg\\tdull\\n")
    >>> read_classification(path)
    [Example(tokens=['a', 'fine', 'film'], labels=['pos']), Example(tokens=['dull'], labels=['neg'])]
    """
    path = Path(path)
    text = read_text(path)
    if format == "auto":
        format = detect_classification_format(path, text)
    if format not in CLASSIFICATION_FORMATS:
        raise RnnkitError(
            f"unknown classification format {format!r}: use one of auto, {', '.join(CLASSIFICATION_FORMATS)}"
        )
    parse = {"tsv": _tsv_line, "sst": _sst_line, "jsonl": functools.partial(_json_example, field=label_field)}[format]
    examples, empty = [], 0
    for n, line in enumerate(_split_lines(text), 1):
        if not line.strip():
            empty += 1
            continue
        tokens, labels = parse(path, n, line)
        if not tokens:
            raise RnnkitError(f"{path}:{n}: no text after the label: give every example a text, or drop the line")
        examples.append(Example(tokens, _split_labels(labels, label_sep)))
    _warn_skipped(path, empty, "empty line")
    return examples


def read_tsv(path: PathLike, *, label_sep: str | None = None) -> list[Example]:
    """``label<TAB>text`` lines: :func:`read_classification` with ``format="tsv"``."""
    return read_classification(path, "tsv", label_sep=label_sep)


def read_sst(path: PathLike) -> list[Example]:
    """``label text`` lines (SST-2's ``stsa.binary.*``): :func:`read_classification` with ``format="sst"``."""
    return read_classification(path, "sst")


def detect_classification_format(path: PathLike, text: str | None = None) -> str:
    """The format of a classification file: by extension, else by its first non-empty line.

    ``.tsv`` -> tsv; ``.jsonl`` or ``.json`` -> jsonl. Otherwise the first non-empty line decides: a JSON object
    -> jsonl; a tab in it -> tsv; else sst (``label text``).

    >>> detect_classification_format("stsa.binary.train", "1 a stirring , funny film\\n")
    'sst'
    >>> detect_classification_format("data.txt", '{"text": "ok", "label": 1}\\n')
    'jsonl'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return "tsv"
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    text = read_text(path) if text is None else text
    first = next((line for line in text.split("\n") if line.strip()), "")
    try:
        if isinstance(json.loads(first), dict):
            return "jsonl"
    except (ValueError, RecursionError):
        pass
    return "tsv" if "\t" in first else "sst"


def _tsv_line(path: Path, n: int, line: str) -> tuple[list[str], list[str]]:
    label, tab, text = line.partition("\t")
    if not tab:
        raise RnnkitError(
            f"{path}:{n}: no tab, so no label column: expected label<TAB>text, got {short_repr(line)}: "
            "add the label and a tab (or pass format='sst' for 'label text' lines)"
        )
    if not label.strip():
        raise RnnkitError(f"{path}:{n}: the label before the tab is empty: give each line a label")
    return text.split(), [label.strip()]


def _sst_line(path: Path, n: int, line: str) -> tuple[list[str], list[str]]:
    label, *tokens = line.split()
    return tokens, [label]


def _json_example(path: Path, n: int, line: str, field: str | None = None) -> tuple[list[str], list[str]]:
    record = _json_object(path, n, line)
    tokens = _tokens_field(path, n, record)
    if field is not None and field not in record:
        raise RnnkitError(f'{path}:{n}: no "{field}" field (the label field): give each object its labels there')
    if field is not None and not isinstance(record[field], list):
        record = {"label": record[field]}
    elif field is not None:
        record = {"labels": record[field]}
    if "labels" in record:
        labels = record["labels"]
        if not isinstance(labels, list) or not all(_is_label(x) for x in labels):
            name = field or "labels"
            raise RnnkitError(f'{path}:{n}: "{name}" is {short_repr(labels)}: give a list of strings or integers')
        return tokens, [str(x) for x in labels]
    if "label" not in record:
        raise RnnkitError(f'{path}:{n}: no "label" or "labels" field: give each object its label')
    if not _is_label(record["label"]):
        raise RnnkitError(
            f'{path}:{n}: "label" is {short_repr(record["label"])}: give a non-empty string or an integer'
        )
    return tokens, [str(record["label"])]


def _is_label(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and bool(value.strip()))


def _split_labels(labels: list[str], label_sep: str | None) -> list[str]:
    if label_sep is None:
        return labels
    return [part for label in labels for part in label.split(label_sep) if part]


# ---------------------------------------- tagging


def read_tagging(
    path: PathLike, format: str = "auto", *, token_column: int = 0, tag_column: int = -1, scheme: str | None = "auto"
) -> list[TaggedSentence]:
    """Read tagged sentences from a CoNLL file, an ATIS folder or a JSON lines file.

    Args:
        path: the file, or the ATIS folder.
        format: ``"conll"``, ``"atis"``, ``"jsonl"`` or ``"auto"``: a folder is ATIS, a ``.jsonl`` or ``.json``
            file is JSON lines, any other file is CoNLL.
        token_column, tag_column: the CoNLL columns of the token and the tag (negative counts from the end).
        scheme: the tags' scheme, ``"bio"``, ``"iob1"`` or ``"iobes"``: they are returned as BIO; ``"auto"``
            detects it (:func:`rnnkit.data.tags.detect_scheme`) and keeps tags that are not span tags (POS tags)
            as written; None keeps every tag as written.

    Returns:
        The sentences, in file order; empty sentences are skipped and ``I-X`` tags without a ``B-X`` before them
        become ``B-X``, each reported by one warning with its count.

    Raises:
        RnnkitError: one line naming the file (and line) and what to do.
    """
    path = Path(path)
    if format == "auto":
        format = "atis" if path.is_dir() else "jsonl" if path.suffix.lower() in (".jsonl", ".json") else "conll"
    if format == "conll":
        return read_conll(path, token_column=token_column, tag_column=tag_column, scheme=scheme)
    if format == "atis":
        return read_atis(path, scheme=scheme)
    if format == "jsonl":
        return read_tagging_jsonl(path, scheme=scheme)
    raise RnnkitError(f"unknown tagging format {format!r}: use one of auto, {', '.join(TAGGING_FORMATS)}")


def read_conll(
    path: PathLike, *, token_column: int = 0, tag_column: int = -1, scheme: str | None = "auto"
) -> list[TaggedSentence]:
    """CoNLL columns: one ``token ... tag`` line per token, a blank line after each sentence, ``-DOCSTART-`` skipped.

    Columns are separated by spaces or tabs, and every token line has as many as the first one (the error names
    the line, the expected and the received count). See :func:`read_tagging` for the arguments.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "eng.train"
    >>> _ = path.write_text("-DOCSTART- -X- O\\n\\nEU NNP I-ORG\\nrejects VBZ O\\n\\n")
    >>> read_conll(path)
    [TaggedSentence(tokens=['EU', 'rejects'], tags=['B-ORG', 'O'], intent=None, keyphrases=None)]
    """
    path = Path(path)
    tokens, tags, empty = _conll_columns(path, token_column, tag_column)
    _warn_skipped(path, empty, "empty sentence", "two blank lines in a row")
    tags = _to_bio(path, tags, scheme)
    return [TaggedSentence(words, labels) for words, labels in zip(tokens, tags, strict=True)]


def _conll_columns(path: Path, token_column: int, tag_column: int) -> tuple[list[list[str]], list[list[str]], int]:
    """Each sentence's tokens, its tags, and the count of empty sentences (blank lines that end nothing)."""
    # two flat lists per sentence, not a (token, tag) tuple per token: 200k small containers wake the garbage
    # collector again and again, which made reading CoNLL-2003 several times slower
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    labels: list[str] = []
    expected, empty, after_docstart = None, 0, False
    for n, line in enumerate(_split_lines(read_text(path)), 1):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            if words:
                tokens.append(words)
                tags.append(labels)
                words, labels = [], []
            elif not fields and not after_docstart:
                empty += 1
            after_docstart = bool(fields)
            continue
        after_docstart = False
        if expected is None:
            expected = (n, _check_columns(path, n, len(fields), token_column, tag_column))
        elif len(fields) != expected[1]:
            raise RnnkitError(
                f"{path}:{n}: expected {expected[1]} columns (as on line {expected[0]}), received {len(fields)}: "
                "give every token line the same columns, separated by spaces or tabs"
            )
        words.append(fields[token_column])
        labels.append(fields[tag_column])
    if words:
        tokens.append(words)
        tags.append(labels)
    return tokens, tags, empty


def _check_columns(path: Path, n: int, count: int, token_column: int, tag_column: int) -> int:
    for name, column in (("token_column", token_column), ("tag_column", tag_column)):
        if not -count <= column < count:
            raise RnnkitError(
                f"{path}:{n}: {name}={column}, but the line has {count} column{'s' * (count != 1)}: "
                f"give a column from {-count} to {count - 1}"
            )
    return count


def read_atis(folder: PathLike, *, scheme: str | None = "auto") -> list[TaggedSentence]:
    """An ATIS folder: ``seq.in`` (tokens), ``seq.out`` (one tag per token) and optionally ``label`` (intents).

    The files are read line by line in parallel, so they must have as many lines. Intents are kept as written
    (multi-intent labels such as ``atis_flight#atis_airfare`` included). See :func:`read_tagging` for ``scheme``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RnnkitError(f"{folder} is not a folder: give an ATIS folder holding seq.in, seq.out and optionally label")
    names = ["seq.in", "seq.out", "label"]
    for name in names[:2]:
        if not (folder / name).is_file():
            raise RnnkitError(f"{folder}: no {name}: an ATIS folder holds seq.in, seq.out and optionally label")
    files = [folder / name for name in names if (folder / name).exists()]
    columns = [_split_lines(read_text(file)) for file in files]
    for file, lines in zip(files[1:], columns[1:], strict=True):
        if len(lines) != len(columns[0]):
            raise RnnkitError(
                f"{files[0]} has {len(columns[0]):,} lines but {file} has {len(lines):,}: "
                "give one line per sentence in each file"
            )
    rows, empty = [], 0
    for n, (line_in, line_out, *label) in enumerate(zip(*columns, strict=True), 1):
        tokens, tags = line_in.split(), line_out.split()
        if len(tokens) != len(tags):
            raise RnnkitError(
                f"{files[1]}:{n}: {len(tags)} tags for the {len(tokens)} tokens of {files[0]}:{n}: "
                "give one tag per token"
            )
        if not tokens:
            empty += 1
            continue
        rows.append((tokens, tags, _intent(files, n, label)))
    _warn_skipped(folder, empty, "empty sentence", "empty lines in seq.in and seq.out")
    tags = _to_bio(folder, [row[1] for row in rows], scheme)
    return [TaggedSentence(tokens, t, intent) for (tokens, _, intent), t in zip(rows, tags, strict=True)]


def _intent(files: list[Path], n: int, label: list[str]) -> str | None:
    if not label:
        return None
    if not label[0].strip():
        raise RnnkitError(f"{files[2]}:{n}: empty intent: give one intent per sentence")
    return label[0].strip()


def read_tagging_jsonl(path: PathLike, *, scheme: str | None = "auto") -> list[TaggedSentence]:
    """JSON lines, one object per sentence: ``"tokens"`` (or ``"text"``), ``"tags"``, and optionally ``"intent"``
    and ``"keyphrases"`` (a document's gold keyphrases, scored by ``rnnkit tag eval`` as keyphrase F1@k).

    Other fields are ignored (:func:`read_inspec` keeps Inspec's). See :func:`read_tagging` for ``scheme``.
    """
    return [sentence for _, sentence in _tagged_records(Path(path), scheme)]


def read_inspec(path: PathLike, *, scheme: str | None = "auto") -> list[KeyphraseDocument]:
    """Inspec JSON lines (``/shared/data/inspec``): ``"id"``, ``"tokens"``, ``"tags"`` and ``"keyphrases"``.

    ``keyphrases`` are all the gold keyphrases as the indexers wrote them, about a quarter of which are not in
    the text; the tags mark the ones that are.
    """
    path = Path(path)
    documents = []
    for (n, record), sentence in _tagged_records(path, scheme):
        keyphrases = _string_list(path, n, record, "keyphrases")
        documents.append(KeyphraseDocument(str(record.get("id", n)), sentence.tokens, sentence.tags, keyphrases))
    return documents


def _tagged_records(path: Path, scheme: str | None) -> list[tuple[tuple[int, dict], TaggedSentence]]:
    """Each non-empty JSON line's (line number, object) with its sentence; empty lines and sentences warned."""
    records, rows, empty_lines, empty = [], [], 0, 0
    for n, line in enumerate(_split_lines(read_text(path)), 1):
        if not line.strip():
            empty_lines += 1
            continue
        record = _json_object(path, n, line)
        tokens, tags = _tokens_field(path, n, record), _string_list(path, n, record, "tags")
        if len(tokens) != len(tags):
            raise RnnkitError(f"{path}:{n}: {len(tags)} tags for {len(tokens)} tokens: give one tag per token")
        intent = record.get("intent")
        if intent is not None and not isinstance(intent, str):
            raise RnnkitError(f'{path}:{n}: "intent" is {short_repr(intent)}: give a string')
        if not tokens:
            empty += 1
            continue
        keyphrases = _string_list(path, n, record, "keyphrases") if "keyphrases" in record else None
        records.append((n, record))
        rows.append(TaggedSentence(tokens, tags, intent, keyphrases))
    _warn_skipped(path, empty_lines, "empty line")
    _warn_skipped(path, empty, "empty sentence", "no tokens")
    tags = _to_bio(path, [row.tags for row in rows], scheme)
    for row, t in zip(rows, tags, strict=True):
        row.tags = t
    return list(zip(records, rows, strict=True))


# ---------------------------------------- shared helpers


def _to_bio(path: Path, sentences: list[list[str]], scheme: str | None) -> list[list[str]]:
    """The sentences' tags as BIO (:func:`rnnkit.data.tags.as_bio`); repaired ``I-`` starts are one warning."""
    try:
        out, repaired = as_bio(sentences, scheme)
    except RnnkitError as err:
        raise RnnkitError(f"{path}: {err}") from None
    if repaired:
        warnings.warn(
            f"{path}: {repaired:,} I- tag(s) without a B- or I- of the same type before them were read as B- (BIO)",
            stacklevel=3,
        )
    return out


def _split_lines(text: str) -> list[str]:
    """The lines of ``text``; a final newline ends the last line rather than starting an empty one."""
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _warn_skipped(path: Path, count: int, what: str, why: str = "") -> None:
    if count:
        why = f" ({why})" if why else ""
        warnings.warn(f"{path}: skipped {count:,} {what}{'s' * (count != 1)}{why}", stacklevel=3)


def _json_object(path: Path, n: int, line: str) -> dict:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise RnnkitError(
            f"{path}:{n}: column {err.colno}: not JSON ({err.msg}): give one JSON object per line"
        ) from None
    except (ValueError, RecursionError):
        raise RnnkitError(f"{path}:{n}: not JSON rnnkit can read: give one JSON object per line") from None
    if not isinstance(value, dict):
        raise RnnkitError(f"{path}:{n}: {short_repr(value)} is not a JSON object: give one JSON object per line")
    return value


def _tokens_field(path: Path, n: int, record: dict) -> list[str]:
    if "tokens" in record:
        tokens = _string_list(path, n, record, "tokens")
        blank = next((i for i, t in enumerate(tokens) if not t.strip()), None)
        if blank is not None:
            raise RnnkitError(
                f'{path}:{n}: "tokens" has an empty token at position {blank + 1} ({tokens[blank]!r}): give each '
                "token at least one non-space character, or drop it"
            )
        return tokens
    if isinstance(record.get("text"), str):
        return record["text"].split()
    if "text" in record:
        raise RnnkitError(f'{path}:{n}: "text" is {short_repr(record["text"])}: give a string')
    raise RnnkitError(f'{path}:{n}: no "text" or "tokens" field: give each object its text')


def _string_list(path: Path, n: int, record: dict, key: str) -> list[str]:
    if key not in record:
        raise RnnkitError(f'{path}:{n}: no "{key}" field: give each object its {key}')
    if not isinstance(record[key], list) or not set(map(type, record[key])) <= {str}:
        raise RnnkitError(f'{path}:{n}: "{key}" is {short_repr(record[key])}: give a list of strings')
    return record[key]
