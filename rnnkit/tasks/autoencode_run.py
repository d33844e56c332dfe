"""A sequence-autoencoder run folder: an encoder-decoder trained to write its own input back, whose encoder's final
state is a fixed-size code of the sentence (Dai and Le 2015; Li, Luong and Jurafsky 2015).

The folder is every task's (rnnkit.tasks.runs) with ``vocab.json`` (one vocabulary: input and output are the same
text) and, with subword tokens, ``subwords.spm``. Data: a text file, one sentence a line; empty lines are skipped
(counted); training sentences longer than ``--max-length`` tokens are cut (warned).

The model is :class:`rnnkit.tasks.seq2seq.model.Seq2Seq` without attention by default, so that everything the
decoder knows passes through the code; with ``--hierarchical`` it is the paragraph autoencoder of
:mod:`rnnkit.tasks.seq2seq.hierarchical`, the data's paragraphs are separated by blank lines (one sentence a
line), and a "text" everywhere below is a paragraph: its sentences joined by newlines. ``--word-dropout`` hides
decoder input words so that the code must carry the content rather than the decoder guessing it from the
previous word. :meth:`AutoencodeRun.embed` gives the codes
(``rnnkit embed``) and :meth:`AutoencodeRun.search` the nearest lines by cosine similarity (``rnnkit search``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.config import option
from rnnkit.data.batching import bucket_batches, shard_rows
from rnnkit.data.parallel import read_lines
from rnnkit.data.subwords import Subwords
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError
from rnnkit.resources import check_model_memory, count_params
from rnnkit.tasks import runs
from rnnkit.tasks.base import Prepared, Task, TaskSpec
from rnnkit.tasks.retrieval import cosine
from rnnkit.tasks.seq2seq.attention import ATTENTIONS
from rnnkit.tasks.seq2seq.bleu import corpus_scores
from rnnkit.tasks.seq2seq.hierarchical import HierarchicalAutoencoder, HierarchicalConfig, make_paragraph_batch
from rnnkit.tasks.seq2seq.model import EncoderDecoderConfig, Seq2Seq, Seq2SeqConfig, make_batch
from rnnkit.tasks.translate_run import SPECIALS, Encoded, EpochBatches, TextDataConfig, Tokenizer, check_search
from rnnkit.train import checkpoint as ckpt
from rnnkit.train.config import TrainConfig


@dataclass
class AutoencodeDataConfig(TextDataConfig):
    train: str | None = option(None, "training text: one sentence a line (--hierarchical: paragraphs, blank lines)")
    valid: str | None = option(None, "validation text, for the reconstruction loss and BLEU after each epoch")
    max_length: int | None = option(50, "cut training sentences to this many tokens, with a warning", ge=1)


@dataclass
class AutoencoderConfig(Seq2SeqConfig):
    """:class:`Seq2SeqConfig` with an autoencoder's defaults: no attention (the code is all the decoder reads) and
    a quarter of the decoder's input words hidden."""

    attention: str = option(
        "none", "the attention score; none makes the code the decoder's only view", choices=ATTENTIONS
    )
    word_dropout: float = option(
        0.25, "while training, replace each decoder input word by <unk> with this chance", ge=0, lt=1
    )
    hierarchical: bool = option(
        False,
        "paragraphs (Li, Luong and Jurafsky 2015): words -> sentence codes -> a paragraph code -> back; the data's "
        "paragraphs are separated by blank lines (attention, input feeding, tying and teacher forcing do not apply)",
    )
    max_sentences: int = option(20, "--hierarchical: the most sentences a reconstruction writes", ge=1, le=100_000)

    def hierarchical_config(self) -> HierarchicalConfig:
        """The options the hierarchical model reads: the shared ones, and the longest reconstruction."""
        shared = [f.name for f in fields(EncoderDecoderConfig)]
        return HierarchicalConfig(**{k: getattr(self, k) for k in shared}, max_sentences=self.max_sentences)


SECTIONS = {"data": AutoencodeDataConfig, "model": AutoencoderConfig, "train": TrainConfig}


