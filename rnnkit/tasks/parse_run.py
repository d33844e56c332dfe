"""Parsing as translation (Vinyals et al. 2015, "Grammar as a Foreign Language"): an encoder-decoder reads a
sentence's words and writes its linearised constituency tree, ``(S (NP XX XX )NP (VP XX )VP XX )S``.

The run folder is a translation run's (``src.vocab.json`` for words, ``tgt.vocab.json`` for the tree tokens) with
``config.json`` naming the task ``parse``. Data: ``--train PREFIX`` reads PREFIX.words (the words, one sentence a
line) and PREFIX.linear (its linearised tree), as in ../shared/data/treebank_sample; ``eval`` also reads
PREFIX.trees (the gold bracketed trees) and scores labelled brackets EVALB's way (COLLINS.prm,
:mod:`rnnkit.tasks.seq2seq.evalb`). Decoding is constrained (:class:`~rnnkit.tasks.seq2seq.tree_constraint.
TreeConstraint`): every output is one well-formed tree with one XX per word, which :func:`~rnnkit.data.trees.
rebuild` fills with the words. ``--first N`` trains on the first N trees only (learning curves).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnkit.config import check_fields, option
from rnnkit.data.batching import bucket_batches
from rnnkit.data.parallel import read_lines, read_parallel
from rnnkit.data.trees import Tree, read_trees, rebuild, repairs
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError
from rnnkit.resources import check_model_memory, count_params
from rnnkit.tasks import runs
from rnnkit.tasks.base import Prepared, TaskSpec
from rnnkit.tasks.seq2seq.evalb import evalb
from rnnkit.tasks.seq2seq.model import Seq2SeqConfig, make_batch
from rnnkit.tasks.seq2seq.tree_constraint import TreeConstraint
from rnnkit.tasks.translate_run import SPECIALS, Encoded, EpochBatches, check_search, new_model
from rnnkit.train import checkpoint as ckpt
from rnnkit.train.config import TrainConfig


@dataclass
class ParseDataConfig:
    train: str | None = option(None, "training data PREFIX: reads PREFIX.words and PREFIX.linear, aligned")
    valid: str | None = option(None, "validation data PREFIX, for the loss and BLEU of the tree tokens each epoch")
    first: int | None = option(None, "train on the first N sentences only (a learning curve)", ge=1)
    lowercase: bool = option(False, "lowercase the words")
    min_freq: int = option(1, "rarer training words become <unk>", ge=1)
    max_vocab: int | None = option(None, "keep at most this many words (specials included)", ge=5)
    eval_batch_size: int = option(64, "sentences per batch when evaluating and parsing", ge=1)

    def __post_init__(self) -> None:
        check_fields(self)


SECTIONS = {"data": ParseDataConfig, "model": Seq2SeqConfig, "train": TrainConfig}


def paths(prefix: str | Path, *suffixes: str) -> list[Path]:
    """PREFIX.SUFFIX for each suffix, each checked to exist (one line naming what is missing)."""
    out = [Path(f"{prefix}.{suffix}") for suffix in suffixes]
    missing = [str(p) for p in out if not p.is_file()]
    if missing:
        raise RnnkitError(
            f"no {', '.join(missing)}: a parsing PREFIX names PREFIX.words and PREFIX.linear (and PREFIX.trees to "
            "evaluate), as in ../shared/data/treebank_sample/train"
        )
    return out


@dataclass
class ParseRun:
    """Everything a trained parser's run folder holds, loaded."""

    path: Path
    data: ParseDataConfig
    model_config: Seq2SeqConfig
    train: TrainConfig
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    model: Any

    def words(self, sentence: list[str]) -> list[int]:
        return self.src_vocab.encode([w.lower() for w in sentence] if self.data.lowercase else sentence)

    def parse(
        self, sentences: list[list[str]], *, beam_size: int = 5, constrained: bool = True, batch_size: int | None = None
    ) -> list[tuple[list[str], Tree]]:
        """Each sentence's linearised tree and the tree rebuilt with its words (an empty sentence: an empty tree).
        ``constrained=False`` lets the decoder write anything; :func:`rebuild` then repairs what is malformed."""
        check_search(beam_size, 1, 4.0, 4)
        out: list[tuple[list[str], Tree]] = [([], rebuild([], []))] * len(sentences)
        real = [i for i, s in enumerate(sentences) if s]
        for rows in bucket_batches(
            [len(sentences[i]) for i in real], batch_size or self.data.eval_batch_size, shuffle=False
        ):
            rows = [real[r] for r in rows]
            batch = make_batch([self.words(sentences[i]) for i in rows], **SPECIALS)
            limit = 4 * batch.src_lengths + 4  # the sample's trees have about 3 tokens a word
            constraint = (
                TreeConstraint(self.tgt_vocab, batch.src_lengths.tolist(), max_len=limit) if constrained else None
            )
            hyps = self.model.translate(
                batch.src, batch.src_lengths, beam_size=beam_size, max_len=limit, constraint=constraint
            )
            for i, (best, *_) in zip(rows, hyps, strict=True):
                linear = self.tgt_vocab.decode(best.tokens)
                out[i] = (linear, rebuild(linear, sentences[i]))
        return out

    def evaluate(
        self, prefix: str | Path, *, beam_size: int = 5, constrained: bool = True, batch_size: int | None = None
    ) -> dict[str, Any]:
        """Labelled bracket precision, recall and F1 (EVALB, COLLINS.prm) of the parses of PREFIX.words against
        PREFIX.trees, exact match, how many outputs needed repair (0 when constrained), and the speed."""
        words_path, trees_path = paths(prefix, "words", "trees")
        sentences = [line.split() for line in read_lines(words_path)]
        gold = read_trees(trees_path)
        if len(gold) != len(sentences):
            raise RnnkitError(f"{words_path} has {len(sentences):,} lines but {trees_path} has {len(gold):,} trees")
        start = time.perf_counter()
        parsed = self.parse(sentences, beam_size=beam_size, constrained=constrained, batch_size=batch_size)
        seconds = time.perf_counter() - start
        malformed = sum(bool(repairs(linear, len(s))) for (linear, _), s in zip(parsed, sentences, strict=True))
        scores = evalb(gold, [tree for _, tree in parsed])
        return scores | {
            "data": str(prefix),
            "beam": beam_size,
            "constrained": constrained,
            "repaired": malformed,
            "sentences_per_second": len(sentences) / seconds,
        }


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> ParseRun:
    """Load a parser's run folder (the best weights, else the last checkpoint)."""
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def _open(path: Path, cfg: dict[str, Any], weights: str) -> ParseRun:
    src_vocab, tgt_vocab = Vocabulary.load(path / "src.vocab.json"), Vocabulary.load(path / "tgt.vocab.json")
    model = new_model(src_vocab, tgt_vocab, cfg["model"])
    ckpt.load_run_weights(model, path, weights)
    return ParseRun(path, cfg["data"], cfg["model"], cfg["train"], src_vocab, tgt_vocab, model)


