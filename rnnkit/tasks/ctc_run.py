"""A speech recognition run folder (CTC): config, alphabet, acoustic model; the manifests it reads; training.

The folder is every task's (rnnkit.tasks.runs) with ``labels.json``: the blank (``<blank>``, id 0) and the
transcripts' characters. Data: a JSON-lines manifest (``rnnkit speech make-corpus`` writes one) of
``{"path", "text", ...}`` rows, paths relative to the manifest. Audio is read at 16 kHz mono (other rates
resampled, stereo downmixed; :mod:`rnnkit.data.speech`) and turned into per-utterance normalised log-mel
filterbanks or MFCCs (:mod:`rnnkit.data.features`), once, when a run starts; training batches get
SpecAugment masks drawn from ``(seed, epoch, batch)`` alone, so resuming is exact. Transcripts are lowercased
and their spaces collapsed; a character the run's alphabet lacks is an error naming the manifest line.
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
from rnnkit.data.batching import bucket_batches, shard_rows
from rnnkit.data.labels import Labels
from rnnkit.errors import RnnkitError
from rnnkit.tasks import runs
from rnnkit.tasks.base import Prepared, TaskSpec
from rnnkit.tasks.ctc import CTCConfig, CTCModel, SpeechBatch, make_speech_batch
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed as dist
from rnnkit.train.config import TrainConfig

BLANK = "<blank>"
FEATURES = ("logmel", "mfcc")
UNITS = ("char", "word")


@dataclass
class SpeechDataConfig:
    """The data options every task that reads speech shares: manifests, features, SpecAugment."""

    train: str | None = option(None, "training manifest (JSON lines of {path, text}; rnnkit speech make-corpus)")
    valid: str | None = option(None, "validation manifest, for the loss after each epoch")
    features: str = option("logmel", "log-mel filterbanks or MFCCs", choices=FEATURES)
    n_mels: int = option(80, "mel bands (MFCC: also the number of coefficients kept is --n-mfcc)", ge=8, le=256)
    n_mfcc: int = option(40, "MFCC coefficients (with --features mfcc)", ge=4, le=256)
    spec_augment: bool = option(True, "mask random bands and stretches of each training utterance (SpecAugment)")
    freq_masks: int = option(2, "SpecAugment: frequency masks per utterance", ge=0)
    freq_width: int = option(10, "SpecAugment: the widest frequency mask, in bands", ge=0)
    time_masks: int = option(2, "SpecAugment: time masks per utterance", ge=0)
    time_width: int = option(20, "SpecAugment: the longest time mask, in frames", ge=0)
    eval_batch_size: int = option(32, "utterances per batch when evaluating and transcribing", ge=1)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class CTCDataConfig(SpeechDataConfig):
    units: str = option(
        "char", "output units: characters, or whole words (a closed vocabulary: commands, digits)", choices=UNITS
    )


SECTIONS = {"data": CTCDataConfig, "model": CTCConfig, "train": TrainConfig}


def featurize(audio: Any, data: CTCDataConfig) -> Tensor:
    """An utterance's normalised feature matrix (T, F) as the run computes it."""
    from rnnkit.data import features as feat

    if data.features == "mfcc":
        return feat.normalise(feat.mfcc(audio, n_mels=data.n_mels, n_mfcc=data.n_mfcc))
    return feat.normalise(feat.log_mel(audio, n_mels=data.n_mels))


def n_features(data: CTCDataConfig) -> int:
    return data.n_mfcc if data.features == "mfcc" else data.n_mels


@dataclass
class Encoded:
    """Utterances as feature matrices and label ids."""

    features: list[Tensor]
    targets: list[list[int]]

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> list[SpeechBatch]:
        order = bucket_batches([f.shape[0] for f in self.features], batch_size, shuffle=shuffle, seed=seed, epoch=epoch)
        return [self.batch(rows) for rows in shard_rows(order, *shard)]

    def batch(self, rows: list[int], augment: Any = None) -> SpeechBatch:
        """The utterances ``rows`` padded; ``augment(features, utterance)`` masks each one (training)."""
        feats = [self.features[i] if augment is None else augment(self.features[i], i) for i in rows]
        return make_speech_batch(feats, [self.targets[i] for i in rows])


