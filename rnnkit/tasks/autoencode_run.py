"""A sequence-autoencoder run folder: an encoder-decoder trained to write its own input back, whose encoder's final
state is a fixed-size code of the sentence (Dai and Le 2015; Li, Luong and Jurafsky 2015).

The folder is every task's (rnnkit.tasks.runs) with ``vocab.json`` (one vocabulary: input and output are the same
text) and, with subword tokens, ``subwords.spm``. Data: a text file, one sentence a line; empty lines are skipped
(counted); training sentences longer than ``--max-length`` tokens are cut (warned).

The model is :class:`rnnkit.tasks.seq2seq.model.Seq2Seq` without attention by default, so that everything the
decoder knows passes through the code; ``--word-dropout`` hides decoder input words so that the code must carry
the content rather than the decoder guessing it from the previous word. :meth:`AutoencodeRun.embed` gives the codes
(``rnnkit embed``) and :meth:`AutoencodeRun.search` the nearest lines by cosine similarity (``rnnkit search``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.config import check_fields, option
from rnnkit.data.batching import bucket_batches
from rnnkit.data.parallel import read_lines
from rnnkit.data.subwords import Subwords
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError
from rnnkit.resources import check_model_memory, count_params
from rnnkit.tasks import runs
from rnnkit.tasks.base import Prepared, Task, TaskSpec
from rnnkit.tasks.seq2seq.attention import ATTENTIONS
from rnnkit.tasks.seq2seq.bleu import corpus_scores
from rnnkit.tasks.seq2seq.model import Seq2Seq, Seq2SeqConfig, make_batch
from rnnkit.tasks.translate_run import SPECIALS, TOKENS, Encoded, EpochBatches, Tokenizer, check_search
from rnnkit.train import checkpoint as ckpt
from rnnkit.train.config import TrainConfig


@dataclass
class AutoencodeDataConfig:
    train: str | None = option(None, "training text: one sentence a line")
    valid: str | None = option(None, "validation text, for the reconstruction loss and BLEU after each epoch")
    tokens: str = option("words", "words (split on whitespace) or subwords learned with sentencepiece", choices=TOKENS)
    subword_vocab: int = option(8000, "subwords (with --tokens bpe or unigram)", ge=8)
    lowercase: bool = option(False, "lowercase every sentence")
    min_freq: int = option(1, "rarer training tokens become <unk>", ge=1)
    max_vocab: int | None = option(None, "keep at most this many tokens (specials included)", ge=5)
    max_length: int | None = option(50, "cut training sentences to this many tokens, with a warning", ge=1)
    eval_batch_size: int = option(64, "sentences per batch when evaluating and embedding", ge=1)

    def __post_init__(self) -> None:
        check_fields(self)


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

    def embed(self, lines: list[str], *, batch_size: int | None = None) -> np.ndarray:
        """The code of each line, (N, H) float32; an empty line's is all zeros."""
        ids = [self.vocab.encode(self.tokenizer.encode(line)) for line in lines]
        codes = np.zeros((len(lines), self.model_config.hidden), dtype=np.float32)
        real = [i for i, s in enumerate(ids) if s]
        for rows in bucket_batches([len(ids[i]) for i in real], batch_size or self.data.eval_batch_size, shuffle=False):
            rows = [real[r] for r in rows]
            batch = make_batch([ids[i] for i in rows], **SPECIALS)
            codes[rows] = self.model.code(batch.src, batch.src_lengths).numpy()
        return codes

    def search(
        self, index: list[str], queries: list[str], *, top: int = 5, index_codes: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """For each query, the ``top`` lines of ``index`` nearest by cosine similarity of their codes: (line
        number from 0, similarity), most similar first. ``index_codes`` reuses codes already computed."""
        if top < 1:
            raise RnnkitError(f"--top must be at least 1, got {top}")
        keys = self.embed(index) if index_codes is None else index_codes
        sims = cosine(self.embed(queries), keys)
        order = np.argsort(-sims, axis=1, kind="stable")[:, :top]
        return [[(int(j), float(sims[q, j])) for j in row] for q, row in enumerate(order)]

    def reconstruct(self, lines: list[str], *, beam_size: int = 5, batch_size: int | None = None) -> list[str]:
        """Each line written back from its code alone (an empty line gives an empty line)."""
        check_search(beam_size, 1, 1.5, 10)
        ids = [self.vocab.encode(self.tokenizer.encode(line)) for line in lines]
        out = [""] * len(lines)
        real = [i for i, s in enumerate(ids) if s]
        for rows in bucket_batches([len(ids[i]) for i in real], batch_size or self.data.eval_batch_size, shuffle=False):
            rows = [real[r] for r in rows]
            batch = make_batch([ids[i] for i in rows], **SPECIALS)
            limit = (1.5 * batch.src_lengths.double()).long() + 10
            hyps = self.model.translate(batch.src, batch.src_lengths, beam_size=beam_size, max_len=limit)
            for i, (best, *_) in zip(rows, hyps, strict=True):
                out[i] = self.tokenizer.decode(self.vocab.decode(best.tokens))
        return out

    def evaluate(self, path: str | Path, *, beam_size: int = 5, batch_size: int | None = None) -> dict[str, Any]:
        """How well the code keeps each sentence: the reconstruction loss per token and its perplexity, BLEU and
        chrF of the reconstructions against the sentences (sacrebleu), and the share rebuilt exactly."""
        lines = [line for line in read_lines(path) if line.strip()]
        if not lines:
            raise RnnkitError(f"{path}: no sentences to evaluate")
        encoded = _encode(lines, self.tokenizer, self.vocab)
        # the loss alone (Task's): Seq2Seq.evaluate would also decode every sentence greedily
        loss = Task.evaluate(self.model, encoded.batches(batch_size or self.data.eval_batch_size))
        loss["tokens"] = loss.pop("count")
        rebuilt = self.reconstruct(lines, beam_size=beam_size, batch_size=batch_size)
        gold = [self.tokenizer.decode(self.tokenizer.encode(line)) for line in lines]  # as the run reads them
        exact = sum(r == g for r, g in zip(rebuilt, gold, strict=True)) / len(lines)
        return {"data": str(path), "count": len(lines), **loss, "exact": exact} | corpus_scores(rebuilt, gold)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities (A, B) of the rows of ``a`` and ``b`` (a zero row is similar to nothing: 0).

    >>> cosine(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[2.0, 0.0], [1.0, 1.0]])).round(4).tolist()
    [[1.0, 0.7071], [0.0, 0.0]]
    """
    norm = lambda m: m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)  # noqa: E731
    return norm(a) @ norm(b).T


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> AutoencodeRun:
    """Load a run folder for embedding, search and evaluation (the best weights, else the last checkpoint)."""
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def new_model(vocab: Vocabulary, config: AutoencoderConfig) -> Seq2Seq:
    return Seq2Seq(len(vocab), len(vocab), config, unk=vocab.unk_id, **SPECIALS)


def _tokenizer(path: Path, data: AutoencodeDataConfig) -> Tokenizer:
    subwords = None if data.tokens == "words" else Subwords.load(path / "subwords.spm")
    return Tokenizer(subwords, data.lowercase)


def _open(path: Path, cfg: dict[str, Any], weights: str) -> AutoencodeRun:
    vocab = Vocabulary.load(path / "vocab.json")
    model = new_model(vocab, cfg["model"])
    ckpt.load_run_weights(model, path, weights)
    return AutoencodeRun(path, cfg["data"], cfg["model"], cfg["train"], _tokenizer(path, cfg["data"]), vocab, model)


def _encode(lines: list[str], tokenizer: Tokenizer, vocab: Vocabulary, limit: int | None = None) -> Encoded:
    ids = [vocab.encode(tokenizer.encode(line)[:limit]) for line in lines]
    return Encoded(ids, ids)


def _read(path: str) -> list[str]:
    lines = read_lines(path)
    kept = [line for line in lines if line.strip()]
    if len(kept) < len(lines):
        warnings.warn(f"{path}: skipped {len(lines) - len(kept):,} empty line(s)", stacklevel=2)
    if not kept:
        raise RnnkitError(f"{path}: no sentences to train on: give one sentence a line")
    return kept


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    """Read the sentences, learn (or, on resume, load) the tokenizer and vocabulary, build the model."""
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train FILE is required: the sentences to learn to encode, one a line")
    lines, files = _read(data.train), {}
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
    train = _encode(lines, tokenizer, vocab, data.max_length)
    valid = None
    if data.valid is not None:
        valid = _encode(_read(data.valid), tokenizer, vocab).batches(data.eval_batch_size)
    params = count_params(lambda: new_model(Vocabulary.build([]), model_cfg)) + 2 * (len(vocab) - 4) * (
        model_cfg.embed_size
    )
    check_model_memory(params, what="the autoencoder", flag_hint="lower --hidden, --embed, --layers or --max-vocab")
    model = new_model(vocab, model_cfg)
    summary = (
        f"training a {model_cfg.cell} sequence autoencoder ({model_cfg.attention} attention, word dropout "
        f"{model_cfg.word_dropout}): vocabulary {len(vocab)}, {sum(p.numel() for p in model.parameters()):,} "
        f"parameters, {len(lines):,} sentences"
    )
    return Prepared(model, EpochBatches(train, train_cfg.batch_size, seed=train_cfg.seed), valid, files, summary)


SPEC = TaskSpec("autoencode", SECTIONS, _prepare, _open)
