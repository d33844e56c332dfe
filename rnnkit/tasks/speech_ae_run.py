"""A speech autoencoder run folder: spoken words -> codes (:mod:`rnnkit.tasks.speech_ae`), and retrieval with them.

The folder is every task's (rnnkit.tasks.runs): config and weights, nothing else (the model reads features, not
symbols). Data: the JSON-lines manifests of ``rnnkit speech make-corpus`` (``--words`` makes one of single
words); training reads only the audio, evaluation also the transcripts, as the labels that say which utterances
are the same word. Each utterance's leading and trailing silence is trimmed (``trim_db``), then it becomes
per-utterance normalised MFCCs or log-mel filterbanks, as the recogniser's features are
(:func:`rnnkit.tasks.ctc_run.featurize`). ``spec_augment`` masks bands and stretches of the training inputs while
the target stays whole: a denoising autoencoder.

:meth:`SpeechAERun.evaluate` is query-by-example retrieval (:mod:`rnnkit.tasks.retrieval`): every utterance of a
manifest queries all the others, relevant when its transcript is the same, ranked by cosine similarity of the
codes, or by one of two baselines that need no training: ``mean`` (the average of the un-normalised feature
frames, each dimension standardised over the collection, by cosine) and ``dtw`` (dynamic time warping of the
normalised feature sequences).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit.config import check_fields, option
from rnnkit.data.batching import bucket_batches
from rnnkit.errors import RnnkitError
from rnnkit.tasks import runs
from rnnkit.tasks.base import Prepared, TaskSpec
from rnnkit.tasks.ctc import make_speech_batch
from rnnkit.tasks.ctc_run import FEATURES, Encoded, EpochBatches, featurize, is_silent, n_features, text_of
from rnnkit.tasks.retrieval import cosine, dtw_similarities, mean_average_precision
from rnnkit.tasks.speech_ae import SpeechAEConfig, SpeechAutoencoder
from rnnkit.train import checkpoint as ckpt
from rnnkit.train.config import TrainConfig

METHODS = ("code", "mean", "dtw")


@dataclass
class SpeechAEDataConfig:
    train: str | None = option(None, "training manifest (JSON lines of {path, ...}; rnnkit speech make-corpus --words)")
    valid: str | None = option(None, "validation manifest, for the reconstruction loss after each epoch")
    features: str = option("mfcc", "MFCCs or log-mel filterbanks", choices=FEATURES)
    n_mels: int = option(40, "mel bands (MFCC: also the number of coefficients kept is --n-mfcc)", ge=8, le=256)
    n_mfcc: int = option(13, "MFCC coefficients (with --features mfcc)", ge=4, le=256)
    trim_db: float = option(30.0, "cut leading and trailing audio this many dB below the peak (0: keep all)", ge=0)
    spec_augment: bool = option(False, "denoising: mask random bands and stretches of each training input")
    freq_masks: int = option(1, "SpecAugment: frequency masks per utterance", ge=0)
    freq_width: int = option(3, "SpecAugment: the widest frequency mask, in bands", ge=0)
    time_masks: int = option(1, "SpecAugment: time masks per utterance", ge=0)
    time_width: int = option(5, "SpecAugment: the longest time mask, in frames", ge=0)
    eval_batch_size: int = option(64, "utterances per batch when evaluating and embedding", ge=1)

    def __post_init__(self) -> None:
        check_fields(self)


SECTIONS = {"data": SpeechAEDataConfig, "model": SpeechAEConfig, "train": TrainConfig}


def trim(audio: np.ndarray, top_db: float) -> np.ndarray:
    """The audio without its leading and trailing stretches ``top_db`` below its peak (librosa); 0 keeps all."""
    if top_db <= 0 or len(audio) == 0:
        return audio
    from librosa.effects import trim as librosa_trim

    return librosa_trim(audio, top_db=top_db)[0]


def utterance_features(audio: np.ndarray, data: SpeechAEDataConfig) -> Tensor:
    """An utterance's normalised features (T, F), after trimming: what the autoencoder reads."""
    return featurize(trim(audio, data.trim_db), data)


def raw_features(audio: np.ndarray, data: SpeechAEDataConfig) -> Tensor:
    """The same features before the per-utterance normalisation (their average is the ``mean`` baseline)."""
    from rnnkit.data import features as feat

    audio = trim(audio, data.trim_db)
    if data.features == "mfcc":
        return feat.mfcc(audio, n_mels=data.n_mels, n_mfcc=data.n_mfcc)
    return feat.log_mel(audio, n_mels=data.n_mels)


def read_audio(manifest: str | Path) -> tuple[list[Any], list[np.ndarray]]:
    """A manifest's rows and their audio (16 kHz mono float)."""
    from rnnkit.data.speech import load_audio, read_manifest

    rows = read_manifest(manifest)
    if not rows:
        raise RnnkitError(f"{manifest}: no utterances")
    return rows, [load_audio(r.path) for r in rows]


