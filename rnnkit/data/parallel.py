"""Parallel text for translation: two files that align line by line, the fairseq/OpenNMT convention.

A corpus is a prefix and two language codes: ``--train data/train --src-lang de --tgt-lang en`` reads
``data/train.de`` (the source sentences) and ``data/train.en`` (their translations), one sentence a line, line
``n`` of one file the translation of line ``n`` of the other. Lines are read as UTF-8 through
:func:`rnnkit.data.text.read_text`, with line ends and surrounding whitespace stripped; a final newline ends the
last line (it does not start an empty one), so a file with or without one reads the same.

Files of different line counts are an error naming both counts; pairs with an empty side are skipped with one
warning giving their count, and each kept pair remembers its line number for later error messages.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.data.text import read_text
from rnnkit.errors import RnnkitError

PathLike = str | os.PathLike[str]

_LISTED = 8  # files named in the hint of a missing-file error; more are counted, not listed


@dataclass
class ParallelText:
    """Aligned sentences: ``src[i]`` translates to ``tgt[i]``, read from line ``lines[i]`` (1-based) of both files."""

    src: list[str]
    tgt: list[str]
    skipped: int = 0  # pairs left out because one side (or both) was empty
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.src)


def read_parallel(src_path: PathLike, tgt_path: PathLike, *, skip_empty: bool = True) -> ParallelText:
    """Read a source file and its line-by-line translation.

    Args:
        src_path: the source-language file, one sentence a line.
        tgt_path: the target-language file, aligned with ``src_path``.
        skip_empty: leave out the pairs where either line is empty (or only whitespace), with one warning
            giving their count; False keeps them, as ``""``.

    Returns:
        The pairs, stripped of surrounding whitespace, with their line numbers.

    Raises:
        RnnkitError: a file is missing, empty or not UTF-8 text (see :func:`read_text`), the two files have
            different line counts, or no pair has text on both sides.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "train.de").write_text("Ein Hund.\\n\\nZwei Katzen.\\n")
    >>> _ = (folder / "train.en").write_text("A dog.\\nA cat.\\nTwo cats.")  # no final newline: the same 3 lines
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     pairs = read_parallel(*parallel_paths(folder / "train", "de", "en"))
    >>> pairs.src, pairs.tgt, pairs.lines, pairs.skipped
    (['Ein Hund.', 'Zwei Katzen.'], ['A dog.', 'Two cats.'], [1, 3], 1)
    """
    src_path, tgt_path = Path(src_path), Path(tgt_path)
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise RnnkitError(
            f"{src_path} has {len(src):,} lines but {tgt_path} has {len(tgt):,}: "
            f"the files of a parallel corpus must align line by line{_blank_tail(src_path, src, tgt_path, tgt)}"
        )
    if not skip_empty:
        return ParallelText(src, tgt, 0, list(range(1, len(src) + 1)))
    kept = [n for n, (s, t) in enumerate(zip(src, tgt, strict=True), 1) if s and t]
    if not kept:
        raise RnnkitError(
            f"{src_path} and {tgt_path}: no line has text in both files: give aligned sentences, one pair a line"
        )
    skipped = len(src) - len(kept)
    if skipped:
        warnings.warn(
            f"{src_path}, {tgt_path}: skipped {skipped:,} sentence pair{'s' * (skipped != 1)} "
            "(an empty line in either file)",
            stacklevel=2,
        )
    return ParallelText([src[n - 1] for n in kept], [tgt[n - 1] for n in kept], skipped, kept)


def _blank_tail(src_path: Path, src: list[str], tgt_path: Path, tgt: list[str]) -> str:
    """A hint when the longer file's extra lines are all empty lines at its end (a common copy-paste slip)."""
    path, longer, shorter = (src_path, src, tgt) if len(src) > len(tgt) else (tgt_path, tgt, src)
    if any(longer[len(shorter) :]):
        return ""
    extra = len(longer) - len(shorter)
    if extra == 1:
        return f" (the last line of {path} is empty: delete it)"
    return f" (the last {extra:,} lines of {path} are empty: delete them)"


