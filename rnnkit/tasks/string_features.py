"""Contextual string features (Akbik et al. 2018, Flair's embeddings): each word's vector read from frozen
character language models of the whole sentence.

A forward character LM reads the sentence as one string, ``"\\n" + "w1 w2 ... wn"`` (the newline is what precedes
a line in its training text); word i's forward feature is the LM's top-layer output just after the word's last
character, so it has read the sentence up to and including the word. A backward LM (one trained on each line's
characters reversed, ``benchmarks/pretrain_lm.py --level char --direction backward``) reads ``"\\n" + "nw ... 1w"``;
word i's backward feature is its output just after the word's first character, so it has read the rest of the
sentence and the word. The two side by side are the word's feature (Flair's ``[h_f; h_b]``).

The LMs are frozen: their weights are copied into the task's model when a run starts (so the run needs their
folders only then), never trained, and run without dropout or gradients. Words reach them as characters: the
task's character ids are mapped to the LM's (a character the LM lacks reads as its lower-case form, else as the
LM's ``<unk>``).

Shapes: B sentences of at most T words, N = sum(lengths) words in sentence order, U distinct words of at most C
characters (each word's row given by ``char_index``), L = the longest sentence in characters + 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.config import build, to_dict
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError
from rnnkit.io import read_json, write_json
from rnnkit.tasks.lm import LanguageModel, LMConfig

__all__ = ["CharLM", "CharLMs", "StringFeatures", "character_vocabulary", "sentence_strings"]

DIRECTIONS = ("forward", "backward")

#: the help of the data options that add the features (tag)
CHAR_LM_HELP = (
    "an rnnkit lm run of characters (lm train --level char): its frozen states are a feature of each word "
    "(contextual string embeddings, Akbik et al. 2018)"
)
CHAR_LM_BACKWARD_HELP = "an rnnkit character lm run of reversed lines: the backward half of --char-lm's features"


@dataclass
class CharLM:
    """What a character LM's architecture is: its config and its characters (``vocab.json``'s tokens)."""

    config: LMConfig
    tokens: list[str]


@dataclass
class CharLMs:
    """A run's character LMs by direction (``forward``, ``backward``, or both), saved as ``char_lms.json``."""

    lms: dict[str, CharLM]

    @classmethod
    def from_runs(cls, forward: str | Path | None, backward: str | Path | None) -> CharLMs | None:
        """The architectures of the LM run folders given (None when neither is), checked to be character LMs."""
        lms = {}
        for direction, path in zip(DIRECTIONS, (forward, backward), strict=True):
            if path is not None:
                run = _char_lm_run(Path(path), load=False)
                lms[direction] = CharLM(run.model_config, list(run.vocab.tokens))
        return cls(lms) if lms else None

    def save(self, path: str | Path) -> None:
        payload = {d: {"config": to_dict(lm.config), "tokens": lm.tokens} for d, lm in self.lms.items()}
        write_json(path, {"format": "rnnkit-char-lms", "version": 1} | payload)

    @classmethod
    def in_run(cls, run_dir: Path) -> CharLMs | None:
        """A run folder's ``char_lms.json``, or None for a run without character LMs."""
        return cls.load(run_dir / "char_lms.json") if (run_dir / "char_lms.json").exists() else None

    @classmethod
    def load(cls, path: str | Path) -> CharLMs:
        payload = read_json(path, what="rnnkit run file")
        if not isinstance(payload, dict) or payload.get("format") != "rnnkit-char-lms":
            raise RnnkitError(f"{path}: not an rnnkit char_lms.json; restore it from the run's copy")
        try:
            lms = {
                d: CharLM(build(LMConfig, (payload[d]["config"], str(path))), [str(t) for t in payload[d]["tokens"]])
                for d in DIRECTIONS
                if d in payload
            }
        except (KeyError, TypeError) as err:
            raise RnnkitError(f"{path}: malformed ({err!r}); restore it from the run's copy") from None
        return cls(lms)


