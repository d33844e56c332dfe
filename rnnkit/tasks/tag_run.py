"""A tagging run folder as Python objects (config, vocabularies, model), the data it reads, and training into it.

The folder is every task's (rnnkit.tasks.runs) with the tagger's vocabularies: ``vocab.json`` (words),
``tags.json`` (tags, "O" first), and ``intents.json`` (with ``--intent``), ``chars.json`` (with ``--char`` or
``--char-lm``) and ``char_lms.json`` (with ``--char-lm``: the character LMs' architectures; their weights are in
the model's).

Tags and intents the run never saw in training (a dev file's rare tag) are reported by name and count, by one
warning and in the result's ``unknown_tags``/``unknown_intents``; never an error. They are scored as written:
the model cannot predict them, so their spans count as missed and their words and sentences as wrong (what
conlleval does with any gold tag). In the loss they count as "O" (an unknown intent: not at all).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from rnnkit.config import check_fields, option
from rnnkit.data import Vocabulary, bucket_batches
from rnnkit.data.batching import shard_rows
from rnnkit.data.formats import TAGGING_FORMATS, TaggedSentence, read_tagging
from rnnkit.data.labels import Labels
from rnnkit.data.tags import SCHEMES, spans
from rnnkit.errors import RnnkitError
from rnnkit.resources import check_model_memory
from rnnkit.tasks import ensemble_folder, runs
from rnnkit.tasks.base import Prepared, TaskSpec
from rnnkit.tasks.keyphrase import keyphrase_scores, rank_spans
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
from rnnkit.tasks.tag import SequenceTagger, TagBatch, TagConfig, collate, tagging_scores
from rnnkit.tasks.tag_ensemble import EnsembleEncoded, TaggerEnsemble
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed as dist
from rnnkit.train.config import TrainConfig


@dataclass
class TagDataConfig:
    train: str | None = option(None, "training data: a CoNLL file, an ATIS folder (seq.in, seq.out, label) or JSONL")
    valid: str | None = option(None, "validation data (any of the same formats), for span F1 after each epoch")
    format: str = option(
        "auto", "auto: a folder is ATIS, .jsonl/.json is JSON lines, else CoNLL", choices=("auto", *TAGGING_FORMATS)
    )
    token_column: int = option(0, "CoNLL: the column of the token (negative counts from the end)")
    tag_column: int = option(-1, "CoNLL: the column of the tag (default: the last)")
    scheme: str = option("auto", "the files' tag scheme, read as BIO (auto: detect it)", choices=("auto", *SCHEMES))
    embeddings: str | None = option(None, EMBEDDINGS_HELP)
    encoder: str | None = option(None, ENCODER_HELP)
    encoder_backward: str | None = option(None, ENCODER_BACKWARD_HELP)
    char_lm: str | None = option(None, CHAR_LM_HELP)
    char_lm_backward: str | None = option(None, CHAR_LM_BACKWARD_HELP)
    min_freq: int = option(1, "rarer training words become <unk>", ge=1)
    max_vocab: int | None = option(None, "keep at most this many words (the 4 specials included)", ge=5)
    lowercase: bool = option(False, "lowercase words for the word vocabulary (characters keep their case)")
    max_length: int | None = option(None, "truncate longer training sentences to this many words (warned)", ge=1)
    eval_batch_size: int = option(64, "sentences per batch when evaluating and predicting", ge=1)

    def __post_init__(self) -> None:
        check_fields(self)


SECTIONS = {"data": TagDataConfig, "model": TagConfig, "train": TrainConfig}


class Vocabs(NamedTuple):
    """A run's vocabularies: words, tags, and intents, characters and character LMs where the model uses them."""

    words: Vocabulary
    tags: Labels
    intents: Labels | None = None
    chars: Vocabulary | None = None
    char_lms: CharLMs | None = None

    def files(self) -> dict[str, Any]:
        found = {"vocab.json": self.words, "tags.json": self.tags, "intents.json": self.intents}
        found |= {"chars.json": self.chars, "char_lms.json": self.char_lms}
        return {name: v.save for name, v in found.items() if v is not None}