def read_lines(path: PathLike) -> list[str]:
    """The lines of one file, stripped of surrounding whitespace; empty lines stay, as ``""``.

    A final newline ends the last line rather than starting an empty one. For the source sentences of
    ``predict`` and ``eval``, where an empty line still needs its (empty) output line.

    Raises:
        RnnkitError: the file is missing, empty or not UTF-8 text (see :func:`read_text`).
    """
    lines = read_text(path).split("\n")  # not splitlines(): it also breaks at \f, \x1c, U+2028 ... inside a line
    if lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def parallel_paths(prefix: PathLike, src_lang: str, tgt_lang: str, *, flag: str = "--train") -> tuple[Path, Path]:
    """``PREFIX.SRC`` and ``PREFIX.TGT``, checked to exist.

    Args:
        prefix: the corpus prefix (``data/train``), without a language suffix.
        src_lang: the source language code, the suffix of the source file (``de``).
        tgt_lang: the target language code (``en``).
        flag: the command-line option that gave ``prefix``, named in errors (``--train``, ``--valid``).

    Returns:
        The source and the target path.

    Raises:
        RnnkitError: a language code is empty, holds a path separator or both are the same; or a file is
            missing: the message names it and lists the files of that folder whose names start with the prefix.

    >>> parallel_paths("/nonexistent/train", "de", "en")
    Traceback (most recent call last):
      ...
    rnnkit.errors.RnnkitError: no /nonexistent/train.de or /nonexistent/train.en (from --train /nonexistent/train, \
--src-lang de and --tgt-lang en); no folder /nonexistent
    """
    _check_langs(src_lang, tgt_lang)
    paths = (Path(f"{prefix}.{src_lang}"), Path(f"{prefix}.{tgt_lang}"))
    options = {"--src-lang": src_lang, "--tgt-lang": tgt_lang}
    missing = [(path, option) for path, option in zip(paths, options, strict=True) if not path.exists()]
    if missing:
        names = " or ".join(str(path) for path, _ in missing)
        sources = [f"{flag} {prefix}", *(f"{option} {options[option]}" for _, option in missing)]
        given = ", ".join(sources[:-1]) + f" and {sources[-1]}"
        raise RnnkitError(f"no {names} (from {given}); {_similar_files(Path(prefix), flag, (src_lang, tgt_lang))}")
    return paths


def _check_langs(src_lang: str, tgt_lang: str) -> None:
    for option, lang in (("--src-lang", src_lang), ("--tgt-lang", tgt_lang)):
        if not lang or not lang.strip() or "/" in lang or os.sep in lang:
            raise RnnkitError(f"{option} {lang!r} is not a language code: give the file suffix, such as de or en")
    if src_lang == tgt_lang:
        raise RnnkitError(f"--src-lang and --tgt-lang are both {src_lang}: give two different languages")


def _similar_files(prefix: Path, flag: str, langs: tuple[str, str]) -> str:
    """What is there instead: the files whose names start with the prefix's name, as a hint against typos."""
    folder = prefix.parent
    if not folder.is_dir():
        return f"no folder {folder}"
    found = sorted(p for p in folder.iterdir() if p.name.startswith(prefix.name) and p.is_file())
    if not found:
        return f"no file in {folder} has a name starting with {prefix.name!r}"
    shown = ", ".join(str(p) for p in found[:_LISTED])
    more = f" and {len(found) - _LISTED:,} more" if len(found) > _LISTED else ""
    hint = f"found {shown}{more}"
    lang = next((lang for lang in langs if prefix.name.endswith(f".{lang}")), None)
    if lang:  # --train data/train.de: the language suffix is added, not given
        hint += f"; {flag} takes the prefix without the language: {flag} {str(prefix)[: -len(lang) - 1]}"
    return hint