def character_vocabulary(words: Iterable[str], lms: CharLMs | None) -> Vocabulary:
    """A new run's characters: those of its training ``words``, then those only its character ``lms`` know, so that
    a word with a character unseen in training still reaches the LMs as itself, not as ``<unk>``."""
    vocab = Vocabulary.build(c for w in words for c in w)
    known = [] if lms is None else [c for lm in lms.lms.values() for c in lm.tokens]
    extra = [c for c in dict.fromkeys(known) if c not in vocab and c not in _NOT_TEXT]  # (seen 0 times in training)
    return Vocabulary([*vocab.tokens, *extra], [*vocab.counts, *[0] * len(extra)])


_NOT_TEXT = {*Vocabulary.SPECIALS, "\n", " "}  # an LM's characters that never occur inside a word


def _char_lm_run(path: Path, *, load: bool = True) -> Any:
    from rnnkit.tasks import registry
    from rnnkit.tasks.lm_run import check_lm_run

    check_lm_run(path, "a folder of rnnkit lm train --level char")
    run = registry.load_run(path) if load else _configs_only(path)
    if run.data.level != "char":
        raise RnnkitError(f"{path} is a {run.data.level}-level LM: give a character LM (rnnkit lm train --level char)")
    if " " not in run.vocab:
        raise RnnkitError(f"{path}: the LM has never read a space, so it cannot read sentences of words")
    return run


def _configs_only(path: Path) -> Any:
    """An LM run folder's configs and vocabulary, without its weights."""
    from types import SimpleNamespace

    from rnnkit.tasks import lm_run, runs

    cfg = runs.read_configs(lm_run.SPEC, path)
    return SimpleNamespace(data=cfg["data"], model_config=cfg["model"], vocab=Vocabulary.load(path / "vocab.json"))