@dataclass
class AutoencodeRun:
    """Everything a trained autoencoder's run folder holds, loaded."""

    path: Path
    data: AutoencodeDataConfig
    model_config: AutoencoderConfig
    train: TrainConfig
    tokenizer: Tokenizer
    vocab: Vocabulary
    model: Seq2Seq

    model: Seq2Seq | HierarchicalAutoencoder

    @property
    def hierarchical(self) -> bool:
        return self.model_config.hierarchical

    def read(self, path: str | Path) -> list[str]:
        """The texts of a file as this run reads them: its non-empty lines, or (hierarchical) its paragraphs."""
        return read_texts(path, self.hierarchical)

    def ids(self, text: str) -> Any:
        """A text's token ids; hierarchical: a list of sentences' ids (its lines)."""
        encode = lambda line: self.vocab.encode(self.tokenizer.encode(line))  # noqa: E731
        if not self.hierarchical:
            return encode(text)
        return [ids for ids in map(encode, text.split("\n")) if ids]

    def _batches(self, texts: list[str], batch_size: int | None) -> Iterator[tuple[list[int], Any]]:
        """(rows, batch) over the texts that have a token, similar lengths together."""
        ids = [self.ids(t) for t in texts]
        real = [i for i, x in enumerate(ids) if x]
        size = [sum(map(len, ids[i])) if self.hierarchical else len(ids[i]) for i in real]
        for rows in bucket_batches(size, batch_size or self.data.eval_batch_size, shuffle=False):
            rows = [real[r] for r in rows]
            texts_ids = [ids[i] for i in rows]  # each text is its own target: the loss reads them
            if self.hierarchical:
                yield rows, make_paragraph_batch(texts_ids, **SPECIALS)
            else:
                yield rows, make_batch(texts_ids, texts_ids, **SPECIALS)

    def embed(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
        """The code of each text, (N, H) float32; an empty text's is all zeros."""
        codes = np.zeros((len(texts), self.model_config.hidden), dtype=np.float32)
        for rows, batch in self._batches(texts, batch_size):
            code = self.model.code(batch) if self.hierarchical else self.model.code(batch.src, batch.src_lengths)
            codes[rows] = code.detach().numpy()
        return codes

    def search(
        self, index: list[str], queries: list[str], *, top: int = 5, index_codes: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """For each query, the ``top`` texts of ``index`` nearest by cosine similarity of their codes: (position
        from 0, similarity), most similar first. ``index_codes`` reuses codes already computed."""
        if top < 1:
            raise RnnkitError(f"--top must be at least 1, got {top}")
        keys = self.embed(index) if index_codes is None else index_codes
        sims = cosine(self.embed(queries), keys)
        order = np.argsort(-sims, axis=1, kind="stable")[:, :top]
        return [[(int(j), float(sims[q, j])) for j in row] for q, row in enumerate(order)]

    def reconstruct(self, texts: list[str], *, beam_size: int = 5, batch_size: int | None = None) -> list[str]:
        """Each text written back from its code alone (an empty text gives an empty text; hierarchical runs
        decode greedily, sentence by sentence)."""
        check_search(beam_size, 1, 1.5, 10)
        out = [""] * len(texts)
        words = lambda ids: self.tokenizer.decode(self.vocab.decode(ids))  # noqa: E731
        for rows, batch in self._batches(texts, batch_size):
            if self.hierarchical:
                for i, sentences in zip(rows, self.model.reconstruct(batch), strict=True):
                    out[i] = "\n".join(map(words, sentences))
                continue
            limit = (1.5 * batch.src_lengths.double()).long() + 10
            hyps = self.model.translate(batch.src, batch.src_lengths, beam_size=beam_size, max_len=limit)
            for i, (best, *_) in zip(rows, hyps, strict=True):
                out[i] = words(best.tokens)
        return out

    def evaluate(self, path: str | Path, *, beam_size: int = 5, batch_size: int | None = None) -> dict[str, Any]:
        """How well the code keeps each text: the reconstruction loss per token and its perplexity, BLEU and chrF
        of the reconstructions against the texts (sacrebleu; a paragraph is one segment), and the share rebuilt
        exactly."""
        texts = self.read(path)
        # the loss alone (Task's): Seq2Seq.evaluate would also decode every sentence greedily
        loss = Task.evaluate(self.model, [batch for _, batch in self._batches(texts, batch_size)])
        loss["tokens"] = loss.pop("count")
        rebuilt = self.reconstruct(texts, beam_size=beam_size, batch_size=batch_size)
        as_read = lambda t: "\n".join(self.tokenizer.decode(self.tokenizer.encode(s)) for s in t.split("\n"))  # noqa: E731
        gold = [as_read(t) for t in texts]
        exact = sum(r == g for r, g in zip(rebuilt, gold, strict=True)) / len(texts)
        flat = lambda ts: [t.replace("\n", " ") for t in ts]  # noqa: E731
        return {"data": str(path), "count": len(texts), **loss, "exact": exact} | corpus_scores(
            flat(rebuilt), flat(gold)
        )


def read_texts(path: str | Path, paragraphs: bool) -> list[str]:
    r"""The non-empty lines of a file, or its paragraphs (lines between blank lines, joined by newlines).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.txt"
    >>> _ = f.write_text("a b\nc d\n\n\ne f\n")
    >>> read_texts(f, False), read_texts(f, True)
    (['a b', 'c d', 'e f'], ['a b\nc d', 'e f'])
    """
    lines = read_lines(path)
    return paragraphs_of(lines) if paragraphs else [line for line in lines if line.strip()]


def paragraphs_of(lines: list[str]) -> list[str]:
    """Runs of non-empty lines (blank lines between them), each joined by newlines."""
    texts, current = [], []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line)
        elif current:
            texts.append("\n".join(current))
            current = []
    return texts


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> AutoencodeRun:
    """Load a run folder for embedding, search and evaluation (the best weights, else the last checkpoint)."""
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def new_model(vocab: Vocabulary, config: AutoencoderConfig) -> Seq2Seq | HierarchicalAutoencoder:
    if config.hierarchical:
        return HierarchicalAutoencoder(len(vocab), config.hierarchical_config(), unk=vocab.unk_id, **SPECIALS)
    return Seq2Seq(len(vocab), len(vocab), config, unk=vocab.unk_id, **SPECIALS)


def _tokenizer(path: Path, data: AutoencodeDataConfig) -> Tokenizer:
    subwords = None if data.tokens == "words" else Subwords.load(path / "subwords.spm")
    return Tokenizer(subwords, data.lowercase)


def _open(path: Path, cfg: dict[str, Any], weights: str) -> AutoencodeRun:
    vocab = Vocabulary.load(path / "vocab.json")
    model = new_model(vocab, cfg["model"])
    ckpt.load_run_weights(model, path, weights)
    return AutoencodeRun(path, cfg["data"], cfg["model"], cfg["train"], _tokenizer(path, cfg["data"]), vocab, model)


@dataclass
class Paragraphs:
    """Paragraphs as ids (lists of sentences of word ids), batched like :class:`Encoded`."""

    paragraphs: list[list[list[int]]]

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> list[Any]:
        sizes = [sum(map(len, p)) for p in self.paragraphs]
        order = bucket_batches(sizes, batch_size, shuffle=shuffle, seed=seed, epoch=epoch)
        return [
            make_paragraph_batch([self.paragraphs[i] for i in rows], **SPECIALS) for rows in shard_rows(order, *shard)
        ]


def _encode(
    texts: list[str], tokenizer: Tokenizer, vocab: Vocabulary, hierarchical: bool, limit: int | None = None
) -> Encoded | Paragraphs:
    """Ids of each text cut to ``limit`` tokens a sentence; a paragraph's empty sentences are left out."""
    encode = lambda line: vocab.encode(tokenizer.encode(line)[:limit])  # noqa: E731
    if hierarchical:
        return Paragraphs([[ids for ids in map(encode, t.split("\n")) if ids] for t in texts])
    ids = [encode(t) for t in texts]
    return Encoded(ids, ids)


def _read(path: str, hierarchical: bool) -> list[str]:
    texts = read_texts(path, hierarchical)
    if not hierarchical:
        empty = len(read_lines(path)) - len(texts)
        if empty:
            warnings.warn(f"{path}: skipped {empty:,} empty line(s)", stacklevel=2)
    if not texts:
        unit = "paragraphs separated by blank lines" if hierarchical else "one sentence a line"
        raise RnnkitError(f"{path}: no text to train on: give {unit}")
    return texts


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    """Read the texts, learn (or, on resume, load) the tokenizer and vocabulary, build the model."""
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train FILE is required: the sentences to learn to encode, one a line")
    hierarchical = model_cfg.hierarchical
    texts, files = _read(data.train, hierarchical), {}
    lines = [line for t in texts for line in t.split("\n")]
    if run_dir is not None:
        tokenizer, vocab = _tokenizer(run_dir, data), Vocabulary.load(run_dir / "vocab.json")
    else:
        subwords = None
        if data.tokens != "words":
            text = [line.lower() for line in lines] if data.lowercase else lines
            subwords = Subwords.train(text, vocab_size=data.subword_vocab, model_type=data.tokens)
            files["subwords.spm"] = subwords.save
        tokenizer = Tokenizer(subwords, data.lowercase)
        tokens = (t for line in lines for t in tokenizer.encode(line))
        vocab = Vocabulary.build(tokens, min_freq=data.min_freq, max_size=data.max_vocab)
    files["vocab.json"] = vocab.save
    long = sum(len(tokenizer.encode(line)) > (data.max_length or 1 << 30) for line in lines)
    if long:
        warnings.warn(
            f"{data.train}: {long:,} sentence(s) longer than --max-length {data.max_length} tokens are cut",
            stacklevel=2,
        )
    train = _encode(texts, tokenizer, vocab, hierarchical, data.max_length)
    valid = None
    if data.valid is not None:
        valid = _encode(_read(data.valid, hierarchical), tokenizer, vocab, hierarchical).batches(data.eval_batch_size)
    params = count_params(lambda: new_model(Vocabulary.build([]), model_cfg)) + 2 * (len(vocab) - 4) * (
        model_cfg.embed_size
    )
    check_model_memory(params, what="the autoencoder", flag_hint="lower --hidden, --embed, --layers or --max-vocab")
    model = new_model(vocab, model_cfg)
    kind = "hierarchical paragraph" if hierarchical else f"sequence ({model_cfg.attention} attention)"
    summary = (
        f"training a {model_cfg.cell} {kind} autoencoder, word dropout {model_cfg.word_dropout}: vocabulary "
        f"{len(vocab)}, {sum(p.numel() for p in model.parameters()):,} parameters, {len(texts):,} "
        f"{'paragraphs' if hierarchical else 'sentences'}"
    )
    return Prepared(model, EpochBatches(train, train_cfg.batch_size, seed=train_cfg.seed), valid, files, summary)


SPEC = TaskSpec("autoencode", SECTIONS, _prepare, _open)