@dataclass
class Encoded:
    """Sentences as ids, ready to batch: per sentence its word ids, tag ids, per-word character ids, intent id,
    and its tags and intent as written (what is scored)."""

    words: list[list[int]]
    tags: list[list[int]]
    chars: list[list[list[int]]] | None
    intents: list[int] | None
    gold: list[list[str]]
    gold_intents: list[str] | None
    unknown_tags: Counter
    unknown_intents: Counter

    def batch(self, rows: Sequence[int]) -> TagBatch:
        """The sentences ``rows`` as one padded batch."""

        def pick(items: list | None) -> list | None:
            return None if items is None else [items[i] for i in rows]

        chars, intents, gold_intents = pick(self.chars), pick(self.intents), pick(self.gold_intents)
        tags, gold = pick(self.tags), pick(self.gold)
        return collate(pick(self.words), tags, chars=chars, intents=intents, gold=gold, gold_intents=gold_intents)

    def batches(
        self, size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0, rank: int = 0, world: int = 1
    ) -> list[TagBatch]:
        """Batches of sentences of similar length (:func:`rnnkit.data.bucket_batches`); under torchrun, process
        ``rank``'s share of each (:func:`rnnkit.data.batching.shard_rows`)."""
        order = bucket_batches([len(w) for w in self.words], size, shuffle=shuffle, seed=seed, epoch=epoch)
        return [self.batch(rows) for rows in shard_rows(order, rank, world)]


class EpochBatches:
    """Training batches reshuffled every epoch from ``(seed, epoch)`` alone, so resuming mid-epoch is exact;
    each process of a torchrun run takes its share of every batch."""

    def __init__(self, data: Encoded, batch_size: int, seed: int) -> None:
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.rank, self.world = dist.rank_world()

    def for_epoch(self, epoch: int) -> list[TagBatch]:
        shard = {"rank": self.rank, "world": self.world}
        return self.data.batches(self.batch_size, shuffle=True, seed=self.seed, epoch=epoch, **shard)


