r"""Sequence classification (many-to-one): embedding -> recurrent layers (any cell) -> pooling -> MLP -> labels.

For a text of tokens :math:`w_1 .. w_n` (B texts, T the longest, K labels):

.. math::
    x_t = E[w_t], \quad h_{1..n} = \text{RNN}(x_{1..n}), \quad p = \text{pool}(h_{1..n}), \quad
    z = \text{MLP}(p) \in \mathbb{R}^K,

then softmax(z) for one label per text (loss: cross-entropy) or sigmoid(z_k) for several (loss: binary
cross-entropy summed over the K labels; a label is predicted when sigmoid(z_k) >= ``threshold``). Each loss is
summed over the texts of a batch and counts texts. The RNN is one :func:`rnnkit.compat.make_layer` stack (any
cell in :data:`rnnkit.CELLS`, stacked, optionally bidirectional) run batch-first with ``lengths``; pooling is
:mod:`rnnkit.tasks.pooling` (last step of both directions, mean, max, attention). With ``label_attention``
(:class:`~rnnkit.tasks.pooling.LabelAttention`, for many labels) each label attends on its own and scores itself
from what it attended to, in place of pooling and MLP. Padding never changes a prediction: the layers stop at
each text's length and pooling excludes the padded steps.

Dropout (``dropout``) acts on the embeddings, between recurrent layers and on the pooled vector.

Model selection: the trainer keeps the weights of the best validation **accuracy** for one label per text (the
metric SST, TREC and AG News report; macro-F1 is reported beside it), and of the best **micro-F1** for several
labels. With several labels, :meth:`SequenceClassifier.evaluate` on the validation data also chooses the
threshold that maximises micro-F1 there and keeps it in the ``threshold`` buffer, so the best weights are
saved with the threshold chosen for them (0.5 until a validation set is seen).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import CELLS
from rnnkit.compat import make_layer
from rnnkit.config import MAX_WIDTH, check_fields, option
from rnnkit.data.batching import pad_batch, pad_unique
from rnnkit.errors import RnnkitError
from rnnkit.init import SCHEMES
from rnnkit.resources import count_params, recurrent_params
from rnnkit.tasks.base import LossOutput, Task, encoder_lr_option, scaled_groups
from rnnkit.tasks.char_encoder import CharEncoder
from rnnkit.tasks.pooling import POOLINGS, LabelAttention, Pooling
from rnnkit.tasks.regularization import RareWordDropout, rare_word_dropout_option

#: the thresholds tried when choosing a multi-label threshold on validation data
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))


@dataclass
class ClassifyConfig:
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    hidden: int = option(128, "units per recurrent layer (and direction)", ge=1, le=MAX_WIDTH)
    layers: int = option(1, "stacked recurrent layers", ge=1, le=1000)
    embed: int | None = option(None, "word embedding size (default: --hidden)", ge=1, le=MAX_WIDTH)
    bidirectional: bool = option(False, "read each text in both directions")
    dropout: float = option(0.0, "dropout on the embeddings, between layers and on the pooled vector", ge=0, lt=1)
    rare_word_dropout: float = rare_word_dropout_option()
    pooling: str = option(
        "last",
        "how the outputs become one vector; label_attention: one attention per label, each scoring its label "
        "(for many labels, e.g. keyphrases; no --mlp)",
        choices=(*POOLINGS, "label_attention"),
    )
    attention_size: int | None = option(
        None, "attention pooling's hidden size (default: the outputs' size)", ge=1, le=MAX_WIDTH
    )
    mlp: int = option(0, "hidden units of the MLP head (0: a linear head)", ge=0, le=MAX_WIDTH)
    multi_label: bool = option(False, "several labels per text: sigmoids and a threshold instead of a softmax")
    pos_weight: float = option(
        1.0,
        "several labels: the weight of a present label's term in the loss (above 1 when each label is on few texts)",
        gt=0,
        le=1e6,
    )
    init: str | None = option(
        None, "initialisation of the recurrent layers (default: the cell's own)", choices=(None, *SCHEMES)
    )
    char: bool = option(
        False, "add a character BiLSTM feature to each word's embedding (characters lowercased with --lowercase)"
    )
    char_embed: int = option(25, "character embedding size (with --char)", ge=1, le=MAX_WIDTH)
    char_hidden: int = option(25, "character LSTM units per direction (with --char)", ge=1, le=MAX_WIDTH)
    encoder_lr: float = encoder_lr_option()

    def __post_init__(self) -> None:
        check_fields(self)
        if self.pos_weight != 1 and not self.multi_label:
            raise RnnkitError("--pos-weight weighs the present labels of --multi-label runs: add --multi-label")
        if self.pooling == "label_attention" and self.mlp:
            raise RnnkitError("--pooling label_attention scores each label from its own attention: leave out --mlp")

    def params(self, vocab_size: int, num_labels: int, num_chars: int = 0) -> int:
        """Parameters of a :class:`SequenceClassifier` of this config, counted without allocating them (the
        embedding by hand: initialising one on the meta device imports torch._dynamo, 5 s)."""
        E, H, bi = self.embed or self.hidden, self.hidden, self.bidirectional
        C = 2 * self.char_hidden if self.char else 0
        with torch.device("meta"):
            size = make_layer(self.cell, E + C, H, bidirectional=bi).output_size
        rest = count_params(lambda: nn.ModuleList([m for m in output_layers(self, size, num_labels) if m is not None]))
        if self.char:
            chars = num_chars * self.char_embed + recurrent_params(
                "lstm", self.char_embed, self.char_hidden, 1, bidirectional=True
            )
            rest += chars
        return vocab_size * E + recurrent_params(self.cell, E + C, H, self.layers, bidirectional=bi) + rest


class ClassifyBatch(NamedTuple):
    ids: Tensor  # (B, T) long token ids, padded with pad_id after each text's length
    lengths: Tensor  # (B,) long, each >= 1
    targets: Tensor | None = None  # (B,) long label ids, or (B, K) float 0/1 for several labels; None to predict
    chars: Tensor | None = None  # (U, C) character ids of the distinct tokens (with char_index), or of all N (--char)
    char_lengths: Tensor | None = None  # (U,) or (N,)
    char_index: Tensor | None = None  # (N,) each token's row in ``chars`` when they hold each distinct token once


class Prediction(NamedTuple):
    probabilities: Tensor  # (B, K): softmax (one label) or sigmoids (several labels)
    attention: Tensor | None  # (B, T) attention weights (0 at padding) with attention pooling, else None


def make_batch(
    sequences: Sequence[Sequence[int]],
    targets: Sequence[Any] | None = None,
    *,
    pad_id: int = 0,
    num_labels: int = 0,
    chars: Sequence[Sequence[Sequence[int]]] | None = None,
) -> ClassifyBatch:
    """Pad id sequences into a :class:`ClassifyBatch`; a target is a label id, or a list of them (several labels
    per text: a (B, ``num_labels``) 0/1 matrix); ``chars``: each text's tokens' character ids (``--char``).

    >>> batch = make_batch([[5, 6, 7], [8]], [1, 0])
    >>> batch.ids, batch.lengths, batch.targets
    (tensor([[5, 6, 7],
            [8, 0, 0]]), tensor([3, 1]), tensor([1, 0]))
    >>> make_batch([[5, 6], [5]], chars=[[[1, 2], [3]], [[1, 2]]]).char_index  # "5" read once
    tensor([0, 1, 0])
    >>> make_batch([[5], [6]], [[0, 2], []], num_labels=3).targets
    tensor([[1., 0., 1.],
            [0., 0., 0.]])
    """
    ids, lengths = pad_batch([torch.as_tensor(s, dtype=torch.long) for s in sequences], pad_id, batch_first=True)
    char_ids = char_lengths = char_index = None
    if chars is not None:  # each distinct token's characters once (pad_unique)
        char_ids, char_lengths, char_index = pad_unique([c for words in chars for c in words], pad_id)
    if targets is None:
        return ClassifyBatch(ids, lengths, None, char_ids, char_lengths, char_index)
    if targets and isinstance(targets[0], (list, tuple)):
        target = torch.zeros(len(targets), num_labels)
        for row, labels in enumerate(targets):
            target[row, list(labels)] = 1.0
    else:
        target = torch.as_tensor(targets, dtype=torch.long)
    return ClassifyBatch(ids, lengths, target, char_ids, char_lengths, char_index)


class SequenceClassifier(Task):
    """Classify texts of ``vocab_size`` token ids into ``num_labels`` labels (one, or several per text).

    >>> model = SequenceClassifier(50, 3, ClassifyConfig(hidden=8, pooling="attention", bidirectional=True))
    >>> batch = make_batch([[4, 5, 6], [7]], [2, 0])
    >>> logits, attention = model(batch.ids, batch.lengths)
    >>> logits.shape, attention.shape
    (torch.Size([2, 3]), torch.Size([2, 3]))
    >>> model.loss(batch).count
    tensor(2)
    """

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        config: ClassifyConfig,
        *,
        pad_id: int = 0,
        num_chars: int = 0,
        unk_id: int = 1,
        word_counts: Sequence[int] | None = None,
        lm_features: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.config, self.num_labels, self.pad_id = config, num_labels, pad_id
        self.selection = ("micro_f1", "max") if config.multi_label else ("accuracy", "max")
        E, H, L = config.embed or config.hidden, config.hidden, config.layers
        self.embedding = nn.Embedding(vocab_size, E, padding_idx=pad_id)
        counts = [1] * vocab_size if word_counts is None else word_counts  # without counts: every word seen once
        self.rare_words = RareWordDropout(counts, config.rare_word_dropout, unk_id=unk_id, pad_id=pad_id)
        if config.char and num_chars < 1:
            raise ValueError("char=True needs a character vocabulary (num_chars >= 1)")
        self.chars = CharEncoder(num_chars, config.char_embed, config.char_hidden) if config.char else None
        E += self.chars.output_size if self.chars is not None else 0
        self.lm_features = lm_features  # e.g. frozen character LMs' (rnnkit.tasks.string_features)
        E += lm_features.output_size if lm_features is not None else 0
        kw: dict[str, Any] = {"init": config.init} if config.init is not None else {}
        if L > 1:
            kw["dropout"] = config.dropout
        self.rnn = make_layer(
            config.cell, E, H, num_layers=L, bidirectional=config.bidirectional, batch_first=True, **kw
        )
        self.pooling, self.head = output_layers(config, self.rnn.output_size, num_labels)
        self.drop = nn.Dropout(config.dropout)
        self.register_buffer("threshold", torch.tensor(0.5))  # several labels: p >= threshold is predicted

    def features(
        self,
        ids: Tensor,
        lengths: Tensor,
        chars: Tensor | None = None,
        char_lengths: Any = None,
        char_index: Any = None,
    ) -> Tensor:
        """The recurrent layers' input: ids (B, T) -> (B, T, E) word embeddings, with ``char`` each token's
        character feature (B, T, 2H_c) concatenated (``chars`` as in :class:`ClassifyBatch`); dropped out."""
        x = self.embedding(self.rare_words(ids))  # in training a rare word reads as <unk> at times
        if (self.chars is not None or self.lm_features is not None) and chars is None:
            raise ValueError("this classifier reads characters: build the batch with make_batch(chars=...)")
        if self.chars is not None:
            mask = torch.arange(ids.shape[1], device=ids.device) < lengths.unsqueeze(1)  # (B, T)
            x = torch.cat([x, self.chars.per_token(chars, char_lengths, mask, char_index)], dim=-1)
        if self.lm_features is not None:
            x = torch.cat([x, self.lm_features(chars, char_lengths, lengths, char_index, ids.shape[1])], dim=-1)
        return self.drop(x)

    def forward(
        self,
        ids: Tensor,
        lengths: Tensor,
        chars: Tensor | None = None,
        char_lengths: Any = None,
        char_index: Any = None,
    ) -> tuple[Tensor, Tensor | None]:
        """ids (B, T), lengths (B,) (and with ``char`` the tokens' characters, see :class:`ClassifyBatch`) ->
        logits (B, K), and attention weights (B, T) with attention pooling."""
        device = self.embedding.weight.device
        ids, lengths = ids.to(device), torch.as_tensor(lengths).to(device)
        x = self.features(ids, lengths, chars, char_lengths, char_index)
        outputs, _ = self.rnn(x, lengths=lengths)  # (B, T, D*H), zero at padding
        if self.head is None:  # label attention: logits (B, K), each label's weights (B, K, T)
            logits, weights = self.pooling(outputs, lengths)
            return logits, top_label_weights(logits, weights)
        pooled, weights = self.pooling(outputs, lengths)  # (B, D*H), (B, T) or None
        return self.head(self.drop(pooled)), weights

    def param_groups(self) -> list[dict[str, Any]]:
        """With ``encoder_lr`` below 1: the word embedding and recurrent layers in a group of their own, their
        learning rate scaled by it (the rest first: the metrics log shows the first group's rate)."""
        return scaled_groups(self, [self.embedding, self.rnn], self.config.encoder_lr)

    def loss(self, batch: ClassifyBatch, state: Any = None) -> LossOutput:
        """Summed cross-entropy (one label) or binary cross-entropy over every label (several); count = texts."""
        logits, _ = self(batch.ids, batch.lengths, batch.chars, batch.char_lengths, batch.char_index)
        targets = batch.targets.to(logits.device)
        if self.config.multi_label:
            weight = logits.new_full((logits.shape[-1],), self.config.pos_weight)
            loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum", pos_weight=weight)
        else:
            loss = F.cross_entropy(logits, targets, reduction="sum")
        return LossOutput(loss, torch.tensor(len(targets), device=logits.device), None)

    @torch.no_grad()
    def predict(self, batch: ClassifyBatch) -> Prediction:
        """Probabilities (B, K) and attention weights of a batch (its targets are not read), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            logits, weights = self(batch.ids, batch.lengths, batch.chars, batch.char_lengths, batch.char_index)
        finally:
            self.train(was_training)
        probs = torch.sigmoid(logits) if self.config.multi_label else torch.softmax(logits, dim=-1)
        return Prediction(probs, weights)

    @torch.no_grad()
    def collect(self, batches: Iterable[ClassifyBatch]) -> tuple[float, Tensor, Tensor]:
        """Summed loss, probabilities (N, K) and targets of every text in ``batches``, on the CPU, in eval mode."""
        was_training = self.training
        self.eval()
        total, probs, targets = 0.0, [], []
        try:
            for batch in batches:
                total += float(self.loss(batch).loss)
                probs.append(self.predict(batch).probabilities.cpu())
                targets.append(batch.targets.cpu())
        finally:
            self.train(was_training)
        return total, torch.cat(probs), torch.cat(targets)

    def evaluate(self, batches: Iterable[ClassifyBatch], *, tune_threshold: bool = True) -> dict[str, float]:
        """Mean loss per text, accuracy and macro-F1 (several labels: subset accuracy, micro- and macro-F1 and the
        threshold) and the count of texts. With several labels and ``tune_threshold``, the threshold is first
        chosen on these batches (:func:`best_threshold`) and kept in the ``threshold`` buffer."""
        total, probs, targets = self.collect(batches)
        n = len(targets)
        if not self.config.multi_label:
            return {"loss": total / max(n, 1)} | single_label_metrics(targets, probs.argmax(-1)) | {"count": n}
        if tune_threshold:
            self.threshold.fill_(best_threshold(targets, probs))
        threshold = float(self.threshold)
        metrics = multi_label_metrics(targets, probs >= threshold)
        return {"loss": total / max(n, 1)} | metrics | {"threshold": threshold, "count": n}


def output_layers(config: ClassifyConfig, size: int, num_labels: int) -> tuple[nn.Module, nn.Module | None]:
    """The pooling and the head over ``size`` features per step; label attention is both (head None)."""
    if config.pooling == "label_attention":
        return LabelAttention(size, num_labels, config.attention_size, config.dropout), None
    pool = Pooling(config.pooling, size, bidirectional=config.bidirectional, attention_size=config.attention_size)
    return pool, make_head(size, config.mlp, num_labels, config.dropout)


def top_label_weights(logits: Tensor, weights: Tensor) -> Tensor:
    """The attention (B, T) of each text's highest-scoring label, from every label's (B, K, T)."""
    top = logits.argmax(-1)[:, None, None].expand(-1, 1, weights.shape[-1])
    return weights.gather(1, top).squeeze(1)


def make_head(size: int, mlp: int, num_labels: int, dropout: float = 0.0) -> nn.Module:
    """The pooled vector (size) -> logits (K): Linear, or with ``mlp`` > 0, Linear -> ReLU -> dropout -> Linear."""
    if not mlp:
        return nn.Linear(size, num_labels)
    return nn.Sequential(nn.Linear(size, mlp), nn.ReLU(), nn.Dropout(dropout), nn.Linear(mlp, num_labels))


def single_label_metrics(targets: Tensor, predicted: Tensor) -> dict[str, float]:
    """Accuracy and macro-F1 (over the labels in ``targets`` or ``predicted``, as sklearn averages) of label ids.

    >>> single_label_metrics(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]))
    {'accuracy': 0.75, 'macro_f1': 0.7333333333333334}
    """
    from sklearn.metrics import accuracy_score, f1_score  # imported here: 2 s that the CLI's start need not pay

    y, p = targets.numpy(), predicted.numpy()
    return {"accuracy": float(accuracy_score(y, p)), "macro_f1": float(f1_score(y, p, average="macro"))}


def multi_label_metrics(targets: Tensor, predicted: Tensor) -> dict[str, float]:
    """Subset accuracy (every label of a text right), micro- and macro-F1 of (N, K) 0/1 matrices.

    >>> multi_label_metrics(torch.tensor([[1, 0], [1, 1]]), torch.tensor([[1, 0], [1, 0]]))
    {'accuracy': 0.5, 'micro_f1': 0.8, 'macro_f1': 0.5}
    """
    from sklearn.metrics import accuracy_score, f1_score

    y, p = targets.numpy().astype(int), predicted.numpy().astype(int)
    return {
        "accuracy": float(accuracy_score(y, p)),
        "micro_f1": float(f1_score(y, p, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)),
    }


def best_threshold(targets: Tensor, probs: Tensor, candidates: Sequence[float] = THRESHOLDS) -> float:
    """The threshold among ``candidates`` with the best micro-F1 of ``probs >= t``; ties go to the one nearest 0.5.

    >>> best_threshold(torch.tensor([[1, 0], [0, 1]]), torch.tensor([[0.3, 0.1], [0.2, 0.35]]))
    0.3
    """
    from sklearn.metrics import f1_score

    y = targets.numpy().astype(int)
    scores = [f1_score(y, (probs >= t).numpy().astype(int), average="micro", zero_division=0) for t in candidates]
    best = max(scores)
    return min((abs(t - 0.5), t) for t, s in zip(candidates, scores, strict=True) if np.isclose(s, best))[1]
