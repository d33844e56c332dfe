"""Text files and tokens: UTF-8 reading with file:offset errors, char and word tokenizers.

Word level follows the Penn Treebank language-model convention (Mikolov's PTB files, pytorch/examples
``word_language_model``): each line is split on whitespace and ends with one ``<eos>`` token.
"""

from __future__ import annotations

import os
from pathlib import Path

from rnnkit.errors import RnnkitError

EOS = "<eos>"
"""The end-of-line token of word-level text (the same string as ``Vocabulary.EOS``)."""

LEVELS = ("char", "word")
"""The tokenization levels :func:`tokenize` and :func:`detokenize` accept."""

ENCODING_ERRORS = ("strict", "replace", "ignore")


def read_text(path: str | os.PathLike[str], *, encoding_errors: str = "strict") -> str:
    """Read a UTF-8 text file, with ``"\\r\\n"`` normalised to ``"\\n"`` and a leading byte-order mark dropped.

    Args:
        path: the file to read.
        encoding_errors: what to do with bytes that are not UTF-8: ``"strict"`` stops with an error that
            names the byte, its offset and its line; ``"replace"`` reads each as U+FFFD; ``"ignore"`` drops them.

    Returns:
        The text.

    Raises:
        RnnkitError: the file is missing, a folder, unreadable, empty (or only whitespace), or not UTF-8.
    """
    if encoding_errors not in ENCODING_ERRORS:
        raise RnnkitError(
            f"encoding_errors={encoding_errors!r} is not supported: use one of {', '.join(ENCODING_ERRORS)}"
        )
    p = Path(path)
    if not p.exists():
        raise RnnkitError(f"{p}: no such file")
    if p.is_dir():
        raise RnnkitError(f"{p} is a folder: give a text file")
    try:
        data = p.read_bytes()
    except OSError as err:
        raise RnnkitError(f"{p}: cannot read the file ({err.strerror})") from None
    try:
        text = data.decode("utf-8", errors=encoding_errors)
    except UnicodeDecodeError as err:
        offset = err.start
        line = data.count(b"\n", 0, offset) + 1
        raise RnnkitError(
            f"{p}: byte 0x{data[offset]:02x} at offset {offset} (line {line}) is not UTF-8: "
            "fix the file or pass --encoding-errors replace"
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise RnnkitError(f"{p} is empty: give a file with text")
    return text


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