class EpochBatches:
    """Training batches reshuffled and re-masked (SpecAugment) from ``(seed, epoch)`` alone: resume is exact.

    Each utterance's masks come from ``(seed, epoch, utterance)``, so they do not depend on the batch it falls in
    or on the process that reads it: a torchrun run masks exactly as one process does."""

    def __init__(self, data: Encoded, batch_size: int, *, seed: int, config: CTCDataConfig) -> None:
        self.data, self.batch_size, self.seed, self.config = data, batch_size, seed, config
        self.shard = dist.rank_world()

    def for_epoch(self, epoch: int) -> list[SpeechBatch]:
        order = bucket_batches(
            [f.shape[0] for f in self.data.features], self.batch_size, shuffle=True, seed=self.seed, epoch=epoch
        )
        augment = self._augment(epoch) if self.config.spec_augment else None
        return [self.data.batch(rows, augment) for rows in shard_rows(order, *self.shard)]

    def _augment(self, epoch: int) -> Any:
        from rnnkit.data.features import spec_augment

        c = self.config

        def mask(features: Tensor, utterance: int) -> Tensor:
            seed = np.random.SeedSequence([self.seed, epoch, utterance]).generate_state(1)[0]
            return spec_augment(
                features, freq_masks=c.freq_masks, freq_width=c.freq_width, time_masks=c.time_masks,
                time_width=c.time_width, generator=torch.Generator().manual_seed(int(seed)),
            )  # fmt: skip

        return mask


SILENCE = 1e-4
"""Audio whose loudest sample is below this (-80 dBFS, under 16-bit PCM's last step) is silence."""


def is_silent(audio: Any) -> bool:
    """True for empty audio and for audio no louder than :data:`SILENCE` anywhere."""
    return len(audio) == 0 or float(np.max(np.abs(audio))) < SILENCE


def text_of(text: str) -> str:
    """A transcript as runs read it: lowercased, spaces collapsed."""
    return " ".join(text.lower().split())


def units_of(text: str, units: str) -> list[str]:
    """A transcript's output units: its characters, or its words.

    >>> units_of("One  one", "char"), units_of("One  one", "word")
    (['o', 'n', 'e', ' ', 'o', 'n', 'e'], ['one', 'one'])
    """
    text = text_of(text)
    return text.split() if units == "word" else list(text)


def merge_repeats(ids: list[int]) -> list[int]:
    """A label sequence with each run of one label merged: what a model without a blank can write.

    >>> merge_repeats([3, 3, 1, 3, 3, 3])
    [3, 1, 3]
    """
    return [x for i, x in enumerate(ids) if i == 0 or ids[i - 1] != x]


def unknown_units(text: str, labels: Labels, units: str) -> list[str]:
    return sorted({u for u in units_of(text, units) if u not in labels})


def unknown_error(manifest: Any, row: Any, unknown: list[str], labels: Labels, units: str) -> RnnkitError:
    known = "".join(labels.names[1:]) if units == "char" else " ".join(labels.names[1:])
    what = "alphabet" if units == "char" else "vocabulary"
    return RnnkitError(
        f"{manifest}:{row.line}: {unknown[0]!r} is not in the run's {what} ({known}): "
        "transcribe it with the run's units, or train a run that has it"
    )


