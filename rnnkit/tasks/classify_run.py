"""A classification run folder as Python objects (config, vocabulary, labels, model), the data it reads, training.

The folder is every task's (rnnkit.tasks.runs) plus ``vocab.json`` (the words) and ``labels.json`` (the labels).
Data: TSV (``label<TAB>text``), SST (``label text``) or JSON lines (``{"text", "label"}`` or ``{"text",
"labels": [...]}``), read by :func:`rnnkit.data.formats.read_classification`; text is split on whitespace.
Training texts longer than ``--max-length`` tokens are cut (with a warning); validation, eval and predict
read every token. A label the run never saw (in validation or eval data) is reported by name and count, and
its examples are left out of the metrics.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.config import check_fields, option
from rnnkit.data.batching import bucket_batches, shard_rows
from rnnkit.data.formats import CLASSIFICATION_FORMATS, Example, read_classification
from rnnkit.data.labels import Labels
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError
from rnnkit.resources import check_model_memory
from rnnkit.tasks import ensemble_folder, runs
from rnnkit.tasks.base import Prepared, TaskSpec
from rnnkit.tasks.classify import (
    ClassifyBatch,
    ClassifyConfig,
    SequenceClassifier,
    make_batch,
    multi_label_metrics,
    single_label_metrics,
)
from rnnkit.tasks.keyphrase import keyphrase_scores, tokenize
from rnnkit.tasks.pretrained import (
    EMBEDDINGS_HELP,
    ENCODER_BACKWARD_HELP,
    ENCODER_HELP,
    encoder_vocabulary,
    start_from,
)
from rnnkit.tasks.string_features import (
    CHAR_LM_BACKWARD_HELP,
    CHAR_LM_HELP,
    CharLMs,
    StringFeatures,
    character_vocabulary,
)
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed as dist
from rnnkit.train.config import TrainConfig


@dataclass
class ClassifyDataConfig:
    train: str | None = option(None, "training examples: TSV (label<TAB>text), SST (label text) or JSON lines")
    valid: str | None = option(None, "validation examples (same format), for accuracy and F1 after each epoch")
    format: str = option(
        "auto",
        "the files' format (auto: by extension, else by the first line)",
        choices=("auto", *CLASSIFICATION_FORMATS),
    )
    label_field: str | None = option(
        None, 'JSON lines: the field holding the labels (a string or a list), e.g. Inspec\'s "keyphrases"'
    )
    min_label_count: int = option(
        1, "labels on fewer training texts are not learned (several labels: dropped from the texts, counted)", ge=1
    )
    embeddings: str | None = option(None, EMBEDDINGS_HELP)
    encoder: str | None = option(None, ENCODER_HELP)
    encoder_backward: str | None = option(None, ENCODER_BACKWARD_HELP)
    char_lm: str | None = option(None, CHAR_LM_HELP)
    char_lm_backward: str | None = option(None, CHAR_LM_BACKWARD_HELP)
    min_freq: int = option(1, "rarer training words become <unk>", ge=1)
    max_vocab: int | None = option(None, "keep at most this many words (specials included)", ge=4)
    lowercase: bool = option(False, "lowercase every word (training, eval and predict alike)")
    max_length: int | None = option(
        1000, "cut training texts to this many tokens, with a warning (validation, eval, predict read all)", ge=1
    )
    eval_batch_size: int = option(64, "texts per batch when evaluating and predicting", ge=1)

    def __post_init__(self) -> None:
        check_fields(self)


SECTIONS = {"data": ClassifyDataConfig, "model": ClassifyConfig, "train": TrainConfig}


@dataclass
class Encoded:
    """Examples as ids: the texts' token ids, their targets (a label id, or a list of them), and what was left out."""

    sequences: list[list[int]]
    targets: list[Any]
    unknown: Counter[str] = field(default_factory=Counter)  # labels the run does not know -> examples with them
    excluded: int = 0  # examples left out for an unknown label
    dropped: int = 0  # several labels per text: unknown labels dropped, their examples kept
    chars: list[list[list[int]]] | None = None  # with --char: each text's tokens' character ids

    def batches(
        self,
        batch_size: int,
        *,
        pad_id: int,
        num_labels: int,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        shard: tuple[int, int] = (0, 1),
    ) -> list[ClassifyBatch]:
        """Length-bucketed padded batches (:func:`rnnkit.data.batching.bucket_batches`); under torchrun, process
        ``rank``'s share of each, for ``shard=(rank, world)`` (:func:`rnnkit.data.batching.shard_rows`)."""
        order = bucket_batches([len(s) for s in self.sequences], batch_size, shuffle=shuffle, seed=seed, epoch=epoch)
        order = shard_rows(order, *shard)
        return [self.batch(rows, pad_id=pad_id, num_labels=num_labels) for rows in order]

    def batch(self, rows: list[int], *, pad_id: int, num_labels: int) -> ClassifyBatch:
        chars = None if self.chars is None else [self.chars[i] for i in rows]
        sequences, targets = [self.sequences[i] for i in rows], [self.targets[i] for i in rows]
        return make_batch(sequences, targets, pad_id=pad_id, num_labels=num_labels, chars=chars)