def _read(prefix: str, data: ParseDataConfig, first: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """The words and linearised trees of PREFIX (the first ``first``); a tree that is not one well-formed
    bracketing with one XX per word is an error naming its file and line."""
    words_path, linear_path = paths(prefix, "words", "linear")
    pairs = read_parallel(words_path, linear_path)
    words, linear = [s.split() for s in pairs.src[:first]], [t.split() for t in pairs.tgt[:first]]
    for n, (w, t) in zip(pairs.lines, zip(words, linear, strict=True), strict=False):
        problems = repairs(t, len(w))
        if problems:
            raise RnnkitError(
                f"{linear_path}:{n}: not a tree for the {len(w)} words of {words_path.name} line {n}: {problems[0]}"
            )
    return [[x.lower() for x in w] for w in words] if data.lowercase else words, linear


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train PREFIX is required: PREFIX.words and PREFIX.linear to learn from")
    words, linear = _read(data.train, data, data.first)
    if run_dir is not None:
        src_vocab, tgt_vocab = Vocabulary.load(run_dir / "src.vocab.json"), Vocabulary.load(run_dir / "tgt.vocab.json")
    else:
        src_vocab = Vocabulary.build((w for s in words for w in s), min_freq=data.min_freq, max_size=data.max_vocab)
        tgt_vocab = Vocabulary.build(t for s in linear for t in s)  # every label the trees use
    train = Encoded([src_vocab.encode(s) for s in words], [tgt_vocab.encode(t) for t in linear])
    valid = None
    if data.valid is not None:
        vwords, vlinear = _read(data.valid, data)
        valid = Encoded([src_vocab.encode(s) for s in vwords], [tgt_vocab.encode(t) for t in vlinear])
        valid = valid.batches(data.eval_batch_size)
    params = count_params(lambda: new_model(Vocabulary.build([]), tgt_vocab, model_cfg))
    params += (len(src_vocab) - 4) * model_cfg.embed_size
    check_model_memory(params, what="the parser", flag_hint="lower --hidden, --embed or --layers")
    model = new_model(src_vocab, tgt_vocab, model_cfg)
    summary = (
        f"training a {model_cfg.cell} parser ({model_cfg.attention} attention): {len(src_vocab)} words, "
        f"{len(tgt_vocab)} tree tokens, {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{len(words):,} sentences"
    )
    files = {"src.vocab.json": src_vocab.save, "tgt.vocab.json": tgt_vocab.save}
    return Prepared(model, EpochBatches(train, train_cfg.batch_size, seed=train_cfg.seed), valid, files, summary)


SPEC = TaskSpec("parse", SECTIONS, _prepare, _open)
