"""A language-model run folder as Python objects: config, vocabulary, model; and the data it reads."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnkit.config import check_fields, option
from rnnkit.data import StreamBatches, Vocabulary, read_text, tokenize
from rnnkit.data.batching import VariableStream
from rnnkit.errors import RnnkitError
from rnnkit.resources import check_model_memory
from rnnkit.tasks import runs, sampling
from rnnkit.tasks.base import Prepared, TaskSpec
from rnnkit.tasks.lm import LanguageModel, LMConfig
from rnnkit.tasks.sampling import check_sampling
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed as dist
from rnnkit.train.config import TrainConfig


@dataclass
class LMDataConfig:
    train: str | None = option(None, "training text file (UTF-8)")
    valid: str | None = option(None, "validation text file, for perplexity / bits per character after each epoch")
    level: str | None = option(None, "tokens: characters or whitespace-separated words", choices=(None, "char", "word"))
    min_freq: int = option(1, "word level: rarer words become <unk>", ge=1)
    max_vocab: int | None = option(None, "keep at most this many tokens (specials included)", ge=4)
    encoding_errors: str = option(
        "strict", "undecodable bytes: stop, or replace/ignore them", choices=("strict", "replace", "ignore")
    )
    eval_batch_size: int = option(10, "parallel streams when evaluating", ge=1)
    finetune: str | None = option(
        None,
        "an rnnkit lm run to start from: its vocabulary, architecture (it replaces the model options) and weights, "
        "trained further on --train (ULMFiT's LM fine-tuning on the target text)",
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.level is None:
            raise RnnkitError("--level is required: char or word")


SECTIONS = {"data": LMDataConfig, "model": LMConfig, "train": TrainConfig}


@dataclass
class LMRun:
    """Everything a trained run folder holds, loaded."""

    path: Path
    data: LMDataConfig
    model_config: LMConfig
    train: TrainConfig
    vocab: Vocabulary
    model: LanguageModel

    @property
    def boundary_id(self) -> int:
        """The token that precedes a sentence in training: <eos> for words, a newline for characters."""
        if self.data.level == "char" and "\n" in self.vocab:
            return self.vocab.index("\n")
        return self.vocab.eos_id

    def tokens(self, text: str) -> list[str]:
        return list(text) if self.data.level == "char" else text.split()

    def sample(self, prime: str = "", **options: Any) -> str:
        """``prime`` followed by up to ``length`` sampled tokens (stopping at <eos>); the options are
        :meth:`stream_sample`'s."""
        return "".join(self.stream_sample(prime, **options))

    def stream_sample(
        self,
        prime: str = "",
        *,
        length: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        allow_unk: bool = False,
        seed: int = 0,
    ) -> Iterator[str]:
        """:meth:`sample` as pieces of text, ``prime`` first, then one per token as it is drawn."""
        check_sampling(temperature, top_k, top_p)
        if length < 0:
            raise RnnkitError(f"--length must be at least 0, got {length}")
        prime_tokens = self.tokens(prime)
        unknown = self.vocab.unknown_count(prime_tokens)
        if unknown:
            warnings.warn(f"{unknown} priming token(s) not in the vocabulary are read as <unk>", stacklevel=2)
        v = self.vocab
        banned = [v.pad_id, v.bos_id] + ([] if allow_unk else [v.unk_id])
        ids = sampling.stream(
            self.model.stepper(),  # the model's eval-mode step, laid out for one token at a time
            [self.boundary_id, *v.encode(prime_tokens)],
            max_length=length,
            stop_id=v.eos_id,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            banned=banned,
            generator=torch.Generator().manual_seed(seed),
        )
        yield prime
        sep = " " if self.data.level == "word" and prime else ""
        for id in ids:  # words are joined by spaces (generation stops at <eos>, so no line ends inside)
            yield sep + v.token(id)
            sep = " " if self.data.level == "word" else ""

    def score(
        self,
        sentences: list[str],
        *,
        cache: dict[str, float] | None = None,
        dynamic: dict[str, float] | None = None,
    ) -> list[dict[str, float | int | str]]:
        """Each sentence's log-probability (nats), perplexity, tokens and rank (1 = most probable). With ``cache``
        or ``dynamic`` (as in :meth:`evaluate`) the sentences are also read in order as one text, each scored
        under a cache of those before it (``cache_logprob``) or after adapting to them (``dynamic_logprob``); the
        rank follows the static log-probability."""
        from rnnkit.tasks import lm_adaptive

        ids = [self.vocab.encode(self.tokens(s)) for s in sentences]
        results = self.model.score(ids, self.boundary_id)
        if cache is not None:
            logps = lm_adaptive.adaptive_logprobs(self.model, ids, self.boundary_id, cache=cache)
            for r, lp in zip(results, logps, strict=True):
                r["cache_logprob"] = lp
        if dynamic is not None:
            options = dict(dynamic)
            options["stats"] = self._gradient_statistics(int(options.get("stats", 0)), "strict")
            logps = lm_adaptive.adaptive_logprobs(self.model, ids, self.boundary_id, dynamic=options)
            for r, lp in zip(results, logps, strict=True):
                r["dynamic_logprob"] = lp
        order = sorted(range(len(results)), key=lambda i: -results[i]["logprob"])
        for rank, i in enumerate(order, 1):
            results[i] = {"text": sentences[i]} | results[i] | {"rank": rank}
        return results

    def evaluate(
        self,
        path: str,
        *,
        batch_size: int | None = None,
        encoding_errors: str = "strict",
        cache: dict[str, float] | None = None,
        dynamic: dict[str, float] | None = None,
    ) -> dict:
        """Perplexity (and bits per character at char level) of a text file; with ``cache`` ({"window", "theta",
        "lam"}) also under a neural cache, and with ``dynamic`` ({"lr", "decay", "stats"}: training batches for
        the RMS statistics, 0 for plain SGD; optionally "bptt", the chunk length of its updates) also under dynamic
        evaluation, each reported apart from the static number (:mod:`rnnkit.tasks.lm_adaptive`)."""
        from rnnkit.tasks import lm_adaptive

        ids = encode_file(path, self.vocab, self.data.level, encoding_errors)
        batches = stream(ids, batch_size or self.data.eval_batch_size, self.train.bptt, path)
        metrics = self.model.evaluate(batches)
        result = {"data": path, "tokens": metrics.pop("count")} | metrics
        if cache is not None:
            adapted = lm_adaptive.cache_evaluate(self.model, batches, **cache)
            result["cache"] = {k: v for k, v in adapted.items() if k != "count"} | cache
        if dynamic is not None:
            options = dict(dynamic)
            stats = self._gradient_statistics(int(options.pop("stats", 0)), encoding_errors)
            chunks = batches if "bptt" not in options else stream(ids, batches.batch_size, options.pop("bptt"), path)
            adapted = lm_adaptive.dynamic_evaluate(self.model, chunks, stats=stats, **options)
            result["dynamic"] = {k: v for k, v in adapted.items() if k != "count"} | dict(dynamic)
        return result

    def _gradient_statistics(self, batches: int, encoding_errors: str) -> list[torch.Tensor] | None:
        """Krause et al.'s mean squared gradients over the first ``batches`` batches of the run's training text
        (None for 0: plain SGD dynamic evaluation)."""
        from rnnkit.tasks import lm_adaptive

        if batches == 0:
            return None
        if self.data.train is None or not Path(self.data.train).is_file():
            raise RnnkitError(
                f"--dynamic-stats reads the run's training text, {self.data.train}, which is not there: give "
                "--dynamic-stats 0 (plain SGD) or put the file back"
            )
        ids = encode_file(self.data.train, self.vocab, self.data.level, encoding_errors)
        train = stream(ids, self.train.batch_size, self.train.bptt, self.data.train)
        return lm_adaptive.gradient_statistics(self.model, train, batches)


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> LMRun:
    """Load a run folder for evaluation, sampling or scoring (the best weights, else the last checkpoint)."""
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def train_lm(cfg: dict[str, Any], run_dir: str | Path, *, resume: bool = False, force: bool = False) -> dict:
    """Train (or, with ``resume``, continue) a language model into ``run_dir``; ``cfg`` maps the
    sections "data", "model" and "train" to their configs. Works under torchrun too."""
    return runs.train(SPEC, cfg, run_dir, resume=resume, force=force)