@dataclass
class CTCRun:
    """Everything a trained recogniser's run folder holds, loaded."""

    path: Path
    data: CTCDataConfig
    model_config: CTCConfig
    train: TrainConfig
    labels: Labels
    model: CTCModel

    def _text(self, ids: list[int]) -> str:
        return ("" if self.data.units == "char" else " ").join(self.labels.names[i] for i in ids)

    def check_alphabet(self, manifest: str | Path, rows: list[Any]) -> None:
        """A reference with a character (word) the run cannot write is an error naming its manifest line."""
        for row in rows:
            unknown = unknown_units(row.text, self.labels, self.data.units)
            if unknown:
                raise unknown_error(manifest, row, unknown, self.labels, self.data.units)

    def log_probs(self, audios: list[Any], batch_size: int | None = None) -> list[Tensor]:
        """Each utterance's (T', C) log-probabilities (an empty or silent utterance: (0, C): nothing was said)."""
        feats = [featurize(a, self.data) if not is_silent(a) else torch.zeros(0, 0) for a in audios]
        out: list[Tensor] = [torch.zeros(0, len(self.labels))] * len(feats)
        real = [i for i, f in enumerate(feats) if f.shape[0] > 0]
        size = batch_size or self.data.eval_batch_size
        with torch.no_grad():
            for rows in bucket_batches([feats[i].shape[0] for i in real], size, shuffle=False):
                rows = [real[r] for r in rows]
                batch = make_speech_batch([feats[i] for i in rows])
                log_probs, lengths = self.model(batch.features, batch.lengths)
                for k, i in enumerate(rows):
                    out[i] = log_probs[k, : int(lengths[k])]
        return out

    def transcribe(
        self, audios: list[Any], *, beam_size: int = 1, lm: Any = None, lm_weight: float = 0.0, bonus: float = 0.0,
        timestamps: bool = False, batch_size: int | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Each utterance's transcript (``text``); ``timestamps`` adds each character's start and end in seconds,
        from the best path that says that transcript (the greedy path's own, or the beam's text force-aligned).
        Beam > 1 runs the prefix beam search, with ``lm`` fused if given."""
        from rnnkit.tasks.ctc_decode import forced_alignment, greedy_alignment, greedy_decode, prefix_beam_search

        results = []
        seconds_per_frame = 0.01 * self.model_config.subsample
        for lp in self.log_probs(audios, batch_size):
            if lp.shape[0] == 0:
                results.append({"text": ""} | ({"chars": []} if timestamps else {}))
                continue
            if beam_size > 1:
                kw = {"lm": lm, "lm_weight": lm_weight, "insertion_bonus": bonus}
                ids = prefix_beam_search(lp, None, beam_size=beam_size, prune=min(8, lp.shape[1]), **kw)[0][0]
            else:
                ids = greedy_decode(lp.unsqueeze(0))[0]
            result: dict[str, Any] = {"text": self._text(ids)}
            if timestamps:
                spans = forced_alignment(lp, ids) if beam_size > 1 else greedy_alignment(lp.unsqueeze(0))[0]
                result["chars"] = [
                    {"char": self.labels.names[s.label], "start": s.start * seconds_per_frame,
                     "end": (s.end + 1) * seconds_per_frame}
                    for s in spans
                ]  # fmt: skip
            results.append(result)
        return results

    def evaluate(self, manifest: str | Path, **search: Any) -> dict[str, Any]:
        """CER and WER (jiwer) of the transcripts of a manifest's audio, and the real-time factor (seconds of
        computing per second of audio: features, network and search)."""
        import jiwer

        from rnnkit.data.speech import SAMPLE_RATE, load_audio, read_manifest

        rows = read_manifest(manifest)
        if not rows:
            raise RnnkitError(f"{manifest}: no utterances to evaluate")
        self.check_alphabet(manifest, rows)
        audios = [load_audio(r.path) for r in rows]
        start = time.perf_counter()
        hyps = [r["text"] for r in self.transcribe(audios, **search)]
        seconds = time.perf_counter() - start
        refs = [text_of(r.text) for r in rows]
        audio_seconds = sum(len(a) for a in audios) / SAMPLE_RATE
        safe = [h if h else " " for h in hyps]  # jiwer refuses an empty hypothesis string
        return {
            "data": str(manifest),
            "count": len(rows),
            "cer": float(jiwer.cer(refs, safe)),
            "wer": float(jiwer.wer(refs, safe)),
            "real_time_factor": seconds / max(audio_seconds, 1e-9),
            "beam": search.get("beam_size", 1),
        }


class CharLMFusion:
    """A character language model run (``rnnkit lm train --level char``) as the prefix search's LM
    (:class:`rnnkit.tasks.ctc_decode.FusionLM`), in the CTC run's label indexing: a label the LM does not know
    gets its <unk> probability; the LM starts after a newline, the boundary it was trained with."""

    def __init__(self, lm: Any, labels: Labels) -> None:
        self.lm, self.step = lm, lm.model.stepper()  # the fast step (rnnkit.tasks.stepping): one token per call
        if any(len(name) > 1 for name in labels.names[1:]):
            raise RnnkitError("the recogniser writes words (--units word): fusion needs a character recogniser")
        if lm.data.level != "char":
            raise RnnkitError(f"{lm.path} is a {lm.data.level}-level language model: fusion needs --level char")
        self.ids = torch.tensor([lm.vocab.index(c) if c in lm.vocab else lm.vocab.unk_id for c in labels.names])
        self.start = lm.boundary_id

    @torch.no_grad()
    def initial_state(self) -> Any:
        return self._read(self.start, None)

    def next_log_probs(self, state: Any) -> Tensor:
        log_probs, _ = state
        return log_probs[self.ids]

    @torch.no_grad()
    def advance(self, state: Any, label: int) -> Any:
        return self._read(int(self.ids[label]), state[1])

    def _read(self, token: int, recurrent: Any) -> tuple[Tensor, Any]:
        logits, new = self.step(torch.tensor([[token]]), recurrent)
        return torch.log_softmax(logits[0, 0], dim=-1), new


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> CTCRun:
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def new_model(labels: Labels, cfg: dict[str, Any]) -> CTCModel:
    return CTCModel(n_features(cfg["data"]), len(labels), cfg["model"])


def _open(path: Path, cfg: dict[str, Any], weights: str) -> CTCRun:
    labels = Labels.load(path / "labels.json")
    model = new_model(labels, cfg)
    ckpt.load_run_weights(model, path, weights)
    return CTCRun(path, cfg["data"], cfg["model"], cfg["train"], labels, model)


def _encode(manifest: str, data: CTCDataConfig, labels: Labels | None, blank: bool) -> tuple[Encoded, Labels]:
    """Features and label ids of a manifest's utterances (empty audio or transcripts are left out); without a
    blank, each run of one label is merged (the model cannot write it twice in a row)."""
    from rnnkit.data.speech import load_audio, read_manifest

    rows = read_manifest(manifest)
    texts = [units_of(r.text, data.units) for r in rows]
    if labels is None:
        labels = Labels.build((u for t in texts for u in t), first=(BLANK,))
    encoded = Encoded([], [])
    for row, text in zip(rows, texts, strict=True):
        unknown = unknown_units(row.text, labels, data.units)
        if unknown:
            raise unknown_error(manifest, row, unknown, labels, data.units)
        features = featurize(load_audio(row.path), data)
        if features.shape[0] and text:
            encoded.features.append(features)
            ids = labels.encode(text)
            encoded.targets.append(ids if blank else merge_repeats(ids))
    if not encoded.features:
        raise RnnkitError(f"{manifest}: no utterance with audio and a transcript")
    return encoded, labels


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train MANIFEST is required: the utterances to learn from (rnnkit speech make-corpus)")
    labels = Labels.load(run_dir / "labels.json") if run_dir is not None else None
    train, labels = _encode(data.train, data, labels, model_cfg.blank)
    valid = _encode(data.valid, data, labels, model_cfg.blank)[0].batches(data.eval_batch_size) if data.valid else None
    model = new_model(labels, cfg)
    summary = (
        f"training a {model_cfg.layers}-layer {'bidirectional ' * model_cfg.bidirectional}{model_cfg.cell} CTC model: "
        f"{len(labels) - 1} {'characters' if data.units == 'char' else 'words'}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{len(train.features):,} utterances"
    )
    batches = EpochBatches(train, train_cfg.batch_size, seed=train_cfg.seed, config=data)
    return Prepared(model, batches, valid, {"labels.json": labels.save}, summary)


SPEC = TaskSpec("ctc", SECTIONS, _prepare, _open)
