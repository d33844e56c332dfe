"""A translation run folder as Python objects (config, tokenizers, vocabularies, model), its data, and training.

The folder is every task's (rnnkit.tasks.runs) with each side's vocabulary, ``src.vocab.json`` and
``tgt.vocab.json``, and with subword tokens each side's sentencepiece model, ``src.spm`` and ``tgt.spm``.

Data follows fairseq's and OpenNMT's parallel files: ``--train PREFIX`` with ``--src-lang de --tgt-lang en`` reads
``PREFIX.de`` and ``PREFIX.en``, one sentence a line, aligned (:mod:`rnnkit.data.parallel`). Tokens are the
whitespace-separated words (``--tokens words``) or subwords that sentencepiece learns on the training side
(``--tokens bpe|unigram``, ``--subword-vocab N``). Training pairs with an empty side are skipped (counted);
longer than ``--max-length`` tokens are cut (warned); translation reads every token and gives an empty line
for an empty one. Output is detokenised (subwords joined back; words joined by spaces) and scored with
sacrebleu (:mod:`rnnkit.tasks.seq2seq.bleu`).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnkit.config import check_fields, option
from rnnkit.data.batching import bucket_batches, shard_rows
from rnnkit.data.parallel import parallel_paths, read_parallel
from rnnkit.data.subwords import Subwords
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError
from rnnkit.resources import check_model_memory, count_params
from rnnkit.tasks import runs
from rnnkit.tasks.base import Prepared, TaskSpec
from rnnkit.tasks.seq2seq.bleu import corpus_scores
from rnnkit.tasks.seq2seq.model import Seq2Seq, Seq2SeqBatch, Seq2SeqConfig, make_batch
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed as dist
from rnnkit.train.config import TrainConfig

TOKENS = ("words", "bpe", "unigram")
#: the ids rnnkit's Vocabulary gives its specials
SPECIALS = {"pad_id": 0, "bos": 2, "eos": 3}


@dataclass
class TextDataConfig:
    """The data options of every encoder-decoder task over text (translate, autoencode): files and tokens."""

    train: str | None = option(None, "training data")
    valid: str | None = option(None, "validation data, for the loss and BLEU after each epoch")
    tokens: str = option("words", "words (split on whitespace) or subwords learned with sentencepiece", choices=TOKENS)
    subword_vocab: int = option(8000, "subwords per side (with --tokens bpe or unigram)", ge=8)
    lowercase: bool = option(False, "lowercase the text (and the references BLEU compares with)")
    min_freq: int = option(1, "rarer training tokens become <unk>", ge=1)
    max_vocab: int | None = option(None, "keep at most this many tokens per side (specials included)", ge=5)
    max_length: int | None = option(100, "cut training sentences to this many tokens, with a warning", ge=1)
    eval_batch_size: int = option(64, "sentences per batch when evaluating and translating", ge=1)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class TranslateDataConfig(TextDataConfig):
    train: str | None = option(None, "training data PREFIX: reads PREFIX.SRC and PREFIX.TGT, aligned line by line")
    valid: str | None = option(None, "validation data PREFIX, for the loss and BLEU after each epoch")
    src_lang: str | None = option(None, "source language: the suffix of the source files (e.g. de)")
    tgt_lang: str | None = option(None, "target language: the suffix of the target files (e.g. en)")


SECTIONS = {"data": TranslateDataConfig, "model": Seq2SeqConfig, "train": TrainConfig}


class Tokenizer:
    """One side's text <-> tokens: whitespace words, or a sentencepiece model's pieces; lowercased if asked."""

    def __init__(self, subwords: Subwords | None, lowercase: bool) -> None:
        self.subwords, self.lowercase = subwords, lowercase

    def encode(self, line: str) -> list[str]:
        line = line.lower() if self.lowercase else line
        return self.subwords.encode(line) if self.subwords is not None else line.split()

    def decode(self, tokens: list[str]) -> str:
        return self.subwords.decode(tokens) if self.subwords is not None else " ".join(tokens)


@dataclass
class Encoded:
    """Sentence pairs as ids (targets without <bos>/<eos>)."""

    sources: list[list[int]]
    targets: list[list[int]]

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> list[Seq2SeqBatch]:
        order = bucket_batches([len(s) for s in self.sources], batch_size, shuffle=shuffle, seed=seed, epoch=epoch)
        return [self.batch(rows) for rows in shard_rows(order, *shard)]

    def batch(self, rows: list[int]) -> Seq2SeqBatch:
        return make_batch([self.sources[i] for i in rows], [self.targets[i] for i in rows], **SPECIALS)


class EpochBatches:
    """Training batches reshuffled by ``(seed, epoch)`` alone, so resuming mid-epoch is exact."""

    def __init__(self, data: Encoded, batch_size: int, *, seed: int) -> None:
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.shard = dist.rank_world()  # each process of a torchrun run takes its share of every batch

    def for_epoch(self, epoch: int) -> list[Seq2SeqBatch]:
        return self.data.batches(self.batch_size, shuffle=True, seed=self.seed, epoch=epoch, shard=self.shard)


@dataclass
class TranslateRun:
    """Everything a trained run folder holds, loaded."""

    path: Path
    data: TranslateDataConfig
    model_config: Seq2SeqConfig
    train: TrainConfig
    src: Tokenizer
    tgt: Tokenizer
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    model: Seq2Seq

    def translate(
        self,
        lines: list[str],
        *,
        beam_size: int = 5,
        n_best: int = 1,
        length_penalty: float = 1.0,
        max_len_a: float = 2.0,
        max_len_b: int = 10,
        batch_size: int | None = None,
        early_stop: bool = True,
        shrink: bool = False,
    ) -> list[list[dict[str, Any]]]:
        """Each line's ``n_best`` translations, best first: ``{"text", "score", "log_prob"}`` (an empty line: one
        empty translation of score 0). Outputs stop at <eos> or at ``max_len_a * source tokens + max_len_b``;
        ``early_stop`` and ``shrink``: see :func:`rnnkit.tasks.seq2seq.search.beam_search`."""
        check_search(beam_size, n_best, max_len_a, max_len_b, length_penalty)
        ids = [self.src_vocab.encode(self.src.encode(line)) for line in lines]
        results: list[list[dict[str, Any]]] = [[{"text": "", "score": 0.0, "log_prob": 0.0}] for _ in lines]
        real = [i for i, s in enumerate(ids) if s]
        for rows in bucket_batches([len(ids[i]) for i in real], batch_size or self.data.eval_batch_size, shuffle=False):
            rows = [real[r] for r in rows]
            batch = make_batch([ids[i] for i in rows], **SPECIALS)
            limit = (max_len_a * batch.src_lengths.double()).long() + max_len_b
            kw = {"beam_size": beam_size, "n_best": n_best, "length_penalty": length_penalty, "max_len": limit}
            kw |= {"early_stop": early_stop, "shrink": shrink}
            for i, hyps in zip(rows, self.model.translate(batch.src, batch.src_lengths, **kw), strict=True):
                results[i] = [self._result(h) for h in hyps]
        return results

    def attention(self, line: str, **search: Any) -> tuple[list[str], list[str], list[list[float]]]:
        """Where the decoder looked while translating ``line`` (with ``search`` as in :meth:`translate`): the source
        tokens, the output tokens (and <eos>) and the weights, one row per output token, one column per source
        token."""
        tokens = self.src.encode(line)
        if not tokens:
            raise RnnkitError("an empty sentence has no attention to show")
        ids = self.src_vocab.encode(tokens)
        batch = make_batch([ids], **SPECIALS)
        check_search(search.get("beam_size", 5), 1, search.get("max_len_a", 2.0), search.get("max_len_b", 10))
        limit = int(search.get("max_len_a", 2.0) * len(ids)) + search.get("max_len_b", 10)
        kw = {"beam_size": search.get("beam_size", 5), "length_penalty": search.get("length_penalty", 1.0)}
        kw["early_stop"] = search.get("early_stop", True)  # as translate() searched
        kw["shrink"] = search.get("shrink", False)
        (best,) = self.model.translate(batch.src, batch.src_lengths, max_len=limit, **kw)[0]
        weights = self.model.attention_map(batch.src, batch.src_lengths, [best.tokens])[0]
        return tokens, [*self.tgt_vocab.decode(best.tokens), "<eos>"], weights.tolist()

    def _result(self, hypothesis: Any) -> dict[str, Any]:
        tokens = self.tgt_vocab.decode(hypothesis.tokens)
        return {"text": self.tgt.decode(tokens), "score": hypothesis.score, "log_prob": hypothesis.log_prob}

    def evaluate(
        self,
        src_path: str | Path,
        ref_path: str | Path,
        *,
        beam_size: int = 5,
        length_penalty: float = 1.0,
        batch_size: int | None = None,
        **search: Any,
    ) -> dict[str, Any]:
        """BLEU and chrF (sacrebleu, with their signatures) of the run's translations of ``src_path`` against
        ``ref_path`` (aligned line by line), and the translation speed."""
        pairs = read_parallel(src_path, ref_path, skip_empty=False)
        if not pairs.src:
            raise RnnkitError(f"{src_path}: no sentences to translate")
        start = time.perf_counter()
        kw = {"beam_size": beam_size, "length_penalty": length_penalty, "batch_size": batch_size} | search
        hypotheses = [n_best[0]["text"] for n_best in self.translate(pairs.src, **kw)]
        seconds = time.perf_counter() - start
        scores = corpus_scores(hypotheses, pairs.tgt, lowercase=self.data.lowercase)
        return scores | {
            "src": str(src_path),
            "ref": str(ref_path),
            "count": len(hypotheses),
            "beam": beam_size,
            "length_penalty": length_penalty,
            "seconds": seconds,
            "sentences_per_second": len(hypotheses) / seconds,
        }

    def evaluate_prefix(self, prefix: str, **kw: Any) -> dict[str, Any]:
        """:meth:`evaluate` on PREFIX.SRC and PREFIX.TGT, the training data's layout."""
        src, tgt = parallel_paths(prefix, self.data.src_lang, self.data.tgt_lang, flag="--data")
        return self.evaluate(src, tgt, **kw)