def new_model(vocab: Vocabulary, config: LMConfig, level: str) -> LanguageModel:
    return LanguageModel(len(vocab), config, pad_id=vocab.pad_id, level=level)


def _open(path: Path, cfg: dict[str, Any], weights: str) -> LMRun:
    vocab = Vocabulary.load(path / "vocab.json")
    model = new_model(vocab, cfg["model"], cfg["data"].level)
    ckpt.load_run_weights(model, path, weights)
    return LMRun(path, cfg["data"], cfg["model"], cfg["train"], vocab, model)


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    """Read and check the text, build (or, on resume, load) the vocabulary and the model; write nothing."""
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train FILE is required: the text to learn from")
    rank, world = dist.rank_world()
    source = None
    if run_dir is not None:
        vocab = Vocabulary.load(run_dir / "vocab.json")
    elif data.finetune is not None:
        source = _finetuned(data)
        vocab, cfg["model"] = source.vocab, source.model_config  # (config.json saves the source's architecture)
        model_cfg = cfg["model"]
    else:
        tokens = tokenize(read_text(data.train, encoding_errors=data.encoding_errors), data.level)
        vocab = Vocabulary.build(tokens, min_freq=data.min_freq, max_size=data.max_vocab)
    train_ids = encode_file(data.train, vocab, data.level, data.encoding_errors)
    train_batches = stream(train_ids, train_cfg.batch_size, train_cfg.bptt, data.train, "--batch-size")
    valid = None
    if data.valid is not None:
        valid_ids = encode_file(data.valid, vocab, data.level, data.encoding_errors)
        valid = stream(valid_ids, data.eval_batch_size, train_cfg.bptt, data.valid, "--eval-batch-size")
    what = f"a {model_cfg.layers}-layer {model_cfg.cell} LM of hidden {model_cfg.hidden}, vocabulary {len(vocab)}"
    check_model_memory(
        model_cfg.params(len(vocab)), what=what, flag_hint="lower --hidden, --embed, --layers or --max-vocab"
    )
    model = new_model(vocab, model_cfg, data.level)
    params = sum(p.numel() for p in model.parameters())
    summary = (
        f"training a {model_cfg.layers}-layer {model_cfg.cell} LM: vocabulary {len(vocab)}, {params:,} parameters, "
        f"{len(train_ids):,} training tokens"
    )
    if source is not None:  # a new run only: a resumed one has its weights in its checkpoint
        model.load_state_dict(source.model.state_dict())
        summary += f", starting from {data.finetune}"
    train = train_batches.shard(rank, world)
    if train_cfg.variable_bptt:
        train = VariableStream(train, seed=train_cfg.seed)
    return Prepared(model, train, valid, {"vocab.json": vocab.save}, summary)


