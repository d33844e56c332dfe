"""Text files and tokens: UTF-8 reading with file:offset errors, char and word tokenizers.

Word level follows the Penn Treebank language-model convention (Mikolov's PTB files, pytorch/examples
``word_language_model``): each line is split on whitespace and ends with one ``<eos>`` token.

Every text file rnnkit reads (text corpora, JSON piano rolls, vocabularies) goes through :func:`decode_text`,
which refuses what is not UTF-8 text with one line naming the file and the offset: a UTF-16 or UTF-32 file,
with or without a byte-order mark (it says which ``iconv`` command converts it), a compressed file, and any
file with a NUL byte: no text has one, so a NUL means binary data (or a stray NUL, which ``tr`` removes).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

from rnnkit.errors import RnnkitError
from rnnkit.io import first_line

EOS = "<eos>"
"""The end-of-line token of word-level text (the same string as ``Vocabulary.EOS``)."""

LEVELS = ("char", "word")
"""The tokenization levels :func:`tokenize` and :func:`detokenize` accept."""

ENCODING_ERRORS = ("strict", "replace", "ignore")

REPLACE_ADVICE = "fix the file or pass --encoding-errors replace"

_BOMS = (  # the UTF-32 LE mark starts with the UTF-16 LE one, so it comes first
    (b"\xff\xfe\x00\x00", "UTF-32", "FF FE 00 00, little-endian"),
    (b"\x00\x00\xfe\xff", "UTF-32", "00 00 FE FF, big-endian"),
    (b"\xff\xfe", "UTF-16", "FF FE, little-endian"),
    (b"\xfe\xff", "UTF-16", "FE FF, big-endian"),
)
_PACKED = (  # magic numbers of compressed files and archives (which need not hold a NUL byte)
    (rb"\x1f\x8b", "gzip-compressed", "gunzip -k"),
    (rb"BZh[1-9]1AY&SY", "bzip2-compressed", "bunzip2 -k"),
    (rb"\xfd7zXZ\x00", "xz-compressed", "unxz -k"),
    (rb"\x28\xb5\x2f\xfd", "zstd-compressed", "unzstd"),
    (rb"PK\x03\x04", "a zip archive", "unzip"),
)
_SNIFF = 1 << 16  # bytes looked at to tell UTF-16/UTF-32 without a byte-order mark from binary data
_STRAY_NULS = 0.05  # UTF-8 text with at most this share of NUL bytes has stray NULs (UTF-16 has far more)
_MAX_DEPTH = 100  # JSON nesting reported as too deep when the parser gives up


def read_text(path: str | os.PathLike[str], *, encoding_errors: str = "strict") -> str:
    """Read a UTF-8 text file, with ``"\\r\\n"`` normalised to ``"\\n"`` and a leading byte-order mark dropped.

    Args:
        path: the file to read.
        encoding_errors: what to do with bytes that are not UTF-8: ``"strict"`` stops with an error that
            names the byte, its offset and its line; ``"replace"`` reads each as U+FFFD; ``"ignore"`` drops them.
            Either way a UTF-16/UTF-32, compressed or binary file (any NUL byte) is an error, not garbage.

    Returns:
        The text.

    Raises:
        RnnkitError: the file is missing, a folder, unreadable, empty (or only whitespace), not UTF-8,
            UTF-16 or UTF-32, compressed, or holds a NUL byte.
    """
    if encoding_errors not in ENCODING_ERRORS:
        raise RnnkitError(
            f"encoding_errors={encoding_errors!r} is not supported: use one of {', '.join(ENCODING_ERRORS)}"
        )
    p = Path(path)
    text = decode_text(p, read_bytes(p), encoding_errors=encoding_errors)
    if not text.strip():
        raise RnnkitError(f"{p} is empty: give a file with text")
    return text


def read_bytes(path: Path, *, what: str = "a text file", max_bytes: int | None = None) -> bytes:
    """The bytes of a file; a missing, folder, unreadable or (with ``max_bytes``) too large file is one line."""
    if not path.exists():
        raise RnnkitError(f"{path}: no such file")
    if path.is_dir():
        raise RnnkitError(f"{path} is a folder: give {what}")
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise RnnkitError(
                f"{path} is {size:,} bytes, more than the {max_bytes:,} rnnkit reads as {what}: give a smaller file"
            )
        return path.read_bytes()
    except OSError as err:
        raise RnnkitError(f"{path}: cannot read the file ({err.strerror or first_line(err)})") from None


def decode_text(path: Path, data: bytes, *, encoding_errors: str = "strict", advice: str = REPLACE_ADVICE) -> str:
    """``data`` (the bytes of ``path``) as UTF-8 text, ``"\\r\\n"`` as ``"\\n"``, without a leading byte-order mark.

    Raises:
        RnnkitError: naming ``path`` and the offset: UTF-16/UTF-32, compressed or binary data (any NUL byte),
            or (with ``encoding_errors="strict"``) a byte that is not UTF-8, followed by ``advice``.
    """
    _check_not_binary(path, data)
    try:
        text = data.decode("utf-8", errors=encoding_errors)
    except UnicodeDecodeError as err:
        offset = err.start
        line = data.count(b"\n", 0, offset) + 1
        raise RnnkitError(
            f"{path}: byte 0x{data[offset]:02x} at offset {offset} (line {line}) is not UTF-8: {advice}"
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def read_json(path: str | os.PathLike[str], *, what: str, max_bytes: int | None = None) -> Any:
    """The value of a UTF-8 JSON file; every problem is one line naming the file (and line and column).

    ``what`` says what the file should be (``"a vocab.json written by rnnkit"``); it ends the messages.
    """
    p = Path(path)
    text = decode_text(p, read_bytes(p, what=what, max_bytes=max_bytes), advice=f"give {what} in UTF-8")
    if not text.strip():
        raise RnnkitError(f"{p} is empty: give {what}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RnnkitError(f"{p}: line {err.lineno}, column {err.colno}: not JSON ({err.msg}): give {what}") from None
    except RecursionError:
        offset = _too_deep(text)
        line, column = text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)
        raise RnnkitError(
            f"{p}: line {line}, column {column}: JSON nested more than {_MAX_DEPTH} levels deep: give {what}"
        ) from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise RnnkitError(f"{p}: not JSON rnnkit can read ({first_line(err)}): give {what}") from None


def short_repr(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to about ``limit`` characters (containers by their type and size), for one-line errors.

    >>> short_repr("x" * 100)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'"
    >>> short_repr([1, [2, 3]])
    'a list of 2 items'
    """
    if isinstance(value, list | tuple | dict | set):
        return f"a {type(value).__name__} of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, str) and len(value) > limit:
        return repr(value[: limit - 2])[:-1] + "...'"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_not_binary(path: Path, data: bytes) -> None:
    quoted = shlex.quote(str(path))
    for mark, encoding, name in _BOMS:
        if data.startswith(mark):
            raise RnnkitError(
                f"{path} looks like {encoding} (byte-order mark {name}): "
                f"convert it with `iconv -f {encoding} -t UTF-8 {quoted} > out.txt`"
            )
    for magic, kind, command in _PACKED:
        if re.match(magic, data):
            raise RnnkitError(f"{path} is {kind}, not text: unpack it first (`{command} {quoted}`)")
    nul = data.find(b"\0")
    if nul < 0:
        return
    if data.count(0) <= _STRAY_NULS * len(data) and _is_utf8(data.replace(b"\0", b"")):
        line = data.count(b"\n", 0, nul) + 1
        raise RnnkitError(
            f"{path}: NUL byte at offset {nul} (line {line}) is not text: "
            f"remove the NUL bytes with `tr -d '\\000' < {quoted} > out.txt`"
        )
    wide = _wide_encoding(data[:_SNIFF])
    if wide:
        raise RnnkitError(
            f"{path} looks like {wide[:6]} ({'little' if wide.endswith('LE') else 'big'}-endian, no byte-order "
            f"mark: NUL bytes between the letters): convert it with `iconv -f {wide} -t UTF-8 {quoted} > out.txt`"
        )
    raise RnnkitError(f"{path} is binary, not text (a NUL byte at offset {nul}): give a UTF-8 text file")


