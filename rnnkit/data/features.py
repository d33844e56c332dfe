"""Speech features for CTC: log-mel filterbanks, MFCCs, per-utterance normalisation and SpecAugment masks.

Audio in is float mono (a numpy array or a 1-D tensor, samples in [-1, 1]), at 16 kHz unless ``sample_rate``
says otherwise (:func:`rnnkit.data.speech.load_audio` gives such arrays). Features out are float32 tensors of
shape (T, C): one row per frame, one column per mel band (or cepstral coefficient).

Framing: a Hann window of ``win_ms`` (25 ms, 400 samples) every ``hop_ms`` (10 ms, 160 samples), the FFT size the
next power of two (512), frames centred on samples 0, hop, 2 hop, ... with the audio padded by zeros, so
N > 0 samples give T = 1 + N // hop frames (:func:`frame_count`) and an empty audio gives (0, C), not an error.
Power spectra go through librosa's Slaney mel filterbank, then ``log(max(x, 1e-10))``: silence is finite.

>>> feats = log_mel(np.zeros(16000, dtype=np.float32))  # one second of silence
>>> tuple(feats.shape), tuple(log_mel(np.zeros(0)).shape)
((101, 80), (0, 80))
>>> bool(torch.isfinite(feats).all()), bool(normalise(feats).eq(0).all())
(True, True)
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from rnnkit.errors import RnnkitError

SAMPLE_RATE = 16000
LOG_FLOOR = 1e-10
"""Mel energies are floored here before the log (-23.03): digital silence gives a finite constant."""
_STD_FLOOR = 1e-5  # normalise(): a constant channel (silence) becomes zeros instead of 0/0


def log_mel(
    audio: np.ndarray | torch.Tensor,
    *,
    sample_rate: int = SAMPLE_RATE,
    n_mels: int = 80,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> torch.Tensor:
    """Log-mel filterbank energies, (T, n_mels) float32; T = :func:`frame_count` of the audio.

    Args:
        audio: mono samples, 1-D.
        sample_rate: of the audio, Hz.
        n_mels: mel bands, spaced from ``f_min`` to ``f_max`` (default: half the sample rate) Hz.
        win_ms, hop_ms: the window's length and the step between frames, milliseconds.

    Raises:
        RnnkitError: audio that is not 1-D, or sizes that make no frames (a window longer than the FFT can hold).
    """
    x = _samples(audio)
    win, hop = _window(sample_rate, win_ms), _window(sample_rate, hop_ms)
    n_fft = 1 << (win - 1).bit_length()
    filters = _mel_filters(sample_rate, n_fft, n_mels, float(f_min), None if f_max is None else float(f_max))
    if x.numel() == 0:
        return torch.zeros(0, n_mels)
    window = torch.hann_window(win)  # periodic, as spectral analysis wants
    spec = torch.stft(
        x, n_fft, hop_length=hop, win_length=win, window=window, center=True, pad_mode="constant", return_complex=True
    )
    mel = torch.from_numpy(filters) @ spec.abs().square()
    return torch.log(mel.clamp_min(LOG_FLOOR)).T.contiguous()


def mfcc(audio: np.ndarray | torch.Tensor, *, n_mfcc: int = 13, n_mels: int = 40, **kwargs: float) -> torch.Tensor:
    """Mel-frequency cepstral coefficients, (T, n_mfcc): the orthonormal DCT-II of :func:`log_mel` (as
    ``scipy.fft.dct(..., norm="ortho")``), first ``n_mfcc`` kept. ``kwargs`` go to :func:`log_mel`.

    >>> tuple(mfcc(np.zeros(1600)).shape)
    (11, 13)
    """
    if isinstance(n_mfcc, bool) or not isinstance(n_mfcc, int) or not 1 <= n_mfcc <= n_mels:
        raise RnnkitError(f"n_mfcc={n_mfcc!r}: give an integer from 1 to n_mels ({n_mels})")
    return log_mel(audio, n_mels=n_mels, **kwargs) @ _dct_matrix(n_mels, n_mfcc)


def frame_count(num_samples: int, *, sample_rate: int = SAMPLE_RATE, hop_ms: float = 10.0) -> int:
    """The number of frames :func:`log_mel` gives for ``num_samples`` samples: 1 + N // hop, or 0 for none.

    >>> frame_count(16000), frame_count(159), frame_count(0)
    (101, 1, 0)
    """
    return 1 + num_samples // _window(sample_rate, hop_ms) if num_samples > 0 else 0


def normalise(features: torch.Tensor) -> torch.Tensor:
    """Per-utterance normalisation: each channel to mean 0 and standard deviation 1 over the frames.

    A constant channel (silence, or a single frame) becomes zeros, not NaN; (0, C) comes back as it is.
    """
    _check_features(features)
    if features.shape[0] == 0:
        return features.clone()
    mean = features.mean(dim=0, keepdim=True)
    std = features.std(dim=0, unbiased=False, keepdim=True)
    return (features - mean) / std.clamp_min(_STD_FLOOR)


def mask_spans(
    num_frames: int,
    num_channels: int,
    *,
    freq_masks: int = 2,
    freq_width: int = 15,
    time_masks: int = 2,
    time_width: int = 40,
    generator: torch.Generator | None = None,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The (start, width) of SpecAugment's frequency masks and time masks (Park et al., 2019).

    Each width is uniform over 0 .. the maximum (capped at the size), each start uniform over the places the
    mask fits; masks may overlap. Frequency masks are drawn first, from ``generator`` (torch's global one if None).
    """
    for name, value in (("freq_masks", freq_masks), ("freq_width", freq_width), ("time_masks", time_masks)):
        _check_count(name, value)
    _check_count("time_width", time_width)
    freq = [_span(num_channels, freq_width, generator) for _ in range(freq_masks)]
    time = [_span(num_frames, time_width, generator) for _ in range(time_masks)]
    return freq, time


