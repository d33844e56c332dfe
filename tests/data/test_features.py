"""Speech features: frame counts, mel placement, MFCC, normalisation of silence, SpecAugment masks."""

import numpy as np
import pytest
import scipy.fft
import torch

from rnnkit.data.features import frame_count, log_mel, mask_spans, mfcc, normalise, spec_augment
from rnnkit.errors import RnnkitError

SR = 16000


def tone(freq, seconds=0.5, sr=SR):
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


@pytest.mark.parametrize(("samples", "frames"), [(16000, 101), (8000, 51), (8159, 51), (8160, 52), (1, 1), (0, 0)])
def test_frames_for_a_known_duration(samples, frames):
    feats = log_mel(np.zeros(samples, dtype=np.float32) + 0.01)
    assert tuple(feats.shape) == (frames, 80)
    assert frame_count(samples) == frames
    assert feats.dtype == torch.float32


def test_other_sizes_and_a_torch_input():
    feats = log_mel(torch.zeros(4000, dtype=torch.float64), n_mels=40, win_ms=20, hop_ms=20)
    assert tuple(feats.shape) == (frame_count(4000, hop_ms=20), 40) == (13, 40)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_a_pure_tone_lands_in_its_mel_band(freq):
    import librosa

    centres = librosa.mel_frequencies(n_mels=80 + 2, fmin=0.0, fmax=SR / 2)[1:-1]  # each filter's peak
    band = int(log_mel(tone(freq)).mean(dim=0).argmax())
    assert abs(band - int(np.abs(centres - freq).argmin())) <= 1
    assert centres[band - 1] <= freq <= centres[band + 1]


def test_louder_means_higher_log_energy_by_the_power_ratio():
    quiet, loud = log_mel(tone(1000) * 0.1), log_mel(tone(1000))
    band = int(loud.mean(dim=0).argmax())
    assert float((loud - quiet)[5:-5, band].mean()) == pytest.approx(np.log(100), abs=1e-3)


def test_mfcc_is_the_orthonormal_dct_of_the_log_mels():
    audio = tone(440) + tone(2500) * 0.3
    expected = scipy.fft.dct(log_mel(audio, n_mels=40).numpy(), type=2, norm="ortho", axis=1)[:, :13]
    np.testing.assert_allclose(mfcc(audio).numpy(), expected, rtol=1e-4, atol=1e-3)
    with pytest.raises(RnnkitError, match=r"n_mfcc=50: give an integer from 1 to n_mels \(40\)"):
        mfcc(audio, n_mfcc=50)


def test_normalise_gives_zero_mean_unit_std_per_channel():
    rng = np.random.default_rng(0)
    out = normalise(log_mel(rng.standard_normal(8000).astype(np.float32) * 0.1 + tone(700, 0.5)))
    torch.testing.assert_close(out.mean(dim=0), torch.zeros(80), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=0, unbiased=False), torch.ones(80), atol=1e-4, rtol=0)


@pytest.mark.parametrize("samples", [0, 1, 16000])
def test_silence_and_empty_audio_stay_finite(samples):
    feats = log_mel(np.zeros(samples, dtype=np.float32))
    assert torch.isfinite(feats).all()
    out = normalise(feats)
    assert tuple(out.shape) == (frame_count(samples), 80)
    assert torch.isfinite(out).all() and out.eq(0).all()
    assert tuple(mfcc(np.zeros(samples)).shape) == (frame_count(samples), 13)


def test_bad_shapes_are_one_line_errors():
    with pytest.raises(RnnkitError, match=r"audio must be 1-D mono samples, got shape \(100, 2\)"):
        log_mel(np.zeros((100, 2)))
    with pytest.raises(RnnkitError, match=r"features must be a \(frames, channels\) tensor, got \(5,\)"):
        normalise(torch.zeros(5))
    with pytest.raises(RnnkitError, match="freq_width=-1: give a non-negative integer"):
        spec_augment(torch.zeros(5, 5), freq_width=-1)


def test_spec_augment_masks_exactly_the_drawn_bands():
    feats = torch.arange(1, 1 + 120 * 40, dtype=torch.float32).reshape(120, 40)  # no zero before masking
    options = {"freq_masks": 2, "freq_width": 8, "time_masks": 3, "time_width": 20}
    freq, time = mask_spans(120, 40, **options, generator=torch.Generator().manual_seed(5))
    assert len(freq) == 2 and len(time) == 3
    assert all(0 <= w <= 8 and s >= 0 and s + w <= 40 for s, w in freq)
    assert all(0 <= w <= 20 and s >= 0 and s + w <= 120 for s, w in time)
    expected = torch.zeros(120, 40, dtype=torch.bool)
    for s, w in freq:
        expected[:, s : s + w] = True
    for s, w in time:
        expected[s : s + w, :] = True
    out = spec_augment(feats, **options, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out == 0, expected)
    assert torch.equal(out[~expected], feats[~expected])
    assert feats.min() > 0  # the input is not masked in place


def test_spec_augment_is_deterministic_and_varies_with_the_seed():
    feats = torch.ones(200, 80)
    runs = [spec_augment(feats, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_spec_augment_on_tiny_and_empty_features():
    out = spec_augment(torch.ones(3, 4), freq_width=100, time_width=100, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 4)
    assert tuple(spec_augment(torch.zeros(0, 80)).shape) == (0, 80)