@dataclass
class SpeechAERun:
    """Everything a trained speech autoencoder's run folder holds, loaded."""

    path: Path
    data: SpeechAEDataConfig
    model_config: SpeechAEConfig
    train: TrainConfig
    model: SpeechAutoencoder

    def embed(self, audios: list[np.ndarray], *, batch_size: int | None = None) -> np.ndarray:
        """The codes (N, code) of utterances; an empty or silent one is a zero row (similar to nothing)."""
        return self._codes([utterance_features(a, self.data) for a in audios], audios, batch_size)

    @torch.no_grad()
    def _codes(self, feats: list[Tensor], audios: list[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        """The codes of utterances already turned into features (``audios`` tells the silent ones)."""
        self.model.eval()
        codes = np.zeros((len(feats), self.model_config.code), dtype=np.float32)
        real = [i for i, (f, a) in enumerate(zip(feats, audios, strict=True)) if f.shape[0] > 0 and not is_silent(a)]
        size = batch_size or self.data.eval_batch_size
        for rows in bucket_batches([feats[i].shape[0] for i in real], size, shuffle=False):
            rows = [real[r] for r in rows]
            batch = make_speech_batch([feats[i] for i in rows])
            codes[rows] = self.model.encode(batch.features, batch.lengths).numpy()
        return codes

    def search(self, index: list[np.ndarray], queries: list[np.ndarray], *, top: int = 5) -> list[list[tuple]]:
        """The ``top`` (position in ``index``, cosine similarity) nearest to each query, best first."""
        if top < 1:
            raise RnnkitError(f"--top must be at least 1, got {top}")
        sims = cosine(self.embed(queries), self.embed(index))
        order = np.argsort(-sims, axis=1, kind="stable")[:, :top]
        return [[(int(j), float(sims[q, j])) for j in row] for q, row in enumerate(order)]

    def similarities(self, audios: list[np.ndarray], method: str = "code") -> np.ndarray:
        """(N, N) similarities of the utterances by ``method``: ``code``, ``mean`` or ``dtw`` (see the module)."""
        return self._similarities(audios, method)[0]

    def _similarities(self, audios: list[np.ndarray], method: str) -> tuple[np.ndarray, list[Tensor] | None]:
        """:meth:`similarities`, and the normalised features it computed on the way (None for ``mean``)."""
        if method not in METHODS:
            raise RnnkitError(f"retrieval method {method!r}: choose one of {', '.join(METHODS)}")
        if method == "mean":
            means = np.stack([_mean(raw_features(a, self.data)) for a in audios])
            means = (means - means.mean(0)) / np.maximum(means.std(0), 1e-8)
            return cosine(means, means), None
        feats = [utterance_features(a, self.data) for a in audios]
        if method == "dtw":
            return dtw_similarities([f.numpy() for f in feats]), feats
        codes = self._codes(feats, audios)
        return cosine(codes, codes), feats

    def evaluate(self, manifest: str | Path, *, method: str = "code") -> dict[str, Any]:
        """Retrieval MAP over a manifest (each utterance a query against the rest, relevant: the same transcript),
        the seconds per query, and the reconstruction loss per frame."""
        rows, audios = read_audio(manifest)
        start = time.perf_counter()
        sims, feats = self._similarities(audios, method)
        seconds = time.perf_counter() - start
        score, queries = mean_average_precision(sims, [text_of(r.text) for r in rows])
        result = {"data": str(manifest), "method": method, "count": len(rows), "queries": queries, "map": score}
        result["seconds_per_query"] = seconds / len(rows)
        if method == "code":
            result["loss"] = self.model.evaluate(_encoded(feats).batches(self.data.eval_batch_size))["loss"]
        return result


def _mean(features: Tensor) -> np.ndarray:
    return features.mean(0).numpy() if features.shape[0] else np.zeros(features.shape[1], dtype=np.float32)


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> SpeechAERun:
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def _open(path: Path, cfg: dict[str, Any], weights: str) -> SpeechAERun:
    model = SpeechAutoencoder(n_features(cfg["data"]), cfg["model"])
    ckpt.load_run_weights(model, path, weights)
    model.eval()
    return SpeechAERun(path, cfg["data"], cfg["model"], cfg["train"], model)


def _encoded(feats: list[Tensor]) -> Encoded:
    """The utterances that have frames, as the trainer's batches read them (no targets: the frames are)."""
    kept = [f for f in feats if f.shape[0]]
    return Encoded(kept, [[] for _ in kept])


def _encode(manifest: str, data: SpeechAEDataConfig) -> Encoded:
    _, audios = read_audio(manifest)
    encoded = _encoded([utterance_features(a, data) for a in audios])
    if not encoded.features:
        raise RnnkitError(f"{manifest}: no utterance with audio")
    return encoded


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train MANIFEST is required: the utterances to learn from (rnnkit speech make-corpus)")
    train = _encode(data.train, data)
    valid = _encode(data.valid, data).batches(data.eval_batch_size) if data.valid else None
    model = SpeechAutoencoder(n_features(data), model_cfg)
    summary = (
        f"training a speech autoencoder ({model_cfg.layers}-layer {model_cfg.cell}, code {model_cfg.code}): "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, {len(train.features):,} utterances"
    )
    batches = EpochBatches(train, train_cfg.batch_size, seed=train_cfg.seed, config=data)
    return Prepared(model, batches, valid, {}, summary)


SPEC = TaskSpec("speech-ae", SECTIONS, _prepare, _open)