class EpochBatches:
    """Training batches that change every epoch: ``for_epoch(e)`` (what the trainer calls) shuffles with
    ``(seed, e)`` alone, so resuming mid-epoch is exact."""

    def __init__(self, data: Encoded, batch_size: int, *, seed: int, pad_id: int, num_labels: int) -> None:
        self.data, self.batch_size, self.seed, self.pad_id, self.num_labels = data, batch_size, seed, pad_id, num_labels
        self.shard = dist.rank_world()  # each process of a torchrun run takes its share of every batch

    def for_epoch(self, epoch: int) -> list[ClassifyBatch]:
        kw = {"pad_id": self.pad_id, "num_labels": self.num_labels, "shard": self.shard}
        return self.data.batches(self.batch_size, shuffle=True, seed=self.seed, epoch=epoch, **kw)


@dataclass
class ClassifyRun:
    """Everything a trained run folder holds, loaded."""

    path: Path
    data: ClassifyDataConfig
    model_config: ClassifyConfig
    train: TrainConfig
    vocab: Vocabulary
    labels: Labels
    model: SequenceClassifier
    chars: Vocabulary | None = None  # with --char
    members: tuple[ClassifyRun, ...] = ()  # an ensemble's runs (:func:`load_runs`); the fields above are the first's

    @property
    def threshold(self) -> float:
        """Several labels: the probability at which a label is predicted (an ensemble: its runs' mean)."""
        return sum(float(m.model.threshold) for m in self.members or (self,)) / len(self.members or (self,))

    def tokens(self, text: str) -> list[str]:
        """A text's tokens as the run reads them: split on whitespace, lowercased if the run was."""
        return (text.lower() if self.data.lowercase else text).split()

    def evaluate(self, path: str, *, batch_size: int | None = None) -> dict[str, Any]:
        """Metrics of a labelled file in the run's format: accuracy, macro-F1, per-class precision, recall, F1
        and support, the confusion matrix (several labels: micro-F1 and one 2x2 matrix per label at the run's
        threshold), the loss per text, the count, and the labels the run never saw (left out, by name)."""
        if self.members:  # each run reads the file its own way; their probabilities are averaged
            scored = [m._probabilities(path, batch_size, warn=i == 0) for i, m in enumerate(self.members)]
            examples, encoded, _, _, targets = scored[0]
            probs = torch.stack([p for *_, p, _ in scored]).mean(0)
            total = summed_loss(probs, targets, self.model_config.multi_label, self.model_config.pos_weight)
        else:
            examples, encoded, total, probs, targets = self._probabilities(path, batch_size)
        multi, threshold = self.model_config.multi_label, self.threshold
        result = {"data": str(path), "count": len(targets), "loss": total / len(targets)}
        result |= report(targets, probs >= threshold if multi else probs.argmax(-1), self.labels.names, multi)
        if multi:
            result["threshold"] = threshold
        if self.data.label_field == "keyphrases":
            kept = examples if multi else [e for e in examples if not self.labels.unknown(e.labels)]  # as encode()
            result["keyphrases"] = self._keyphrase_scores(kept, encoded, probs, threshold)
        return result | {"unknown_labels": dict(encoded.unknown), "excluded": encoded.excluded}

    def _probabilities(self, path: str, batch_size: int | None, *, warn: bool = True) -> tuple:
        """(examples, encoded, summed loss, probabilities (N, K), targets) of a labelled file, in its order."""
        examples = read_examples(path, self.data, self.model_config.multi_label)
        encoded = encode(examples, self.vocab, self.labels, self.model_config.multi_label, self.chars)
        if warn:
            warn_unknown(path, encoded)
        if not encoded.sequences:
            raise RnnkitError(
                f"{path}: none of its {len(examples)} examples has a label this run knows "
                f"({', '.join(self.labels.names[:5])}{', ...' if len(self.labels) > 5 else ''}): nothing to evaluate"
            )
        size = batch_size or self.data.eval_batch_size
        order = bucket_batches([len(s) for s in encoded.sequences], size, shuffle=False)  # sorted by length
        batches = [encoded.batch(rows, pad_id=self.vocab.pad_id, num_labels=len(self.labels)) for rows in order]
        total, probs, targets = self.model.collect(batches)
        back = torch.tensor([i for rows in order for i in rows]).argsort()  # to the file's order, as ``examples``
        return examples, encoded, total, probs[back], targets[back]

    def _keyphrase_scores(self, examples: list[Example], encoded: Encoded, probs: Tensor, threshold: float) -> dict:
        """Keyphrase F1@5/@10 of each text's labels ranked by probability, F1@M of those at the threshold, against
        all its gold keyphrases, also those the run has no label for (:mod:`rnnkit.tasks.keyphrase`)."""
        names = self.labels.names
        order = probs.argsort(dim=1, descending=True).tolist()
        ranked = [[tuple(tokenize(names[j])) for j in row] for row in order]
        kept = (probs >= threshold).sum(1).tolist()
        gold = [e.labels for e in examples]
        return keyphrase_scores([e.tokens for e in examples], gold, ranked, kept=kept)

    def predict(self, texts: list[str], *, batch_size: int | None = None) -> list[dict[str, Any]]:
        """Each text's most probable label and its probability, every label's probability (several labels: also
        ``labels``, those at or above the threshold) and, with attention pooling, ``attention``: each token with
        its weight."""
        tokens = [self.tokens(t) for t in texts]
        if self.members:
            each = zip(*(m.predict(texts, batch_size=batch_size) for m in self.members), strict=True)
            return [self._mean(results, words) for results, words in zip(each, tokens, strict=True)]
        empty = next((i for i, t in enumerate(tokens) if not t), None)
        if empty is not None:
            raise RnnkitError(f"text {empty + 1} is empty: give each text at least one word")
        ids = [self.vocab.encode(t) for t in tokens]
        results: list[dict[str, Any]] = [{} for _ in texts]
        for order in bucket_batches([len(s) for s in ids], batch_size or self.data.eval_batch_size, shuffle=False):
            chars = None if self.chars is None else [[self.chars.encode(w) for w in tokens[i]] for i in order]
            pred = self.model.predict(make_batch([ids[i] for i in order], pad_id=self.vocab.pad_id, chars=chars))
            for row, i in enumerate(order):
                weights = None if pred.attention is None else pred.attention[row, : len(ids[i])]
                results[i] = self._result(tokens[i], pred.probabilities[row], weights)
        return results

    def _mean(self, results: tuple[dict[str, Any], ...], tokens: list[str]) -> dict[str, Any]:
        """An ensemble's result from its runs': the mean probabilities, and the mean attention of the runs
        that pool by attention."""
        probs = torch.tensor([[r["probabilities"][name] for name in self.labels.names] for r in results]).mean(0)
        attention = [[w for _, w in r["attention"]] for r in results if "attention" in r]
        return self._result(tokens, probs, torch.tensor(attention).mean(0) if attention else None)

    def _result(self, tokens: list[str], probs: Tensor, weights: Tensor | None) -> dict[str, Any]:
        names, p = self.labels.names, probs.tolist()
        best = max(range(len(p)), key=p.__getitem__)
        result: dict[str, Any] = {
            "label": names[best],
            "probability": p[best],
            "probabilities": dict(zip(names, p, strict=True)),
        }
        if self.model_config.multi_label:
            threshold = self.threshold
            result["labels"] = [name for name, q in zip(names, p, strict=True) if q >= threshold]
        if weights is not None:
            result["attention"] = [[token, w] for token, w in zip(tokens, weights.tolist(), strict=True)]
        return result