@dataclass
class TagRun:
    """Everything a trained tagging run folder holds, loaded."""

    path: Path
    data: TagDataConfig
    model_config: TagConfig
    train: TrainConfig
    vocabs: Vocabs
    model: SequenceTagger
    members: tuple[TagRun, ...] = ()  # an ensemble's runs (:func:`load_runs`); the fields above are the first's

    def encode(self, sentences: list[TaggedSentence], *, gold: bool = True) -> Encoded | EnsembleEncoded:
        """Sentences as this run's ids (an ensemble: as each member's)."""
        if self.members:
            return EnsembleEncoded([m.encode(sentences, gold=gold) for m in self.members])
        return encode(sentences, self.vocabs, lowercase=self.data.lowercase, gold=gold)

    def evaluate(self, path: str, *, batch_size: int | None = None) -> dict[str, Any]:
        """Span precision/recall/F1 (also per type), token accuracy, and with an intent head intent and sentence
        accuracy, of a tagged file; unknown tags and intents are counted by name (see the module)."""
        if batch_size is not None and batch_size < 1:
            raise RnnkitError(f"--batch-size must be at least 1, got {batch_size}")
        sentences = read(path, self.data)
        encoded = self.encode(sentences)
        report_unknown(path, encoded)
        batches = encoded.batches(batch_size or self.data.eval_batch_size)
        loss, count, gold, pred = self.model.tag_batches(batches)
        scores = tagging_scores(gold[0], pred[0], gold[1], pred[1], spans=self.model.spans, per_type=True)
        unknown = {"unknown_tags": dict(encoded.unknown_tags.most_common())}
        if self.vocabs.intents is not None:
            unknown["unknown_intents"] = dict(encoded.unknown_intents.most_common())
        result = {"data": str(path), "sentences": len(sentences), "count": count} | scores
        if sentences and all(s.keyphrases is not None for s in sentences):
            result["keyphrases"] = self.keyphrase_scores(sentences)
        return result | {"loss": loss / max(count, 1)} | unknown

    def keyphrase_scores(self, documents: list[TaggedSentence]) -> dict[str, dict[str, float]]:
        """Keyphrase F1@5/@10/@M, against all gold keyphrases and against the present ones
        (:func:`rnnkit.tasks.keyphrase.keyphrase_scores`), of the tagged spans ranked by their tags' probability."""
        tagged = self.predict([d.tokens for d in documents], scores=True)
        ranked = [[words for words, _ in rank_spans(t["tokens"], _bounds(t), t["confidence"])] for t in tagged]
        return keyphrase_scores([d.tokens for d in documents], [d.keyphrases or [] for d in documents], ranked)

    def predict(self, sentences: list[list[str]], *, scores: bool = False) -> list[dict[str, Any]]:
        """Each sentence's tags, its spans ``{type, start, end, text}`` (end exclusive) and, with an intent
        head, its intent; an empty sentence gets empty lists (and intent None). With ``scores``, also each
        word's ``confidence`` (the probability of its tag) and each span's ``score`` (their mean)."""
        results: list[dict[str, Any]] = [self._empty(scores) for _ in sentences]
        rows = [i for i, tokens in enumerate(sentences) if tokens]
        tagged = [TaggedSentence(list(sentences[i]), []) for i in rows]
        encoded = self.encode(tagged, gold=False)
        for batch_rows in bucket_batches([len(t.tokens) for t in tagged], self.data.eval_batch_size, shuffle=False):
            batch = encoded.batch(batch_rows)
            decoded = self.model.decode(batch, confidence=scores)
            tags = self.model.tag_strings(decoded.tags, batch.lengths)
            intents = [None] * len(tags) if decoded.intents is None else decoded.intents.tolist()
            confidence = [None] * len(tags)
            if decoded.confidence is not None:
                confidence = [
                    row[:n] for row, n in zip(decoded.confidence.tolist(), batch.lengths.tolist(), strict=False)
                ]
            for j, tag_row, intent, conf in zip(batch_rows, tags, intents, confidence, strict=True):
                results[rows[j]] = self._result(tagged[j].tokens, tag_row, intent, conf)
        return results

    def _result(self, tokens: list[str], tags: list[str], intent: int | None, conf: list | None) -> dict[str, Any]:
        found = spans(tags) if self.model.spans else []
        result: dict[str, Any] = {"tokens": tokens, "tags": tags}
        result["spans"] = [{"type": k, "start": s, "end": e, "text": " ".join(tokens[s:e])} for k, s, e in found]
        if conf is not None:
            result["confidence"] = [round(c, 6) for c in conf]
            for span in result["spans"]:
                span["score"] = round(sum(conf[span["start"] : span["end"]]) / (span["end"] - span["start"]), 6)
        if self.vocabs.intents is not None:
            result["intent"] = self.vocabs.intents.names[intent]
        return result

    def _empty(self, scores: bool = False) -> dict[str, Any]:
        empty: dict[str, Any] = {"tokens": [], "tags": [], "spans": []} | ({"confidence": []} if scores else {})
        return empty | ({"intent": None} if self.vocabs.intents is not None else {})


def _bounds(tagged: dict[str, Any]) -> list[tuple[int, int]]:
    return [(span["start"], span["end"]) for span in tagged["spans"]]


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> TagRun:
    """Load a tagging run folder for evaluation or prediction (the best weights, else the last checkpoint)."""
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def load_runs(paths: Sequence[str | Path], *, weights: str = "best", verb: str | None = None) -> TagRun:
    """One run folder loaded, or several as one ensemble (:mod:`rnnkit.tasks.tag_ensemble`; an ensemble folder
    counts as its runs, :mod:`rnnkit.tasks.ensemble_folder`): the first run's
    data options read the data; the runs must tag the same tags (and intents)."""
    runs_ = [load_run(p, weights=weights, verb=verb) for p in ensemble_folder.expand(paths, SPEC.name, verb)]
    if len(runs_) == 1:
        return runs_[0]
    first = runs_[0]
    model = TaggerEnsemble([r.model for r in runs_], [str(r.path) for r in runs_])
    return TagRun(first.path, first.data, first.model_config, first.train, first.vocabs, model, tuple(runs_))


def train_tagger(cfg: dict[str, Any], run_dir: str | Path, *, resume: bool = False, force: bool = False) -> dict:
    """Train (or, with ``resume``, continue) a tagger into ``run_dir``; ``cfg`` maps "data", "model" and
    "train" to their configs. Under torchrun each process trains on its share of every batch (data parallel)."""
    return runs.train(SPEC, cfg, run_dir, resume=resume, force=force)


