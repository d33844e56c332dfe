"""Subwords: a sentencepiece model (BPE or unigram) learned on the training text, that splits text into pieces.

sentencepiece only splits: :meth:`Subwords.encode` turns text into pieces (strings such as ``"▁Hund"``, where
``▁`` marks a word start) and :meth:`Subwords.decode` joins pieces back into text. The ids the network sees come
from an rnnkit :class:`~rnnkit.data.vocab.Vocabulary` built over the pieces, which owns ``<pad>``, ``<unk>``,
``<bos>`` and ``<eos>``: the sentencepiece model defines none of these but the ``<unk>`` it cannot do without,
and that is never emitted (text sentencepiece does not know comes back as its own surface string, which the
Vocabulary maps to its ``<unk>``).

Text is normalized the sentencepiece way (``nmt_nfkc``: NFKC, so ``…`` becomes ``...``; runs of whitespace
become one space) before it is split, so ``decode(encode(text)) == text`` holds for text that NFKC leaves alone
with single spaces between words, which is nearly all text.

The file format is sentencepiece's own: the serialized ``ModelProto`` (what ``spm_train`` writes as ``.model``),
never a pickle, written atomically.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from pathlib import Path

from rnnkit.data.text import read_bytes
from rnnkit.errors import RnnkitError
from rnnkit.io import check_output_path, first_line, write_atomically

PathLike = str | os.PathLike[str]

MODEL_TYPES = ("bpe", "unigram")
WORD_START = "\u2581"
"""``▁``, the mark sentencepiece puts where a space was, at the start of a piece."""

_MAX_MODEL_BYTES = 256 << 20  # a sentencepiece model of a million pieces is about 20 MB
_SP_LINE = 4192  # sentencepiece's default max_sentence_length (bytes): longer lines it would skip silently
_QUIET = 2  # sentencepiece's log levels: 0 info (hundreds of lines), 1 warning, 2 error


class Subwords:
    """A sentencepiece model that splits text into subword pieces and joins pieces back into text.

    Args:
        proto: the serialized sentencepiece model (the bytes of a ``.model`` file).
        name: what ``proto`` came from (a file name), named in the error.

    Raises:
        RnnkitError: ``proto`` is not a sentencepiece model.

    >>> subwords = Subwords.train(["ein Hund", "zwei Hunde", "ein Haus"] * 10, vocab_size=20, model_type="bpe")
    >>> subwords.encode("ein Hund")
    ['▁ein', '▁Hund']
    >>> subwords.decode(subwords.encode("zwei Hunde im Haus"))
    'zwei Hunde im Haus'
    """

    def __init__(self, proto: bytes, *, name: str = "the given bytes") -> None:
        import sentencepiece  # imported here: the CLI starts without it

        self._proto = bytes(proto)
        self._sp = sentencepiece.SentencePieceProcessor()
        reason = "the file is empty" if not proto else None
        if reason is None:
            try:
                self._sp.LoadFromSerializedProto(self._proto)
            except RuntimeError as err:
                reason = "it does not parse" if "ParseFromArray" in str(err) else _sp_reason(err)
        if reason is not None:
            raise RnnkitError(
                f"{name} is not a sentencepiece model: {reason}: give a .model file written by rnnkit or spm_train"
            )

    @classmethod
    def train(
        cls,
        lines: Iterable[str],
        *,
        vocab_size: int,
        model_type: str = "bpe",
        character_coverage: float = 1.0,
        threads: int = 4,
    ) -> Subwords:
        """Learn subwords from text, in memory and quietly.

        Training is deterministic: the same lines and arguments give the same pieces. It samples nothing (every
        line is used, however long), but a unigram model depends on ``threads``, so the default is a fixed
        number, not the machine's core count.

        Args:
            lines: the training text, one sentence an item; blank items are left out.
            vocab_size: the number of pieces, sentencepiece's ``<unk>`` included (``--subword-vocab``).
            model_type: ``"bpe"`` or ``"unigram"``.
            character_coverage: the share of the text's characters that get a piece of their own; the rest
                encode as themselves, unknown to the model. 1.0 keeps every character (right for European
                languages); 0.9995 is usual for Chinese or Japanese.
            threads: sentencepiece's training threads.

        Returns:
            The model.

        Raises:
            RnnkitError: a bad argument, no text, or ``vocab_size`` too large for the text (the message says
                the largest possible) or smaller than the number of its distinct characters.
        """
        _check_train_args(vocab_size, model_type, character_coverage, threads)
        sentences = [line for line in lines if line.strip()]
        if not sentences:
            raise RnnkitError("no text to learn subwords from: give training sentences that are not empty")
        return cls(_train_proto(sentences, vocab_size, model_type, character_coverage, threads), name="trained model")

    # -- splitting --------------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[str]:
        """The pieces of ``text`` (normalized first: see the module docstring); ``""`` gives ``[]``."""
        return self._sp.encode(text, out_type=str)

    def decode(self, pieces: Iterable[str]) -> str:
        """Join pieces into text: each ``▁`` becomes a space, runs of spaces become one, none at either end.

        Any strings are accepted, not only the model's pieces (an rnnkit ``<unk>`` stays ``"<unk>"``), so it
        works on what a network outputs; sentencepiece's own ``decode_pieces`` would keep the ``▁`` of a piece
        the model does not know.
        """
        text = "".join(pieces).replace(WORD_START, " ")
        return re.sub(" {2,}", " ", text).strip(" ")

    @property
    def pieces(self) -> tuple[str, ...]:
        """The model's pieces in its id order, without its ``<unk>`` (and any control pieces)."""
        sp = self._sp
        return tuple(
            sp.id_to_piece(i)
            for i in range(sp.get_piece_size())
            if not (sp.is_unknown(i) or sp.is_control(i) or sp.is_unused(i))
        )

    # -- files ------------------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The serialized sentencepiece model: the bytes of a ``.model`` file."""
        return self._proto

    def save(self, path: PathLike) -> None:
        """Write the model to ``path`` atomically (a temporary file beside it, fsync, rename)."""
        path = check_output_path(path)
        write_atomically(path, lambda tmp: tmp.write_bytes(self._proto))

    @classmethod
    def load(cls, path: PathLike) -> Subwords:
        """Read a model written by :meth:`save` (or by ``spm_train``).

        Raises:
            RnnkitError: the file is missing, a folder, unreadable, or not a sentencepiece model; the message
                names the file.
        """
        path = Path(path)
        return cls(read_bytes(path, what="a sentencepiece model", max_bytes=_MAX_MODEL_BYTES), name=str(path))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Subwords):
            return NotImplemented
        return self._proto == other._proto

    __hash__ = None  # type: ignore[assignment]  # equality by value, like Vocabulary

    def __repr__(self) -> str:
        return f"Subwords({self._sp.get_piece_size()} pieces)"


