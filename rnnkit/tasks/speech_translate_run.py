"""A speech translation run folder: speech in one language in, text in another out
(:class:`rnnkit.tasks.seq2seq.speech.SpeechSeq2Seq`), with no transcript in between.

The folder is every task's (rnnkit.tasks.runs) with ``tgt.vocab.json``, the target words. Data: JSON-lines
manifests whose rows have a ``translation`` (``rnnkit speech make-corpus --german`` writes them; ``text``, the
source-language transcript, is not read). Audio becomes the recogniser's features
(:func:`rnnkit.tasks.ctc_run.featurize`), and training inputs get SpecAugment masks drawn from
``(seed, epoch, utterance)`` (:class:`rnnkit.tasks.ctc_run.EpochBatches`), so resuming is exact. Translations
are whitespace-split words; BLEU and chrF are sacrebleu's on the detokenised output, as ``rnnkit translate``
reports them. Validation selects weights by greedy BLEU on token ids, as the text translator does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.config import option
from rnnkit.data.batching import bucket_batches
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError
from rnnkit.tasks import runs
from rnnkit.tasks.base import Prepared, TaskSpec
from rnnkit.tasks.ctc import make_speech_batch
from rnnkit.tasks.ctc_run import EpochBatches, SpeechDataConfig, featurize, is_silent, n_features
from rnnkit.tasks.seq2seq.bleu import corpus_scores
from rnnkit.tasks.seq2seq.model import Seq2SeqBatch, make_batch
from rnnkit.tasks.seq2seq.speech import SpeechSeq2Seq, SpeechSeq2SeqConfig
from rnnkit.tasks.translate_run import SPECIALS, check_search
from rnnkit.train import checkpoint as ckpt
from rnnkit.train.config import TrainConfig


@dataclass
class SpeechTranslateDataConfig(SpeechDataConfig):
    train: str | None = option(None, "training manifest (JSON lines of {path, translation}; make-corpus --german)")
    valid: str | None = option(None, "validation manifest, for the loss and BLEU after each epoch")
    min_freq: int = option(1, "rarer training words become <unk>", ge=1)


SECTIONS = {"data": SpeechTranslateDataConfig, "model": SpeechSeq2SeqConfig, "train": TrainConfig}


@dataclass
class SpeechPairs:
    """Utterances as feature matrices, with their translations as word ids (without <bos>/<eos>)."""

    features: list[Tensor]
    targets: list[list[int]]

    def batch(self, rows: list[int], augment: Any = None) -> Seq2SeqBatch:
        """The utterances ``rows`` padded; ``augment(features, utterance)`` masks each one (training)."""
        feats = [self.features[i] if augment is None else augment(self.features[i], i) for i in rows]
        speech = make_speech_batch(feats)
        text = make_batch([[SPECIALS["pad_id"]]] * len(rows), [self.targets[i] for i in rows], **SPECIALS)
        return Seq2SeqBatch(speech.features, speech.lengths, text.tgt_in, text.tgt_out)

    def batches(self, batch_size: int) -> list[Seq2SeqBatch]:
        order = bucket_batches([f.shape[0] for f in self.features], batch_size, shuffle=False)
        return [self.batch(rows) for rows in order]


def read_pairs(manifest: str | Path) -> tuple[list[Any], list[Any]]:
    """A manifest's rows (each with a ``translation``) and their audio."""
    from rnnkit.data.speech import load_audio, read_manifest

    rows = read_manifest(manifest)
    if not rows:
        raise RnnkitError(f"{manifest}: no utterances")
    for row in rows:
        if row.translation is None:
            raise RnnkitError(
                f'{manifest}:{row.line}: no "translation": speech translation needs each row\'s text in the target '
                "language (rnnkit speech make-corpus --german writes them)"
            )
    return rows, [load_audio(r.path) for r in rows]