def _wide_encoding(sample: bytes) -> str | None:
    """``"UTF-32LE"`` .. ``"UTF-16BE"`` when a sample without a byte-order mark reads as such text, else None."""
    for encoding, high in (("UTF-32LE", 3), ("UTF-32BE", 0)):  # the top byte of every UTF-32 unit is 0
        if sample[high::4].count(0) == len(sample[high::4]) and _reads_as(sample, encoding, 4):
            return encoding
    # UTF-16: the NULs are the high bytes of ASCII letters, odd offsets in little-endian, even in big-endian;
    # NULs on both sides are binary data (or stray NULs in UTF-8 text)
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    encoding, high, low = ("UTF-16LE", odd, even) if odd > even else ("UTF-16BE", even, odd)
    return encoding if high >= 4 * low and _reads_as(sample, encoding, 2) else None


def _reads_as(sample: bytes, encoding: str, width: int) -> bool:
    text = sample[: len(sample) // width * width].decode(encoding, errors="replace")
    controls = sum(c < " " and c not in "\t\n\r\f\v" for c in text)  # NUL characters included
    return bool(text.strip()) and controls == 0 and text.count("\ufffd") <= 1  # 1: a pair cut at the end


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _too_deep(text: str) -> int:
    """The offset where JSON ``text`` first opens more than ``_MAX_DEPTH`` arrays or objects (0 if it never does)."""
    depth = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{\]}]', text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                return match.start()
        elif bracket in "]}":
            depth -= 1
    return 0


def tokenize(text: str, level: str) -> list[str]:
    """Split text into tokens.

    Args:
        text: the text.
        level: ``"char"``: every character, newlines included as ``"\\n"`` tokens; ``"word"``: each line
            split on whitespace and followed by ``"<eos>"``; blank lines give no tokens.

    Returns:
        The tokens.

    Raises:
        RnnkitError: ``level`` is not one of ``char, word``.

    >>> tokenize("ab\\nc", "char")
    ['a', 'b', '\\n', 'c']
    >>> tokenize("the cat\\n\\n sat \\n", "word")
    ['the', 'cat', '<eos>', 'sat', '<eos>']
    """
    _check_level(level)
    if level == "char":
        return list(text)
    tokens: list[str] = []
    for line in text.split("\n"):
        words = line.split()
        if words:
            tokens += words
            tokens.append(EOS)
    return tokens


def detokenize(tokens: list[str], level: str) -> str:
    """Join tokens back into text for display: the inverse of :func:`tokenize` on normalised text.

    Args:
        tokens: the tokens.
        level: ``"char"``: concatenate; ``"word"``: join words with spaces, each ``"<eos>"`` ends a line.

    Returns:
        The text.

    Raises:
        RnnkitError: ``level`` is not one of ``char, word``.

    >>> detokenize(["the", "cat", "<eos>", "sat", "<eos>"], "word")
    'the cat\\nsat\\n'
    """
    _check_level(level)
    if level == "char":
        return "".join(tokens)
    lines: list[str] = []
    words: list[str] = []
    for token in tokens:
        if token == EOS:
            lines.append(" ".join(words) + "\n")
            words = []
        else:
            words.append(token)
    return "".join(lines) + " ".join(words)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise RnnkitError(f"unknown tokenization level {level!r}: use one of {', '.join(LEVELS)}")