def _check_train_args(vocab_size: int, model_type: str, character_coverage: float, threads: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise RnnkitError(f"--subword-vocab must be an integer of at least 2, got {vocab_size!r}")
    if model_type not in MODEL_TYPES:
        raise RnnkitError(f"unknown subword model type {model_type!r}: use one of {', '.join(MODEL_TYPES)}")
    if not 0 < character_coverage <= 1:
        raise RnnkitError(f"character_coverage must be in (0, 1], got {character_coverage!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise RnnkitError(f"threads must be a positive integer, got {threads!r}")


def _train_proto(
    sentences: list[str], vocab_size: int, model_type: str, character_coverage: float, threads: int
) -> bytes:
    """The serialized model sentencepiece learns; its errors become one rnnkit line."""
    import sentencepiece

    longest = max(len(s.encode("utf-8")) for s in sentences)
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            num_threads=threads,
            # only <unk> (sentencepiece needs one); rnnkit's Vocabulary owns <pad>, <bos> and <eos>
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            input_sentence_size=0,  # use every sentence: sampling would make the pieces depend on a seed
            max_sentence_length=max(longest, _SP_LINE),  # longer lines would be skipped, with only a log line
            minloglevel=_QUIET,
        )
    except RuntimeError as err:
        raise RnnkitError(_train_problem(err, vocab_size)) from None
    return model.getvalue()


def _train_problem(err: RuntimeError, vocab_size: int) -> str:
    """sentencepiece's training error as one line that says which flag to change, and to what."""
    reason = _sp_reason(err)
    too_high = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", reason)
    if too_high:
        most = int(too_high.group(2))
        return (
            f"--subword-vocab {vocab_size:,} is too large for the training text: sentencepiece can learn at most "
            f"{most:,} pieces from it: lower --subword-vocab to {most:,} or less"
        )
    too_low = re.search(r"smaller than required_chars\. \d+ vs (\d+)", reason)
    if too_low:
        least = int(too_low.group(1))
        return (
            f"--subword-vocab {vocab_size:,} is too small for the training text: each of its {least - 1:,} "
            f"characters needs a piece, and <unk> one more: raise --subword-vocab to at least {least:,}"
        )
    return f"sentencepiece could not learn subwords: {reason}"


def _sp_reason(err: BaseException) -> str:
    """The message of a sentencepiece error without its status and source location, e.g. ``unk is not defined``.

    >>> _sp_reason(RuntimeError("INTERNAL: src/x.cc(678) [(a) == (b)] Vocabulary size too high (9)."))
    'Vocabulary size too high (9).'
    >>> _sp_reason(RuntimeError("INTERNAL: src/x.cc(617) [!required_chars_.empty()] "))
    'check !required_chars_.empty() failed'
    """
    text = first_line(err)
    match = re.match(r"[A-Z_]+: (?:\S+\(\d+\) \[(.*)\] ?)?(.*)$", text)
    if not match:
        return text
    return match.group(2).strip() or f"check {match.group(1)} failed"