#: the widest beam: each beam row costs a full output layer, and far wider beams only exhaust memory
MAX_BEAM = 1000
#: the longest output: beyond it max_len_a * length overflows, and no sentence needs it
MAX_OUTPUT = 100_000


def check_search(beam_size: int, n_best: int, max_len_a: float, max_len_b: int, length_penalty: float = 1.0) -> None:
    """One line for a search option a careless user might give: NaN, a negative, 0, or one too large."""
    if beam_size < 1:
        raise RnnkitError(f"--beam must be at least 1, got {beam_size}")
    if beam_size > MAX_BEAM:
        raise RnnkitError(f"--beam must be at most {MAX_BEAM}, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise RnnkitError(f"--n-best must be between 1 and --beam ({beam_size}), got {n_best}")
    if not (0 <= max_len_a <= MAX_OUTPUT and 0 <= max_len_b <= MAX_OUTPUT) or (max_len_a == 0 and max_len_b == 0):
        raise RnnkitError(
            f"--max-len-a and --max-len-b must be numbers in [0, {MAX_OUTPUT:,}], not both 0, got {max_len_a} and "
            f"{max_len_b}"
        )
    if not math.isfinite(length_penalty):
        raise RnnkitError(f"--length-penalty must be a finite number, got {length_penalty}")


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> TranslateRun:
    """Load a run folder for evaluation or translation (the best weights, else the last checkpoint)."""
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def train_translator(cfg: dict[str, Any], run_dir: str | Path, *, resume: bool = False, force: bool = False) -> dict:
    """Train (or, with ``resume``, continue) a translator into ``run_dir``; ``cfg`` maps "data", "model" and
    "train" to their configs. Under torchrun each process trains on its share of every batch (data parallel)."""
    return runs.train(SPEC, cfg, run_dir, resume=resume, force=force)


def new_model(src_vocab: Vocabulary, tgt_vocab: Vocabulary, config: Seq2SeqConfig) -> Seq2Seq:
    return Seq2Seq(len(src_vocab), len(tgt_vocab), config, **SPECIALS)


def _tokenizers(path: Path, data: TranslateDataConfig) -> tuple[Tokenizer, Tokenizer]:
    if data.tokens == "words":
        return Tokenizer(None, data.lowercase), Tokenizer(None, data.lowercase)
    return Tokenizer(Subwords.load(path / "src.spm"), data.lowercase), Tokenizer(
        Subwords.load(path / "tgt.spm"), data.lowercase
    )


def _open(path: Path, cfg: dict[str, Any], weights: str) -> TranslateRun:
    src_vocab, tgt_vocab = Vocabulary.load(path / "src.vocab.json"), Vocabulary.load(path / "tgt.vocab.json")
    model = new_model(src_vocab, tgt_vocab, cfg["model"])
    ckpt.load_run_weights(model, path, weights)
    src, tgt = _tokenizers(path, cfg["data"])
    return TranslateRun(path, cfg["data"], cfg["model"], cfg["train"], src, tgt, src_vocab, tgt_vocab, model)


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    """Read and check the pairs, learn (or, on resume, load) tokenizers and vocabularies, build the model."""
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train PREFIX is required: the parallel files PREFIX.SRC and PREFIX.TGT to learn from")
    if data.src_lang is None or data.tgt_lang is None:
        raise RnnkitError("--src-lang and --tgt-lang are required: the suffixes of the source and target files")
    pairs = read_parallel(*parallel_paths(data.train, data.src_lang, data.tgt_lang))
    if not pairs.src:
        raise RnnkitError(f"{data.train}.{data.src_lang}: no sentence pairs to train on")
    files: dict[str, Any] = {}
    if run_dir is not None:
        src, tgt = _tokenizers(run_dir, data)
    elif data.tokens == "words":
        src, tgt = Tokenizer(None, data.lowercase), Tokenizer(None, data.lowercase)
    else:
        src, tgt = (_learn_subwords(lines, data) for lines in (pairs.src, pairs.tgt))
        files |= {"src.spm": src.subwords.save, "tgt.spm": tgt.subwords.save}
    src_tokens, tgt_tokens = _truncate(data, [src.encode(s) for s in pairs.src], [tgt.encode(t) for t in pairs.tgt])
    if run_dir is not None:
        src_vocab, tgt_vocab = Vocabulary.load(run_dir / "src.vocab.json"), Vocabulary.load(run_dir / "tgt.vocab.json")
    else:
        kw = {"min_freq": data.min_freq, "max_size": data.max_vocab}
        src_vocab = Vocabulary.build((t for s in src_tokens for t in s), **kw)
        tgt_vocab = Vocabulary.build((t for s in tgt_tokens for t in s), **kw)
    files |= {"src.vocab.json": src_vocab.save, "tgt.vocab.json": tgt_vocab.save}
    train = Encoded([src_vocab.encode(s) for s in src_tokens], [tgt_vocab.encode(t) for t in tgt_tokens])
    valid = None
    if data.valid is not None:
        vpairs = read_parallel(*parallel_paths(data.valid, data.src_lang, data.tgt_lang, flag="--valid"))
        encoded = Encoded(
            [src_vocab.encode(src.encode(s)) for s in vpairs.src], [tgt_vocab.encode(tgt.encode(t)) for t in vpairs.tgt]
        )
        valid = encoded.batches(data.eval_batch_size) if encoded.sources else None
    params = count_params(lambda: new_model(Vocabulary.build([]), Vocabulary.build([]), model_cfg))
    params += (len(src_vocab) - 4 + len(tgt_vocab) - 4) * model_cfg.embed_size  # the embeddings, counted by hand
    what = f"a {model_cfg.cell} encoder-decoder of hidden {model_cfg.hidden}"
    check_model_memory(params, what=what, flag_hint="lower --hidden, --embed, --layers or --max-vocab")
    model = new_model(src_vocab, tgt_vocab, model_cfg)
    params = sum(p.numel() for p in model.parameters())
    direction = "bidirectional " if model_cfg.bidirectional else ""
    summary = (
        f"training a {model_cfg.layers}-layer {direction}{model_cfg.cell} encoder-decoder, {model_cfg.attention} "
        f"attention: vocabularies {len(src_vocab)} ({data.src_lang}) / {len(tgt_vocab)} ({data.tgt_lang}), "
        f"{params:,} parameters, {len(train.sources):,} sentence pairs"
    )
    return Prepared(model, EpochBatches(train, train_cfg.batch_size, seed=train_cfg.seed), valid, files, summary)


def _learn_subwords(lines: list[str], data: TranslateDataConfig) -> Tokenizer:
    text = [line.lower() for line in lines] if data.lowercase else lines
    return Tokenizer(Subwords.train(text, vocab_size=data.subword_vocab, model_type=data.tokens), data.lowercase)


def _truncate(
    data: TranslateDataConfig, sources: list[list[str]], targets: list[list[str]]
) -> tuple[list[list[str]], list[list[str]]]:
    """Cut training sentences longer than ``max_length`` tokens, with one warning giving how many."""
    limit = data.max_length
    if limit is None:
        return sources, targets
    cut = sum(len(s) > limit or len(t) > limit for s, t in zip(sources, targets, strict=True))
    if cut:
        longest = max(max(map(len, sources)), max(map(len, targets)))
        warnings.warn(
            f"{data.train}: {cut:,} training pair(s) with a side longer than --max-length {limit} tokens are cut to "
            f"their first {limit} (the longest has {longest:,}); raise --max-length to keep more",
            stacklevel=2,
        )
    return [s[:limit] for s in sources], [t[:limit] for t in targets]


SPEC = TaskSpec("translate", SECTIONS, _prepare, _open)