def report(targets: Tensor, predicted: Tensor, names: tuple[str, ...], multi_label: bool) -> dict[str, Any]:
    """Accuracy, macro-F1 (several labels: micro-F1 too), per-class scores and the confusion matrix (rows: true,
    columns: predicted, in ``names`` order; several labels: ``[[tn, fp], [fn, tp]]`` per label), by sklearn."""
    from sklearn import metrics  # imported here: 2 s that the CLI's start need not pay

    y, p, ks = targets.numpy(), predicted.numpy(), list(range(len(names)))
    if multi_label:
        y, p = y.astype(int), p.astype(int)
        scores = multi_label_metrics(targets, predicted)
        confusion = metrics.multilabel_confusion_matrix(y, p, labels=ks).tolist()
    else:
        scores = single_label_metrics(targets, predicted)
        confusion = metrics.confusion_matrix(y, p, labels=ks).tolist()
    prf = metrics.precision_recall_fscore_support(y, p, labels=ks, zero_division=0)
    per_class = {
        name: {"precision": float(pr), "recall": float(rc), "f1": float(f1), "support": int(n)}
        for name, pr, rc, f1, n in zip(names, *prf, strict=True)
    }
    return scores | {"per_class": per_class, "labels": list(names), "confusion": confusion}


def read_examples(path: str, data: ClassifyDataConfig, multi_label: bool) -> list[Example]:
    """The examples of a file (lowercased if asked); several labels on one text need ``multi_label``."""
    lowercase = data.lowercase
    examples = read_classification(path, data.format, label_field=data.label_field)
    several = [e for e in examples if len(e.labels) != 1]
    if several and not multi_label:
        raise RnnkitError(
            f"{path}: {len(several)} example(s) have {len(several[0].labels) or 'no'} labels "
            f"(e.g. {several[0].labels}): give one label per text, or train with --multi-label"
        )
    if lowercase:
        examples = [Example([t.lower() for t in e.tokens], e.labels) for e in examples]
    return examples


