"""Sequence tagging (many-to-many, aligned): one tag per word, and optionally one intent per sentence.

Shapes: B sentences, T words (the longest's), K tags, F a word's features (its embedding, plus 2H_c with
characters), W = (2k+1)F with a context window of k words each side, H_o the encoder's output per word.

    words (B, T) -> embedding (+ character BiLSTM) (B, T, F) -> context window (B, T, W)
      -> recurrent layers, any cell (or, with ``cell="none"``, a feed-forward MLP: the one-to-one baseline)
      -> linear emissions (B, T, K) -> a softmax per word, or a CRF over the sentence (Viterbi decoding)
      -> with ``intent``: mean or last pooling of the outputs -> linear (B, I)

The loss is summed over words (cross-entropy, or the CRF's negative log-likelihood), plus the intent
cross-entropy summed over sentences; the trainer divides it by the number of words. Padding never changes a
real word's emissions or tags: the recurrent layers take the lengths, the window sees zeros beyond each
sentence, and the character features are computed for real words only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import CELLS
from rnnkit.compat import make_layer
from rnnkit.config import MAX_WIDTH, check_fields, option
from rnnkit.data.batching import pad_batch, pad_unique
from rnnkit.data.tags import is_span_tag
from rnnkit.errors import RnnkitError
from rnnkit.resources import count_params
from rnnkit.tasks.base import LossOutput, Task, encoder_lr_option, scaled_groups
from rnnkit.tasks.char_encoder import CharEncoder
from rnnkit.tasks.crf import CRF, bio_constraints
from rnnkit.tasks.regularization import RareWordDropout, rare_word_dropout_option

__all__ = ["SequenceTagger", "TagBatch", "TagConfig", "collate", "context_window", "tagging_scores"]

TAG_CELLS = ("none", *CELLS)


@dataclass
class TagConfig:
    cell: str = option(
        "lstm", "recurrent cell; none: the feed-forward window baseline (no recurrence)", choices=TAG_CELLS
    )
    hidden: int = option(
        100, "units per recurrent layer (per direction), or per MLP layer with --cell none", ge=1, le=MAX_WIDTH
    )
    layers: int = option(1, "stacked recurrent (or MLP) layers", ge=1, le=100)
    embed: int = option(100, "word embedding size", ge=1, le=MAX_WIDTH)
    bidirectional: bool = option(False, "also read each sentence backwards (--cell lstm: a BiLSTM tagger)")
    dropout: float = option(0.0, "dropout on the word features and on each layer's output", ge=0, lt=1)
    rare_word_dropout: float = rare_word_dropout_option()
    crf: bool = option(False, "a CRF output layer (Viterbi decoding, BIO constraints) instead of a softmax per word")
    char: bool = option(False, "add a character BiLSTM feature to each word (Lample et al. 2016)")
    char_embed: int = option(25, "character embedding size (with --char)", ge=1, le=MAX_WIDTH)
    char_hidden: int = option(25, "character LSTM units per direction (with --char)", ge=1, le=MAX_WIDTH)
    encoder_lr: float = encoder_lr_option()
    window: int = option(0, "context window k: each word's input is words t-k..t+k (Mesnil et al. 2015)", ge=0, le=50)
    intent: bool = option(False, "also predict each sentence's intent (the ATIS label) from the pooled outputs")
    pool: str = option(
        "mean",
        "pooling of the outputs for --intent: mean, or last (both ends if bidirectional)",
        choices=("mean", "last"),
    )

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def feedforward(self) -> bool:
        return self.cell == "none"

    def params(self, vocab_size: int, num_tags: int, num_intents: int = 0, num_chars: int = 0) -> int:
        """Parameters of a :class:`SequenceTagger` of this config, counted without allocating them."""
        tags, intents = [f"T{i}" for i in range(num_tags)], [str(i) for i in range(num_intents)]  # no constraints
        return count_params(lambda: SequenceTagger(vocab_size, tags, self, num_chars=num_chars, intent_names=intents))


class TagBatch(NamedTuple):
    """B sentences, batch-first; ``collate`` builds one from id lists."""

    words: Tensor  # (B, T) word ids, pad after each length
    lengths: Tensor  # (B,) int64, each at least 1
    tags: Tensor  # (B, T) gold tag ids (anything after each length)
    chars: Tensor | None = None  # (N, C) character ids of the N = sum(lengths) words, sentence by sentence
    char_lengths: Tensor | None = None  # (N,)
    intents: Tensor | None = None  # (B,) gold intent ids, -1 for an intent the run does not know
    gold: tuple | None = None  # the gold tags as written (tag names), scored instead of ``tags`` when given
    gold_intents: tuple | None = None  # the gold intents as written
    char_index: Tensor | None = None  # (N,) each word's row in ``chars`` when they hold each distinct word once


class Decoded(NamedTuple):
    tags: Tensor  # (B, T) tag ids, -1 after each length
    intents: Tensor | None  # (B,) intent ids
    confidence: Tensor | None = None  # (B, T) p(y_t = the chosen tag | x), 0 after each length; on request


def collate(
    words: Sequence[Sequence[int]],
    tags: Sequence[Sequence[int]] | None = None,
    *,
    chars: Sequence[Sequence[Sequence[int]]] | None = None,
    intents: Sequence[int] | None = None,
    pad_id: int = 0,
    **gold: Any,
) -> TagBatch:
    """A :class:`TagBatch` of B sentences' ids: ``words`` and ``tags`` (one list per sentence), ``chars`` (per
    sentence, per word), ``intents`` (one per sentence); ``gold``/``gold_intents`` pass through.

    >>> batch = collate([[5, 6, 7], [8]], [[1, 0, 2], [1]], chars=[[[3], [4, 4], [5]], [[6]]])
    >>> batch.words.tolist(), batch.lengths.tolist(), batch.chars.shape
    ([[5, 6, 7], [8, 0, 0]], [3, 1], torch.Size([4, 2]))
    """
    ids, lengths = pad_batch([torch.as_tensor(w, dtype=torch.long) for w in words], pad_id, batch_first=True)
    tag_ids = ids.new_zeros(ids.shape)
    if tags is not None:
        tag_ids = pad_batch([torch.as_tensor(t, dtype=torch.long) for t in tags], 0, batch_first=True)[0]
    char_ids = char_lengths = char_index = None
    if chars is not None:  # each distinct word's characters once (pad_unique): a fraction of the encoder's work
        char_ids, char_lengths, char_index = pad_unique([c for words in chars for c in words], pad_id)
    intent_ids = None if intents is None else torch.as_tensor(intents, dtype=torch.long)
    return TagBatch(ids, lengths, tag_ids, char_ids, char_lengths, intent_ids, *_gold(**gold), char_index)


def _gold(gold: Any = None, gold_intents: Any = None) -> tuple:
    return (None if gold is None else tuple(gold)), (None if gold_intents is None else tuple(gold_intents))


def context_window(x: Tensor, k: int, mask: Tensor | None = None) -> Tensor:
    """Each word's features and its k neighbours' on each side, concatenated (Mesnil et al. 2015).

    x (B, T, F) -> (B, T, (2k+1)F): row t is [x_{t-k}; ...; x_t; ...; x_{t+k}], with zeros beyond the
    sentence (beyond each length when ``mask`` (B, T) is given: padding never leaks into a real word).

    >>> x = torch.tensor([[[1.0], [2.0], [3.0]]])         # B=1, T=3, F=1
    >>> context_window(x, 1)[0].tolist()
    [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 0.0]]
    """
    if k == 0:
        return x
    if mask is not None:
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
    B, T, n = x.shape
    padded = F.pad(x, (0, 0, k, k))  # (B, T + 2k, F)
    return padded.unfold(1, 2 * k + 1, 1).transpose(2, 3).reshape(B, T, (2 * k + 1) * n)


class SequenceTagger(Task):
    """A tagger over a vocabulary of ``vocab_size`` word ids and the tags ``tag_names`` (see the module).

    With ``crf`` the CRF forbids what BIO forbids (``I-X`` after anything but ``B-X``/``I-X``) when every tag
    is ``O``, ``B-X`` or ``I-X``. When the tags are not span tags at all (part-of-speech tags), the run is
    selected by token accuracy instead of span F1.

    >>> tagger = SequenceTagger(20, ["O", "B-LOC", "I-LOC"], TagConfig(hidden=8, embed=6, crf=True, window=1))
    >>> batch = collate([[4, 5, 6], [7, 8]], [[0, 1, 2], [1, 0]])
    >>> emissions, intents = tagger(batch)
    >>> emissions.shape, tagger.decode(batch).tags.shape
    (torch.Size([2, 3, 3]), torch.Size([2, 3]))
    """

    selection = ("f1", "max")

    def __init__(
        self,
        vocab_size: int,
        tag_names: Sequence[str],
        config: TagConfig,
        *,
        num_chars: int = 0,
        intent_names: Sequence[str] = (),
        pad_id: int = 0,
        unk_id: int | None = 1,
        word_counts: Sequence[int] | None = None,
        lm_features: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.config, self.tag_names, self.intent_names = config, tuple(tag_names), tuple(intent_names)
        self.spans = all(map(is_span_tag, self.tag_names))
        if not self.spans:
            self.selection = ("token_accuracy", "max")
        if config.intent and not self.intent_names:
            raise RnnkitError("--intent needs intents in the training data (an ATIS label file, or JSON 'intent')")
        if config.char and num_chars < 1:
            raise RnnkitError("--char needs a character vocabulary (num_chars >= 1)")
        self.embedding = nn.Embedding(vocab_size, config.embed, padding_idx=pad_id)
        if unk_id is not None and 0 <= unk_id < vocab_size:
            with torch.no_grad():  # words unseen in training read as <unk>: a zero vector, not a random one
                self.embedding.weight[unk_id] = 0.0
        if config.rare_word_dropout and unk_id is None:
            raise RnnkitError("--rare-word-dropout replaces words by <unk>: give the vocabulary's unk_id")
        counts = [1] * vocab_size if word_counts is None else word_counts  # without counts: every word seen once
        self.rare_words = RareWordDropout(counts, config.rare_word_dropout, unk_id=unk_id or 0, pad_id=pad_id)
        self.chars = CharEncoder(num_chars, config.char_embed, config.char_hidden) if config.char else None
        self.lm_features = lm_features  # e.g. frozen character LMs' (rnnkit.tasks.string_features)
        size = config.embed + (self.chars.output_size if self.chars else 0)
        size += lm_features.output_size if lm_features is not None else 0
        size *= 2 * config.window + 1
        self.drop = nn.Dropout(config.dropout)
        self.encoder, size = _encoder(config, size)
        self.emissions = nn.Linear(size, len(self.tag_names))
        self.crf = CRF(len(self.tag_names), constraints=_constraints(self.tag_names)) if config.crf else None
        self.intent = nn.Linear(size, len(self.intent_names)) if config.intent else None

    def forward(self, batch: TagBatch) -> tuple[Tensor, Tensor | None]:
        """Emissions (B, T, K) (garbage after each length) and intent logits (B, I) or None."""
        mask = _mask(batch.lengths, batch.words.shape[1])  # (B, T)
        x = self.embedding(self.rare_words(batch.words))  # (B, T, E); in training a rare word is <unk> at times
        if (self.chars is not None or self.lm_features is not None) and batch.chars is None:
            raise ValueError("this tagger reads characters: build the batch with collate(chars=...)")
        if self.chars is not None:
            x = torch.cat([x, self.chars.per_token(batch.chars, batch.char_lengths, mask, batch.char_index)], dim=-1)
        if self.lm_features is not None:
            x = torch.cat([x, self._lm_features(batch)], dim=-1)
        x = context_window(self.drop(x), self.config.window, mask)  # (B, T, W)
        if self.config.feedforward:
            h = self.encoder(x)  # (B, T, H): word t sees words t-k..t+k only
        else:
            h, _ = self.encoder(x, lengths=batch.lengths.cpu())  # (B, T, H_o)
        h = self.drop(h)
        return self.emissions(h), (None if self.intent is None else self.intent(self._pool(h, batch.lengths, mask)))

    def _lm_features(self, batch: TagBatch) -> Tensor:
        return self.lm_features(batch.chars, batch.char_lengths, batch.lengths, batch.char_index, batch.words.shape[1])

    def param_groups(self) -> list[dict[str, Any]]:
        """With ``encoder_lr`` below 1: the word embedding and recurrent layers in a group of their own, their
        learning rate scaled by it (the rest first: the metrics log shows the first group's rate)."""
        return scaled_groups(self, [self.embedding, self.encoder], self.config.encoder_lr)

    def loss(self, batch: TagBatch, state: Any = None) -> LossOutput:
        emissions, intents = self(batch)
        return LossOutput(self._loss(emissions, intents, batch), batch.lengths.sum(), None)

    @torch.no_grad()
    def decode(self, batch: TagBatch, *, confidence: bool = False) -> Decoded:
        """The best tags (B, T) (-1 after each length; Viterbi with a CRF, else each word's argmax) and the
        most likely intents (B,) or None, in eval mode. With ``confidence``, also each chosen tag's probability
        p(y_t | x): the CRF's marginal (one more forward-backward pass), else the softmax."""
        was_training = self.training
        self.eval()
        try:
            emissions, intents = self(batch)
            decoded = self._decode(emissions, intents, batch.lengths)
            if not confidence:
                return decoded
            mask = _mask(batch.lengths, emissions.shape[1])
            p = self.crf.marginals(emissions, mask) if self.crf is not None else emissions.softmax(-1)
            chosen = p.gather(2, decoded.tags.clamp(min=0).unsqueeze(2)).squeeze(2).masked_fill(~mask, 0.0)
            return decoded._replace(confidence=chosen)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def evaluate(self, batches: Iterable[TagBatch]) -> dict[str, float]:
        """Mean loss per word, span precision/recall/F1 (seqeval, as conlleval), token accuracy, and with
        intents intent and sentence accuracy (every tag and the intent right)."""
        loss, count, gold, pred = self.tag_batches(batches)
        scores = tagging_scores(gold[0], pred[0], gold[1], pred[1], spans=self.spans)
        return {"loss": loss / max(count, 1)} | scores | {"count": count}

    @torch.no_grad()
    def tag_batches(self, batches: Iterable[TagBatch]) -> tuple[float, int, tuple, tuple]:
        """(summed loss, words, (gold tags, gold intents), (predicted tags, intents)) over ``batches``; tags
        as names, one list per sentence; intents None without an intent head or gold intents."""
        was_training = self.training
        self.eval()
        total, count, gold, pred, gold_i, pred_i = 0.0, 0, [], [], [], []
        try:
            for batch in batches:
                emissions, intents = self(batch)
                total, count = total + float(self._loss(emissions, intents, batch)), count + int(batch.lengths.sum())
                decoded = self._decode(emissions, intents, batch.lengths)
                pred += self.tag_strings(decoded.tags, batch.lengths)
                gold += list(batch.gold) if batch.gold is not None else self.tag_strings(batch.tags, batch.lengths)
                if decoded.intents is not None and batch.intents is not None:
                    pred_i += [self.intent_names[i] for i in decoded.intents.tolist()]
                    gold_i += list(batch.gold_intents or (self.intent_names[i] for i in batch.intents.tolist()))
        finally:
            self.train(was_training)
        has_intents = bool(pred_i) and len(pred_i) == len(pred)
        return total, count, (gold, gold_i if has_intents else None), (pred, pred_i if has_intents else None)

    def tag_strings(self, ids: Tensor, lengths: Tensor) -> list[list[str]]:
        names = self.tag_names
        return [[names[i] for i in row[:n]] for row, n in zip(ids.tolist(), lengths.tolist(), strict=True)]

    def _loss(self, emissions: Tensor, intents: Tensor | None, batch: TagBatch) -> Tensor:
        mask = _mask(batch.lengths, emissions.shape[1])
        if self.crf is not None:
            loss = self.crf(emissions, batch.tags, mask)  # -sum_b log p(y_b | x_b)
        else:
            loss = F.cross_entropy(emissions[mask], batch.tags[mask], reduction="sum")  # over the real words
        if intents is not None and batch.intents is not None:
            loss = loss + F.cross_entropy(intents, batch.intents, reduction="sum", ignore_index=-1)
        return loss

    def _decode(self, emissions: Tensor, intents: Tensor | None, lengths: Tensor) -> Decoded:
        mask = _mask(lengths, emissions.shape[1])
        if self.crf is not None:
            tags = self.crf.decode(emissions, mask).tags  # Viterbi, batched: one loop over time
        else:
            tags = emissions.argmax(-1).masked_fill(~mask, -1)
        return Decoded(tags, None if intents is None else intents.argmax(-1))

    def _pool(self, h: Tensor, lengths: Tensor, mask: Tensor) -> Tensor:
        """(B, T, H_o) -> (B, H_o): the mean over each sentence's words, or its last output (a backward
        direction's "last" is its output at the first word)."""
        if self.config.pool == "mean":
            return (h * mask.unsqueeze(-1)).sum(1) / lengths.to(h.device, h.dtype).unsqueeze(1)
        rows = torch.arange(len(h), device=h.device)
        last = h[rows, lengths.to(h.device) - 1]  # (B, H_o)
        if self.config.feedforward or not self.config.bidirectional:
            return last
        half = h.shape[-1] // 2
        return torch.cat([last[:, :half], h[:, 0, half:]], dim=-1)


def _encoder(config: TagConfig, size: int) -> tuple[nn.Module, int]:
    """The recurrent stack (any cell), or the baseline's MLP; and its output size per word."""
    if config.feedforward:
        layers: list[nn.Module] = []
        for i in range(config.layers):
            layers += [nn.Linear(size if i == 0 else config.hidden, config.hidden), nn.Tanh()]
            layers += [nn.Dropout(config.dropout)] if i < config.layers - 1 else []
        return nn.Sequential(*layers), config.hidden
    between = config.dropout if config.layers > 1 else 0.0  # a 1-layer stack has nothing between layers
    options = {"num_layers": config.layers, "bidirectional": config.bidirectional, "dropout": between}
    rnn = make_layer(config.cell, size, config.hidden, batch_first=True, **options)
    return rnn, rnn.output_size


def _constraints(names: Sequence[str]) -> Tensor | None:
    bio = all(name == "O" or name[:2] in ("B-", "I-") for name in names) and all(map(is_span_tag, names))
    return bio_constraints(names) if bio else None


def _mask(lengths: Tensor, T: int) -> Tensor:
    return torch.arange(T, device=lengths.device) < lengths.unsqueeze(1)  # (B, T)


def tagging_scores(
    gold: list[list[str]],
    pred: list[list[str]],
    gold_intents: list[str] | None = None,
    pred_intents: list[str] | None = None,
    *,
    spans: bool = True,
    per_type: bool = False,
) -> dict[str, Any]:
    """Span precision, recall and F1 (micro, seqeval's default mode: conlleval's chunks), token accuracy, and
    with intents, intent accuracy and sentence accuracy (every tag and the intent right).

    ``spans=False`` (tags that are not span tags) gives token accuracy only; ``per_type`` adds
    ``{type: {precision, recall, f1, support}}``. Gold tags the model cannot predict count as missed spans.

    >>> scores = tagging_scores([["B-LOC", "I-LOC", "O", "B-PER"]], [["B-LOC", "I-LOC", "O", "O"]])
    >>> scores["precision"], scores["recall"], round(scores["f1"], 4), scores["token_accuracy"]
    (1.0, 0.5, 0.6667, 0.75)
    """
    words = sum(map(len, gold))
    right = [gs == ps for gs, ps in zip(gold, pred, strict=True)]
    tokens = sum(g == p for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True))
    scores: dict[str, Any] = {}
    if spans:
        from seqeval.metrics import f1_score, precision_score, recall_score  # 1.5 s to import (scikit-learn)

        with warnings.catch_warnings():  # seqeval warns when there are no spans at all; the scores are 0 then
            warnings.simplefilter("ignore")
            scores |= {
                "precision": float(precision_score(gold, pred, zero_division=0)),
                "recall": float(recall_score(gold, pred, zero_division=0)),
                "f1": float(f1_score(gold, pred, zero_division=0)),
            }
            if per_type:
                scores["per_type"] = _per_type(gold, pred)
    scores["token_accuracy"] = tokens / max(words, 1)
    if gold_intents is not None and pred_intents is not None:
        intent_right = [g == p for g, p in zip(gold_intents, pred_intents, strict=True)]
        scores["intent_accuracy"] = sum(intent_right) / max(len(intent_right), 1)
        scores["sentence_accuracy"] = sum(a and b for a, b in zip(right, intent_right, strict=True)) / max(
            len(right), 1
        )
    return scores


def _per_type(gold: list[list[str]], pred: list[list[str]]) -> dict[str, dict[str, float]]:
    from seqeval.metrics import classification_report

    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    return {
        kind: {"precision": r["precision"], "recall": r["recall"], "f1": r["f1-score"], "support": int(r["support"])}
        for kind, r in report.items()
        if not kind.endswith(" avg")
    }