def read(path: str | Path, data: TagDataConfig) -> list[TaggedSentence]:
    """Tagged sentences of a CoNLL file, ATIS folder or JSON lines file, read with the run's format options."""
    return read_tagging(
        path, data.format, token_column=data.token_column, tag_column=data.tag_column, scheme=data.scheme
    )


def build_vocabs(sentences: list[TaggedSentence], data: TagDataConfig, model: TagConfig) -> Vocabs:
    """Words (lowercased with ``lowercase``), tags ("O" first), intents and characters of training sentences."""
    tokens = [w.lower() if data.lowercase else w for s in sentences for w in s.tokens]
    words = encoder_vocabulary(Vocabulary.build(tokens, min_freq=data.min_freq, max_size=data.max_vocab), data)
    all_tags = {t for s in sentences for t in s.tags}
    tags = Labels.build(all_tags, first=("O",) if "O" in all_tags else ())
    intents = Labels.build(s.intent for s in sentences) if model.intent else None
    char_lms = CharLMs.from_runs(data.char_lm, data.char_lm_backward)
    read_chars = model.char or char_lms is not None
    chars = character_vocabulary((w for s in sentences for w in s.tokens), char_lms) if read_chars else None
    return Vocabs(words, tags, intents, chars, char_lms)


def load_vocabs(path: Path, model: TagConfig) -> Vocabs:
    intents = Labels.load(path / "intents.json") if model.intent else None
    char_lms = CharLMs.in_run(path)
    chars = Vocabulary.load(path / "chars.json") if model.char or char_lms else None
    return Vocabs(Vocabulary.load(path / "vocab.json"), Labels.load(path / "tags.json"), intents, chars, char_lms)


def encode(sentences: list[TaggedSentence], vocabs: Vocabs, *, lowercase: bool = False, gold: bool = True) -> Encoded:
    """Sentences as ids; unknown words read as <unk>, unknown tags as "O" (counted), unknown intents as -1
    (counted). Gold intents are kept when the run has an intent head and every sentence has one."""
    words, tags, intents = vocabs.words, vocabs.tags, vocabs.intents
    outside = tags.index("O") if "O" in tags else 0
    lookup = {name: i for i, name in enumerate(tags.names)}
    word_ids = [words.encode(w.lower() for w in s.tokens) if lowercase else words.encode(s.tokens) for s in sentences]
    tag_ids = [[lookup.get(t, outside) for t in s.tags] for s in sentences] if gold else None
    char_ids = None
    if vocabs.chars is not None:
        char_ids = [[vocabs.chars.encode(w) for w in s.tokens] for s in sentences]
    gold_intents = [s.intent for s in sentences]
    if intents is None or not gold or any(i is None for i in gold_intents):
        gold_intents, intent_ids = None, None
    else:
        intent_ids = [intents.index(i) if i in intents else -1 for i in gold_intents]
    unknown_tags = tags.unknown(t for s in sentences for t in s.tags) if gold else Counter()
    unknown_intents = intents.unknown(gold_intents) if gold_intents is not None and intents else Counter()
    gold_tags = [s.tags for s in sentences] if gold else None
    return Encoded(word_ids, tag_ids, char_ids, intent_ids, gold_tags, gold_intents, unknown_tags, unknown_intents)


def report_unknown(path: str | Path, encoded: Encoded | EnsembleEncoded) -> None:
    """One warning per kind, naming the tags (intents) the run does not know and how often each occurs."""
    for what, counts in (("tag", encoded.unknown_tags), ("intent", encoded.unknown_intents)):
        if counts:
            shown = ", ".join(f"{name} ({n})" for name, n in counts.most_common(10))
            more = f" and {len(counts) - 10} more" if len(counts) > 10 else ""
            warnings.warn(
                f"{path}: {sum(counts.values())} {what}(s) the run never saw in training: {shown}{more}; "
                f"scored as written (the model cannot predict them)",
                stacklevel=2,
            )


def new_model(vocabs: Vocabs, config: TagConfig) -> SequenceTagger:
    words, chars, intents = vocabs.words, vocabs.chars, vocabs.intents
    options = {"num_chars": len(chars) if chars else 0, "intent_names": intents.names if intents else ()}
    options |= {"pad_id": words.pad_id, "unk_id": words.unk_id, "word_counts": words.counts}
    if vocabs.char_lms is not None:
        options["lm_features"] = StringFeatures(vocabs.char_lms, chars.tokens)
    return SequenceTagger(len(words), vocabs.tags.names, config, **options)