def encode(
    examples: list[Example], vocab: Vocabulary, labels: Labels, multi_label: bool, chars: Vocabulary | None = None
) -> Encoded:
    """Token ids and targets (a label id; several labels: a list of them). A label ``labels`` lacks is counted by
    name; one label per text: the example is left out, several: the label is dropped and the example kept (its
    other labels still count, and a keyphrase score counts the dropped one as missed). With ``chars``, also each
    token's character ids."""
    encoded = Encoded([], [], chars=None if chars is None else [])
    for e in examples:
        unknown = labels.unknown(e.labels)
        encoded.unknown.update(unknown.keys())
        if unknown and multi_label:
            encoded.dropped += sum(unknown.values())
            e = Example(e.tokens, [label for label in e.labels if label not in unknown])
        elif unknown:
            encoded.excluded += 1
            continue
        encoded.sequences.append(vocab.encode(e.tokens))
        if encoded.chars is not None:
            encoded.chars.append([chars.encode(w) for w in e.tokens])
        ids = labels.encode(e.labels)
        encoded.targets.append(ids if multi_label else ids[0])
    return encoded


def warn_unknown(path: str, encoded: Encoded) -> None:
    shown = encoded.unknown.most_common(10)
    names = ", ".join(f"{name!r} ({n})" for name, n in shown)
    names += f" and {len(encoded.unknown) - 10} more" if len(encoded.unknown) > 10 else ""
    if encoded.excluded:
        warnings.warn(
            f"{path}: {encoded.excluded} example(s) with labels the run never saw are left out: {names}", stacklevel=2
        )
    if encoded.dropped:
        warnings.warn(
            f"{path}: {encoded.dropped} label(s) the run has no output for ({len(encoded.unknown)} distinct) are "
            f"dropped from their texts: {names}",
            stacklevel=2,
        )


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> ClassifyRun:
    """Load a run folder for evaluation or prediction (the best weights, else the last checkpoint)."""
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def load_runs(paths: Sequence[str | Path], *, weights: str = "best", verb: str | None = None) -> ClassifyRun:
    """One run folder loaded, or several as one ensemble (an ensemble folder counts as its runs,
    :mod:`rnnkit.tasks.ensemble_folder`): each reads the texts its own way (vocabulary,
    lowercasing, characters), and their probabilities are averaged (several labels: at their mean threshold).
    The runs must have the same labels."""
    runs_ = [load_run(p, weights=weights, verb=verb) for p in ensemble_folder.expand(paths, SPEC.name, verb)]
    first = runs_[0]
    for run in runs_[1:]:
        mine, theirs = (
            (first.labels.names, first.model_config.multi_label),
            (run.labels.names, run.model_config.multi_label),
        )
        if mine != theirs:
            raise RnnkitError(
                f"--ensemble: {run.path} has labels {list(theirs[0])[:8]} (several per text: {theirs[1]}) and "
                f"{first.path} {list(mine[0])[:8]} ({mine[1]}): an ensemble's runs must have the same labels"
            )
    return first if len(runs_) == 1 else dataclasses.replace(first, members=tuple(runs_))