def spec_augment(
    features: torch.Tensor,
    *,
    freq_masks: int = 2,
    freq_width: int = 15,
    time_masks: int = 2,
    time_width: int = 40,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A copy of (T, C) ``features`` with SpecAugment's masks (:func:`mask_spans`) set to 0.

    Apply it after :func:`normalise`, where 0 is each channel's mean. The same generator state gives the same masks.

    >>> masked = spec_augment(torch.ones(50, 20), time_masks=0, generator=torch.Generator().manual_seed(0))
    >>> bool(masked.eq(0).all(dim=0).sum() <= 30), bool(masked[:, masked[0] == 1].eq(1).all())
    (True, True)
    """
    _check_features(features)
    freq, time = mask_spans(
        features.shape[0], features.shape[1], freq_masks=freq_masks, freq_width=freq_width,
        time_masks=time_masks, time_width=time_width, generator=generator,
    )  # fmt: skip
    out = features.clone()
    for start, width in freq:
        out[:, start : start + width] = 0
    for start, width in time:
        out[start : start + width, :] = 0
    return out


def _span(size: int, max_width: int, generator: torch.Generator | None) -> tuple[int, int]:
    width = int(torch.randint(0, min(max_width, size) + 1, (1,), generator=generator))
    start = int(torch.randint(0, size - width + 1, (1,), generator=generator))
    return start, width


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RnnkitError(f"{name}={value!r}: give a non-negative integer")


def _check_features(features: torch.Tensor) -> None:
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise RnnkitError(f"features must be a (frames, channels) tensor, got {shape}")


def _samples(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(audio) if not isinstance(audio, torch.Tensor) else audio).to(torch.float32)
    if x.dim() != 1:
        raise RnnkitError(f"audio must be 1-D mono samples, got shape {tuple(x.shape)}: downmix it first (load_audio)")
    return x


def _window(sample_rate: int, ms: float) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise RnnkitError(f"sample_rate={sample_rate!r}: give a positive integer number of Hz")
    samples = round(sample_rate * ms / 1000)
    if samples < 1:
        raise RnnkitError(f"{ms!r} ms at {sample_rate} Hz is less than one sample: give a longer window or hop")
    return samples


@functools.cache
def _mel_filters(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None) -> np.ndarray:
    """librosa's (n_mels, n_fft // 2 + 1) Slaney filterbank, made once per setting."""
    if isinstance(n_mels, bool) or not isinstance(n_mels, int) or n_mels < 1:
        raise RnnkitError(f"n_mels={n_mels!r}: give a positive integer")
    top = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < top <= sample_rate / 2:
        raise RnnkitError(f"f_min={f_min}, f_max={f_max}: give 0 <= f_min < f_max <= {sample_rate / 2:g} Hz")
    try:
        import librosa.filters  # here, not at the top: it takes over a second to import, too slow for CLI start-up
    except ImportError:
        raise RnnkitError("the librosa package is not installed: pip install librosa") from None
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max).astype(np.float32)


@functools.cache
def _dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_in, n_out): x @ it is the orthonormal DCT-II of x's last axis, first n_out coefficients."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)
    basis = torch.cos(math.pi / n_in * (n[:, None] + 0.5) * k[None, :]) * math.sqrt(2 / n_in)
    basis[:, 0] /= math.sqrt(2)
    return basis.to(torch.float32)