def _open(path: Path, cfg: dict[str, Any], weights: str) -> TagRun:
    vocabs = load_vocabs(path, cfg["model"])
    model = new_model(vocabs, cfg["model"])
    ckpt.load_run_weights(model, path, weights)
    return TagRun(path, cfg["data"], cfg["model"], cfg["train"], vocabs, model)


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    """Read and check the tagged sentences, build (or, on resume, load) the vocabularies and the model."""
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train PATH is required: a CoNLL file, an ATIS folder or a JSON lines file")
    sentences = _truncate(read(data.train, data), data.max_length, data.train)
    if model_cfg.intent:
        _check_intents(sentences, data.train)
    vocabs = load_vocabs(run_dir, model_cfg) if run_dir is not None else build_vocabs(sentences, data, model_cfg)
    train = encode(sentences, vocabs, lowercase=data.lowercase)
    if train.unknown_tags or train.unknown_intents:  # only on resume, when the training data changed
        unknown = ", ".join((train.unknown_tags + train.unknown_intents).keys())
        raise RnnkitError(f"{data.train} has labels the run was not built with ({unknown}): train a new run")
    valid = None
    if data.valid is not None:
        encoded = encode(read(data.valid, data), vocabs, lowercase=data.lowercase)
        report_unknown(data.valid, encoded)
        valid = encoded.batches(data.eval_batch_size)
    sizes = (len(vocabs.words), len(vocabs.tags), len(vocabs.intents or ()), len(vocabs.chars or ()))
    what = f"a {model_cfg.layers}-layer {model_cfg.cell} tagger of hidden {model_cfg.hidden}"
    check_model_memory(model_cfg.params(*sizes), what=what, flag_hint="lower --hidden, --embed, --layers or --window")
    model = new_model(vocabs, model_cfg)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)  # (frozen LMs not counted)
    words = sum(len(s.tokens) for s in sentences)
    summary = (
        f"training a {model_cfg.layers}-layer {model_cfg.cell} tagger{' + CRF' * model_cfg.crf}: {len(vocabs.tags)} "
        f"tags, vocabulary {len(vocabs.words)}, {params:,} parameters, {len(sentences):,} sentences ({words:,} words)"
    )
    if run_dir is None:  # a resumed run's weights are in its checkpoint
        if model_cfg.window and (data.encoder or data.encoder_backward):
            raise RnnkitError("--encoder starts layers that read one word at a time: leave out --window")
        rnn = None if model_cfg.feedforward else model.encoder
        started = start_from(model.embedding.weight, rnn, vocabs.words, data, model_cfg.cell)
        summary += "; " * bool(started) + started
    if model.lm_features is not None:  # computed once, not at every epoch
        fixed = [*train.batches(data.eval_batch_size), *(valid or [])]
        rows = ((b.chars, b.char_lengths, b.lengths, b.char_index) for b in fixed)
        summary += "; " + model.lm_features.start(data, rows, new=run_dir is None)
    batches = EpochBatches(train, train_cfg.batch_size, train_cfg.seed)
    return Prepared(model, batches, valid, vocabs.files(), summary)


def _truncate(sentences: list[TaggedSentence], max_length: int | None, path: str) -> list[TaggedSentence]:
    long = [s for s in sentences if max_length is not None and len(s.tokens) > max_length]
    if long:
        warnings.warn(
            f"{path}: {len(long)} sentence(s) longer than --max-length {max_length} (the longest "
            f"{max(len(s.tokens) for s in long)} words) were cut to {max_length} words",
            stacklevel=2,
        )
        for s in long:
            s.tokens, s.tags = s.tokens[:max_length], s.tags[:max_length]
    return sentences


def _check_intents(sentences: list[TaggedSentence], path: str) -> None:
    missing = sum(s.intent is None for s in sentences)
    if missing:
        raise RnnkitError(
            f"{path}: --intent needs an intent for every sentence, and {missing:,} of {len(sentences):,} have none: "
            'give an ATIS folder with a label file, or JSON lines with an "intent" field'
        )


SPEC = TaskSpec("tag", SECTIONS, _prepare, _open, ensemble=load_runs)