def summed_loss(probs: Tensor, targets: Tensor, multi_label: bool, pos_weight: float = 1.0) -> float:
    """The summed cross-entropy (several labels: binary, over every label, present ones weighted by
    ``pos_weight``, as the training loss) of probabilities (N, K)."""
    p = probs.clamp(1e-12, 1 - 1e-7)
    if multi_label:
        return float(-(pos_weight * targets * p.log() + (1 - targets) * (1 - p).log()).sum())
    return float(-p.gather(1, targets.long().unsqueeze(1)).log().sum())


def train_classifier(cfg: dict[str, Any], run_dir: str | Path, *, resume: bool = False, force: bool = False) -> dict:
    """Train (or, with ``resume``, continue) a classifier into ``run_dir``; ``cfg`` maps "data", "model" and
    "train" to their configs. Under torchrun each process trains on its share of every batch (data parallel)."""
    return runs.train(SPEC, cfg, run_dir, resume=resume, force=force)


def new_model(
    vocab: Vocabulary,
    labels: Labels,
    config: ClassifyConfig,
    chars: Vocabulary | None = None,
    char_lms: CharLMs | None = None,
) -> SequenceClassifier:
    num_chars = len(chars) if chars is not None and config.char else 0
    ids = {"pad_id": vocab.pad_id, "unk_id": vocab.unk_id, "word_counts": vocab.counts}
    features = StringFeatures(char_lms, chars.tokens) if char_lms is not None and chars is not None else None
    return SequenceClassifier(len(vocab), len(labels), config, num_chars=num_chars, lm_features=features, **ids)


def _char_files(path: Path, config: ClassifyConfig) -> tuple[Vocabulary | None, CharLMs | None]:
    """A run folder's characters (with --char or --char-lm) and character LMs (with --char-lm)."""
    char_lms = CharLMs.in_run(path)
    chars = Vocabulary.load(path / "chars.json") if config.char or char_lms else None
    return chars, char_lms