def check_lm_run(path: str | Path, wanted: str = "a folder of rnnkit lm train") -> None:
    """One line where ``path`` holds a run of another task (``wanted`` says what to give instead)."""
    from rnnkit.tasks import registry

    if registry.task_of(path).name != "lm":
        raise RnnkitError(f"{path} is not an rnnkit lm run: give {wanted}")


def _finetuned(data: LMDataConfig) -> LMRun:
    """The run ``--finetune`` names, loaded and checked to be an LM of ``data.level``."""
    check_lm_run(data.finetune)
    source = load_run(data.finetune)
    if source.data.level != data.level:
        raise RnnkitError(
            f"--finetune {data.finetune} is a {source.data.level}-level LM: pass --level {source.data.level}"
        )
    return source


def encode_file(path: str, vocab: Vocabulary, level: str, encoding_errors: str) -> torch.Tensor:
    """A text file as a 1-D tensor of ids; warns when much of it is unknown to the vocabulary."""
    tokens = tokenize(read_text(path, encoding_errors=encoding_errors), level)
    unknown = vocab.unknown_count(tokens)
    if unknown and unknown > 0.05 * len(tokens) and Vocabulary.UNK not in tokens:
        warnings.warn(
            f"{path}: {unknown} of {len(tokens)} tokens are not in the vocabulary and count as <unk>", stacklevel=2
        )
    return torch.tensor(vocab.encode(tokens), dtype=torch.long)


def stream(ids: torch.Tensor, batch_size: int, bptt: int, what: str, flag: str = "--batch-size") -> StreamBatches:
    try:
        return StreamBatches(ids, batch_size, bptt)
    except RnnkitError as err:
        raise RnnkitError(f"{what}: {err} (the flag: {flag})") from None


SPEC = TaskSpec("lm", SECTIONS, _prepare, _open)