def sentence_strings(
    word_chars: Tensor, word_lengths: Tensor, lengths: Tensor, *, space: int, boundary: int, pad: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The sentences as character strings, forward and reversed, and where each word is in them.

    ``word_chars`` (N, C) holds the N words' characters in sentence order, ``word_lengths`` (N,) how many each
    has (at least 1), ``lengths`` (B,) each sentence's words. Returns ``forward`` and ``backward`` (B, L): row b is
    ``boundary`` followed by sentence b's words joined by ``space`` (reversed whole in ``backward``), ``pad``
    after; ``last`` (N,) the column of each word's last character in ``forward``, and ``first`` (N,) the column of
    its first character in ``backward``.

    >>> words = torch.tensor([[5, 6], [7, 0], [8, 0]])          # "ab", "c" | "d"; space 1, boundary 2
    >>> fwd, bwd, last, first = sentence_strings(words, torch.tensor([2, 1, 1]), torch.tensor([2, 1]),
    ...                                          space=1, boundary=2)
    >>> fwd.tolist(), bwd.tolist(), last.tolist(), first.tolist()
    ([[2, 5, 6, 1, 7], [2, 8, 0, 0, 0]], [[2, 7, 1, 6, 5], [2, 8, 0, 0, 0]], [2, 4, 1], [4, 1, 1])
    """
    N, C = word_chars.shape
    B, device = len(lengths), word_chars.device
    sentence = torch.repeat_interleave(torch.arange(B, device=device), lengths)  # (N,) each word's sentence
    first_word = torch.cumsum(lengths, 0) - lengths  # (B,) each sentence's first word in the N
    is_last = torch.arange(N, device=device) == (first_word + lengths - 1)[sentence]
    spaced = word_lengths + (~is_last).long()  # each word's characters, and a space after all but the last
    rows = torch.cat([word_chars, word_chars.new_full((N, 1), pad)], dim=1)  # (N, C + 1)
    rows[torch.arange(N, device=device), word_lengths] = torch.where(is_last, pad, space)
    flat = rows[torch.arange(C + 1, device=device) < spaced.unsqueeze(1)]  # every sentence's characters in a row
    totals = torch.zeros(B, dtype=torch.long, device=device).index_add_(0, sentence, spaced)  # (B,)
    word_start = torch.cumsum(spaced, 0) - spaced  # (N,) in ``flat``
    sentence_start = torch.cumsum(totals, 0) - totals  # (B,) in ``flat``
    owner = torch.repeat_interleave(torch.arange(B, device=device), totals)  # (sum totals,)
    column = torch.arange(len(flat), device=device) - sentence_start[owner] + 1  # 1 .. totals[b]
    L = 1 + int(totals.max()) if B else 1
    forward = word_chars.new_full((B, L), pad)
    forward[:, 0] = boundary
    backward = forward.clone()
    forward[owner, column] = flat
    backward[owner, totals[owner] + 1 - column] = flat
    start = word_start - sentence_start[sentence] + 1  # (N,) each word's first character's column in ``forward``
    last = start + word_lengths - 1
    first = totals[sentence] + 1 - start
    return forward, backward, last, first


class StringFeatures(nn.Module):
    """Frozen character LMs (see the module) over the task's characters ``chars`` (its ``chars.json`` tokens);
    ``output_size`` features per word.

    >>> lm = CharLM(LMConfig(hidden=8, layers=1, embed=4), list(Vocabulary.SPECIALS) + ["\\n", " ", "a", "b"])
    >>> features = StringFeatures(CharLMs({"forward": lm, "backward": lm}), list(Vocabulary.SPECIALS) + ["a", "b"])
    >>> chars = torch.tensor([[4, 5], [5, 0]])                    # "ab", "b": one sentence of two words
    >>> features(chars, torch.tensor([2, 1]), torch.tensor([2])).shape
    torch.Size([1, 2, 16])
    """

    def __init__(self, lms: CharLMs, chars: Sequence[str]) -> None:
        super().__init__()
        self.directions = tuple(d for d in DIRECTIONS if d in lms.lms)
        self.lms = nn.ModuleDict()
        self.output_size = 0
        for d in self.directions:
            spec = lms.lms[d]
            model = LanguageModel(len(spec.tokens), spec.config, level="char")
            self.lms[f"{d}_lm"] = model  # ("forward" is a method of ModuleDict)
            self.output_size += model.decoder.in_features
            ids = {t: i for i, t in enumerate(spec.tokens)}
            unk = ids.get(Vocabulary.UNK, 1)
            mapping = [ids.get(c, ids.get(c.lower(), unk)) for c in chars]
            mapping[0] = ids.get(Vocabulary.PAD, 0)  # the task's padding is the LM's
            self.register_buffer(f"map_{d}", torch.tensor(mapping, dtype=torch.long), persistent=False)
            self.register_buffer(f"marks_{d}", torch.tensor([ids.get(" ", unk), ids.get("\n", unk)]), persistent=False)
        self.requires_grad_(False)
        self.memory: dict[bytes, Tensor] = {}  # a sentence's characters -> its features (T, D); see remember()
        self.pending: list = []  # the batches remember() was given, until the first forward computes them

    def copy_from(self, forward: str | Path | None, backward: str | Path | None) -> str:
        """The LM runs' weights into this module (when a run starts); one line saying what was read."""
        said = []
        for d, path in zip(DIRECTIONS, (forward, backward), strict=True):
            if path is not None:
                run = _char_lm_run(Path(path))
                self.lms[f"{d}_lm"].load_state_dict(run.model.state_dict())
                said.append(f"{Path(path).name} ({d}, {self.lms[f'{d}_lm'].decoder.in_features} units)")
        return "frozen character LM features from " + " and ".join(said)

    def start(self, data: Any, batches: Iterable[tuple[Tensor, Tensor, Tensor, Tensor | None]], *, new: bool) -> str:
        """What a training run does with the features when it starts: a new run copies the LMs of
        ``data.char_lm``/``data.char_lm_backward`` (a resumed one has them in its checkpoint); both
        :meth:`remember` ``batches``. One line saying what was done."""
        copied = [self.copy_from(data.char_lm, data.char_lm_backward)] if new else []
        return "; ".join([*copied, self.remember(batches)])

    def remember(self, batches: Iterable[tuple[Tensor, Tensor, Tensor, Tensor | None]], *, limit: int = 2**30) -> str:
        """Keep the features of every sentence of ``batches`` ((chars, char_lengths, lengths, char_index) as
        :meth:`forward` takes them): from then on a batch of sentences all remembered is read, not computed
        (Flair's embedding storage). They are computed at the first call of :meth:`forward`, once the LMs' weights
        are in (a resumed run's come from its checkpoint), in these batches. The LMs are frozen and
        deterministic, so a training run sees the same features either way; computed in the same fixed batches
        again on resume, they keep a resumed run exact. Nothing is kept when the features would take more than
        ``limit`` floats. Returns one line saying what will be kept."""
        batches = list(batches)
        words = sum(int(b[2].sum()) for b in batches)
        if words * self.output_size > limit:
            return f"character LM features of {words:,} words computed at every batch (over {limit * 4 >> 30} GiB)"
        self.pending = batches
        mib = words * self.output_size * 4 / 2**20
        return f"character LM features of {sum(len(b[2]) for b in batches):,} sentences kept in memory ({mib:,.0f} MiB)"

    def _fill(self) -> None:
        pending, self.pending = self.pending, []
        for chars, char_lengths, lengths, index in pending:
            features = self._compute(chars, char_lengths, lengths, index, 0)
            for key, n, row in zip(_keys(chars, char_lengths, lengths, index), lengths.tolist(), features, strict=True):
                self.memory[key] = row[:n].clone()

    @torch.no_grad()
    def forward(
        self, chars: Tensor, char_lengths: Tensor, lengths: Tensor, char_index: Tensor | None = None, width: int = 0
    ) -> Tensor:
        """chars (U, C), char_lengths (U,), lengths (B,), char_index (N,) or None (U = N) -> (B, T, output_size),
        zeros after each length; T is the longest length, or ``width`` when larger."""
        if self.pending:
            self._fill()
        if self.memory:
            B, T = len(lengths), max(int(lengths.max()) if len(lengths) else 0, width)
            kept = [self.memory.get(key) for key in _keys(chars, char_lengths, lengths, char_index)]
            if all(row is not None for row in kept):
                out = chars.new_zeros(B, T, self.output_size, dtype=kept[0].dtype if kept else torch.float32)
                for b, row in enumerate(kept):
                    out[b, : len(row)] = row
                return out
        return self._compute(chars, char_lengths, lengths, char_index, width)

    def _compute(
        self, chars: Tensor, char_lengths: Tensor, lengths: Tensor, char_index: Tensor | None, width: int
    ) -> Tensor:
        """:meth:`forward` without the memory: the LMs run."""
        B, T = len(lengths), max(int(lengths.max()) if len(lengths) else 0, width)
        if char_index is not None:
            chars, char_lengths = chars[char_index], char_lengths[char_index]
        lengths = lengths.to(chars.device)
        sentence = torch.repeat_interleave(torch.arange(B, device=chars.device), lengths)
        position = torch.arange(len(chars), device=chars.device) - (torch.cumsum(lengths, 0) - lengths)[sentence]
        out = []
        for d in self.directions:
            space, boundary = getattr(self, f"marks_{d}").tolist()
            ids = getattr(self, f"map_{d}")[chars]
            strings = sentence_strings(ids, char_lengths, lengths, space=space, boundary=boundary)
            h = self._top(self.lms[f"{d}_lm"], strings[0] if d == "forward" else strings[1])  # (B, L, H)
            at = strings[2] if d == "forward" else strings[3]
            words = h.new_zeros(B, T, h.shape[-1])
            words[sentence, position] = h[sentence, at]
            out.append(words)
        return torch.cat(out, dim=-1)

    @staticmethod
    def _top(lm: LanguageModel, strings: Tensor) -> Tensor:
        """The LM's top-layer output at every character of ``strings`` (B, L): (B, L, H)."""
        h = lm.embedding(strings.t())  # (L, B, E): the LM's layers are time-first
        for layer in lm.layers:
            h, _ = layer(h)
        return h.transpose(0, 1)


def _keys(chars: Tensor, char_lengths: Tensor, lengths: Tensor, char_index: Tensor | None) -> list[bytes]:
    """Each sentence's characters (its words' lengths and ids) as bytes: what :attr:`StringFeatures.memory` is
    keyed by."""
    if char_index is not None:
        chars, char_lengths = chars[char_index], char_lengths[char_index]
    keys, start = [], 0
    for n in lengths.tolist():
        rows, sizes = chars[start : start + n], char_lengths[start : start + n]
        flat = rows[torch.arange(rows.shape[1], device=rows.device) < sizes.unsqueeze(1)]
        keys.append(sizes.cpu().numpy().tobytes() + b"|" + flat.cpu().numpy().tobytes())
        start += n
    return keys