@dataclass
class SpeechTranslateRun:
    """Everything a trained speech translator's run folder holds, loaded."""

    path: Path
    data: SpeechTranslateDataConfig
    model_config: SpeechSeq2SeqConfig
    train: TrainConfig
    tgt_vocab: Vocabulary
    model: SpeechSeq2Seq

    def translate(
        self, audios: list[Any], *, beam_size: int = 5, length_penalty: float = 1.0, batch_size: int | None = None
    ) -> list[str]:
        """Each utterance's translation (an empty or silent one: the empty string)."""
        check_search(beam_size, 1, 0.0, 1, length_penalty)
        feats = [featurize(a, self.data) if not is_silent(a) else torch.zeros(0, 0) for a in audios]
        out = [""] * len(feats)
        real = [i for i, f in enumerate(feats) if f.shape[0] > 0]
        size = batch_size or self.data.eval_batch_size
        for rows in bucket_batches([feats[i].shape[0] for i in real], size, shuffle=False):
            rows = [real[r] for r in rows]
            batch = make_speech_batch([feats[i] for i in rows])
            found = self.model.translate(
                batch.features, batch.lengths, beam_size=beam_size, length_penalty=length_penalty
            )
            for i, (best, *_) in zip(rows, found, strict=True):
                out[i] = " ".join(self.tgt_vocab.decode(best.tokens))
        return out

    def evaluate(self, manifest: str | Path, **search: Any) -> dict[str, Any]:
        """BLEU and chrF (sacrebleu, with signatures) of the translations of a manifest's audio against its rows'
        ``translation``, and the real-time factor."""
        from rnnkit.data.speech import SAMPLE_RATE

        rows, audios = read_pairs(manifest)
        start = time.perf_counter()
        hypotheses = self.translate(audios, **search)
        seconds = time.perf_counter() - start
        scores = corpus_scores(hypotheses, [r.translation for r in rows])
        audio_seconds = sum(len(a) for a in audios) / SAMPLE_RATE
        return scores | {
            "data": str(manifest),
            "count": len(rows),
            "beam": search.get("beam_size", 5),
            "real_time_factor": seconds / max(audio_seconds, 1e-9),
        }


def load_run(path: str | Path, *, weights: str = "best", verb: str | None = None) -> SpeechTranslateRun:
    return runs.open_run(SPEC, path, weights=weights, verb=verb)


def new_model(data: SpeechTranslateDataConfig, vocab: Vocabulary, config: SpeechSeq2SeqConfig) -> SpeechSeq2Seq:
    return SpeechSeq2Seq(n_features(data), len(vocab), config, **SPECIALS)


def _open(path: Path, cfg: dict[str, Any], weights: str) -> SpeechTranslateRun:
    vocab = Vocabulary.load(path / "tgt.vocab.json")
    model = new_model(cfg["data"], vocab, cfg["model"])
    ckpt.load_run_weights(model, path, weights)
    model.eval()
    return SpeechTranslateRun(path, cfg["data"], cfg["model"], cfg["train"], vocab, model)


def _encode(manifest: str, data: SpeechTranslateDataConfig, vocab: Vocabulary) -> SpeechPairs:
    rows, audios = read_pairs(manifest)
    pairs = SpeechPairs([], [])
    for row, audio in zip(rows, audios, strict=True):
        features = featurize(audio, data)
        if features.shape[0] and row.translation.split():
            pairs.features.append(features)
            pairs.targets.append(vocab.encode(row.translation.split()))
    if not pairs.features:
        raise RnnkitError(f"{manifest}: no utterance with audio and a translation")
    return pairs


def _prepare(cfg: dict[str, Any], run_dir: Path | None) -> Prepared:
    data, model_cfg, train_cfg = cfg["data"], cfg["model"], cfg["train"]
    if data.train is None:
        raise RnnkitError("--train MANIFEST is required: utterances with translations (speech make-corpus --german)")
    if run_dir is not None:
        vocab = Vocabulary.load(run_dir / "tgt.vocab.json")
    else:  # the words of the translations (the audio is read once, below; a row without one stops there)
        from rnnkit.data.speech import read_manifest

        words = (w for r in read_manifest(data.train) for w in (r.translation or "").split())
        vocab = Vocabulary.build(words, min_freq=data.min_freq)
    train = _encode(data.train, data, vocab)
    valid = _encode(data.valid, data, vocab).batches(data.eval_batch_size) if data.valid else None
    model = new_model(data, vocab, model_cfg)
    summary = (
        f"training a {model_cfg.layers}-layer {model_cfg.cell} speech translator, {model_cfg.attention} attention: "
        f"{len(vocab)} target words, {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{len(train.features):,} utterances"
    )
    batches = EpochBatches(train, train_cfg.batch_size, seed=train_cfg.seed, config=data)
    return Prepared(model, batches, valid, {"tgt.vocab.json": vocab.save}, summary)


SPEC = TaskSpec("speech-translate", SECTIONS, _prepare, _open)