def _open(path: Path, cfg: dict[str, Any], weights: str) -> ClassifyRun:
    vocab, labels = Vocabulary.load(path / "vocab.json"), Labels.load(path / "labels.json")
    chars, char_lms = _char_files(path, cfg["model"])
    model = new_model(vocab, labels, cfg["model"], chars, char_lms)
    ckpt.load_run_weights(model, path, weights)
    return ClassifyRun(path, cfg["data"], cfg["model"], cfg["train"], vocab, labels, model, chars)


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    """Read and check the examples, build (or, on resume, load) the vocabulary, labels and model; write nothing."""
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train FILE is required: the labelled texts to learn from")
    examples = read_examples(data.train, data, model_cfg.multi_label)
    if run_dir is not None:
        vocab, labels = Vocabulary.load(run_dir / "vocab.json"), Labels.load(run_dir / "labels.json")
        chars, char_lms = _char_files(run_dir, model_cfg)
    else:
        vocab = Vocabulary.build(
            (t for e in examples for t in e.tokens), min_freq=data.min_freq, max_size=data.max_vocab
        )
        vocab = encoder_vocabulary(vocab, data)
        labels = _labels(data.train, examples, model_cfg.multi_label, data.min_label_count)
        char_lms = CharLMs.from_runs(data.char_lm, data.char_lm_backward)
        read_chars = model_cfg.char or char_lms is not None
        chars = character_vocabulary((t for e in examples for t in e.tokens), char_lms) if read_chars else None
    multi = model_cfg.multi_label
    train = encode(truncate(data.train, examples, data.max_length), vocab, labels, multi, chars)
    warn_unknown(data.train, train)
    if not train.sequences:
        raise RnnkitError(f"{data.train}: no examples to train on")
    kw = {"pad_id": vocab.pad_id, "num_labels": len(labels)}
    valid = None
    if data.valid is not None:
        valid_examples = read_examples(data.valid, data, model_cfg.multi_label)
        valid_data = encode(valid_examples, vocab, labels, multi, chars)
        warn_unknown(data.valid, valid_data)
        valid = valid_data.batches(data.eval_batch_size, **kw) if valid_data.sequences else None
    what = (
        f"a {model_cfg.layers}-layer {model_cfg.cell} classifier of hidden {model_cfg.hidden}, vocabulary {len(vocab)}"
    )
    check_model_memory(
        model_cfg.params(len(vocab), len(labels), len(chars) if chars else 0),
        what=what,
        flag_hint="lower --hidden, --embed, --layers or --max-vocab",
    )
    model = new_model(vocab, labels, model_cfg, chars, char_lms)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)  # (frozen LMs not counted)
    direction = "bidirectional " if model_cfg.bidirectional else ""
    summary = (
        f"training a {model_cfg.layers}-layer {direction}{model_cfg.cell} classifier ({model_cfg.pooling} pooling): "
        f"{len(labels)} labels, vocabulary {len(vocab)}, {params:,} parameters, {len(train.sequences):,} texts"
    )
    if run_dir is None:  # a resumed run's weights are in its checkpoint
        started = start_from(model.embedding.weight, model.rnn, vocab, data, model_cfg.cell)
        summary += "; " * bool(started) + started
    if model.lm_features is not None:  # computed once, not at every epoch
        fixed = [*train.batches(data.eval_batch_size, **kw), *(valid or [])]
        rows = ((b.chars, b.char_lengths, b.lengths, b.char_index) for b in fixed)
        summary += "; " + model.lm_features.start(data, rows, new=run_dir is None)
    batches = EpochBatches(train, train_cfg.batch_size, seed=train_cfg.seed, **kw)
    files = {"vocab.json": vocab.save, "labels.json": labels.save} | ({"chars.json": chars.save} if chars else {})
    files |= {"char_lms.json": char_lms.save} if char_lms is not None else {}
    return Prepared(model, batches, valid, files, summary)


def _labels(path: str, examples: list[Example], multi_label: bool, min_count: int = 1) -> Labels:
    if not examples:
        raise RnnkitError(f"{path}: no examples to train on")
    counts = Counter(label for e in examples for label in set(e.labels))
    kept = [label for label, n in counts.items() if n >= min_count]
    if not kept:
        raise RnnkitError(
            f"{path}: no label is on {min_count} or more texts (the most common, {counts.most_common(1)[0][0]!r}, is "
            f"on {counts.most_common(1)[0][1]}): lower --min-label-count"
        )
    labels = Labels.build(kept)
    if len(labels) < 2 and not multi_label:
        raise RnnkitError(f"{path}: every example has the label {labels.names[0]!r}: a classifier needs two or more")
    return labels


def truncate(path: str, examples: list[Example], max_length: int | None) -> list[Example]:
    """Cut texts to their first ``max_length`` tokens, with one warning giving how many were cut."""
    if max_length is None:
        return examples
    long = [len(e.tokens) for e in examples if len(e.tokens) > max_length]
    if long:
        warnings.warn(
            f"{path}: {len(long):,} training text(s) longer than --max-length {max_length} tokens are cut to their "
            f"first {max_length} (the longest has {max(long):,}); raise --max-length to keep more",
            stacklevel=2,
        )
    return [Example(e.tokens[:max_length], e.labels) for e in examples]


SPEC = TaskSpec("classify", SECTIONS, _prepare, _open, ensemble=load_runs)
