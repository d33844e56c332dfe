"""Speech corpora and audio files: espeak-ng corpora, noise at a given SNR, loading hostile audio, manifests."""

import json
import math
import shutil

import numpy as np
import pytest
import soundfile as sf

from rnnkit.data import speech
from rnnkit.data.speech import (
    DEFAULT_SPLITS,
    SAMPLE_RATE,
    add_noise,
    check_alphabet,
    check_voice,
    default_corpus_text,
    load_audio,
    make_corpus,
    normalise_text,
    read_manifest,
    speak,
    write_wav,
)
from rnnkit.errors import RnnkitError

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed: sudo apt-get install espeak-ng"
)


def power(x):
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


# ---------------------------------------- espeak-ng and corpora


@needs_espeak
def test_make_corpus_is_byte_identical_across_runs(tmp_path):
    options = {"voices": ["en-us", "en+f3"], "speeds": [150, 200], "pitches": [50], "snrs": [None, 10.0]}
    lines = ["One  one two", "", "coffee"]
    first = make_corpus(lines, tmp_path / "a", **options, seed=3, per_line=3)
    second = make_corpus(lines, tmp_path / "b", **options, seed=3, per_line=3)
    assert first.read_bytes() == second.read_bytes()
    wavs = sorted(p.name for p in (tmp_path / "a" / "wav").iterdir())
    assert wavs == [
        "00000-000.wav",
        "00000-001.wav",
        "00000-002.wav",
        "00002-000.wav",
        "00002-001.wav",
        "00002-002.wav",
    ]
    for name in wavs:
        assert (tmp_path / "a" / "wav" / name).read_bytes() == (tmp_path / "b" / "wav" / name).read_bytes()
    other = make_corpus(lines, tmp_path / "c", **options, seed=4, per_line=3)
    assert other.read_bytes() != first.read_bytes()  # the seed picks other combinations (or other noise)


@needs_espeak
def test_manifest_rows_paths_and_durations(tmp_path):
    calls = []
    manifest = make_corpus(
        ["no no no", "Letter"], tmp_path, voices=["en-us+m3"], pitches=[40, 60], snrs=[20], split_name="x",
        progress=lambda done, total: calls.append((done, total)),
    )  # fmt: skip
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert manifest == tmp_path / "x.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["path"] for r in rows] == [f"wav/x-0000{i}-00{k}.wav" for i in (0, 1) for k in (0, 1)]
    assert [r["text"] for r in rows] == ["no no no", "no no no", "letter", "letter"]
    assert list(rows[0]) == ["path", "text", "voice", "speed", "pitch", "snr", "duration"]
    assert {(r["voice"], r["speed"], r["pitch"], r["snr"]) for r in rows[:2]} == {
        ("en-us+m3", 175, p, 20.0) for p in (40, 60)
    }
    for row in rows:
        info = sf.info(tmp_path / row["path"])
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert row["duration"] == round(info.frames / 16000, 4) and 0.3 < row["duration"] < 3
    utterances = read_manifest(manifest)
    assert utterances[0].path == (tmp_path / "wav/x-00000-000.wav").absolute() and utterances[0].line == 1
    assert (utterances[2].text, utterances[2].voice, utterances[2].snr) == ("letter", "en-us+m3", 20.0)


@needs_espeak
def test_speak_gives_16khz_float32_speech():
    fast, slow = speak("one two three", voice="en-us", speed=300, pitch=50), speak("one two three", speed=120)
    assert fast.dtype == np.float32 and fast.ndim == 1
    assert 0.05 < np.abs(fast).max() <= 1.0
    assert len(slow) > 1.5 * len(fast)  # speed is words a minute
    assert speak("   ").shape == (0,)


@needs_espeak
def test_unknown_voices_and_ignored_variants_fail_up_front(tmp_path):
    with pytest.raises(
        RnnkitError, match=r"espeak-ng failed with voice 'xx-nope' \(.*voice does not exist.*--voices=en"
    ):
        speak("hi", voice="xx-nope")
    with pytest.raises(RnnkitError, match=r"espeak-ng ignores the variant of voice 'en-gb\+f3'"):
        check_voice("en-gb+f3")  # a language alias: espeak-ng drops the variant without a word
    with pytest.raises(RnnkitError, match=r"ignores the variant of voice 'en-us\+F3'"):
        make_corpus(["hi"], tmp_path, voices=["en-us", "en-us+F3"])
    assert not (tmp_path / "manifest.jsonl").exists()


def test_argument_errors():
    with pytest.raises(RnnkitError, match="speed 20 is out of range: give an integer from 80 to 450"):
        speak("hi", speed=20)
    with pytest.raises(RnnkitError, match="pitch 100 is out of range"):
        speak("hi", pitch=100)
    with pytest.raises(RnnkitError, match="is not an espeak-ng voice name"):
        speak("hi", voice="-w /tmp/x")
    for bad, message in [
        ({"seed": -1}, "seed -1: give a non-negative integer"),
        ({"split_name": "../up"}, "split name '../up': use letters"),
        ({"per_line": 0}, "per_line 0: give a positive integer"),
        ({"snrs": []}, r"snrs is a list of 0 items: give a non-empty list"),
        ({"speeds": [175, 500]}, "speed 500 is out of range"),
    ]:
        with pytest.raises(RnnkitError, match=message):
            make_corpus(["hi"], "unused", **{"voices": ["en-us"], **bad})


def test_missing_espeak_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(RnnkitError, match=r"^espeak-ng is not installed: sudo apt-get install espeak-ng"):
        make_corpus(["hi"], tmp_path, voices=["en-us"])


def test_default_corpus_text_and_splits():
    texts = default_corpus_text(0)
    assert default_corpus_text(0) == texts and default_corpus_text(1) != texts
    assert 300 <= sum(map(len, texts.values())) <= 1000
    lines = [line for split in texts.values() for line in split]
    assert all(line == normalise_text(line) for line in lines)
    assert {"no no no", "one one", "a cup of coffee", "write a letter", "the red balloon"} <= set(texts["test"])
    drawn = {name: set(split) - set(speech._PHRASES) for name, split in texts.items()}  # digit strings, dates
    assert len(drawn["test"]) == 35 and not drawn["test"] & drawn["train"] and not drawn["valid"] & drawn["train"]
    assert any("march" in line for line in drawn["train"])
    assert any(len(set(line.split())) < len(line.split()) for line in drawn["test"])  # "one one two"
    assert len(set("".join(lines)) - set(" abcdefghijklmnopqrstuvwxyz")) == 0
    heard = DEFAULT_SPLITS["train"]
    for held_out in (DEFAULT_SPLITS["valid"], DEFAULT_SPLITS["test"]):
        assert not set(held_out.voices) & set(heard.voices)
        assert not set(held_out.speeds) & set(heard.speeds)
        assert not {v.partition("+")[2] for v in held_out.voices} - {""} & {v.partition("+")[2] for v in heard.voices}


def test_word_corpus_is_every_word_alone_with_held_out_voices():
    words = speech.default_words()
    assert len(words) == len(set(words)) == 120 and all(" " not in w for w in words)
    assert {"coffee", "letter", "balloon", "one", "march", "twenty"} <= set(words)
    for name in ("valid", "test"):
        assert speech.WORD_SPLITS[name].voices == DEFAULT_SPLITS[name].voices
    assert [speech.WORD_SPLITS[n].per_line for n in ("train", "valid", "test")] == [8, 3, 4]


def test_german_corpus_pairs_and_splits():
    from rnnkit.data import speech_translation as st

    pairs = st.german_corpus_text(0)
    assert st.german_corpus_text(0) == pairs and st.german_corpus_text(1) != pairs
    assert [len(pairs[n]) for n in ("train", "valid", "test")] == [484, 91, 91]
    drawn = {name: set(split) - set(st._COMMANDS) for name, split in pairs.items()}
    assert not drawn["test"] & drawn["train"] and not drawn["valid"] & drawn["train"]
    english = dict(pairs["train"])
    assert english["mach das licht aus"] == "turn the light off" and english["nein nein nein"] == "no no no"
    date = ("der einunddreißigste dezember", "december thirty first")
    assert st.translate_date("einunddreißigste", "dezember") == date
    times = [(de, en) for de, en in pairs["train"] if "uhr" in de]
    assert times and all(de.split()[-1] in ("an", "uhr") for de, _ in times)  # the particle comes last in German
    assert all(de == normalise_text(de) for split in pairs.values() for de, _ in split)
    heard = st.GERMAN_SPLITS["train"].voices
    assert not (set(st.GERMAN_SPLITS["valid"].voices) | set(st.GERMAN_SPLITS["test"].voices)) & set(heard)


@needs_espeak
def test_german_corpus_rows_carry_their_translation(tmp_path, monkeypatch):
    from rnnkit.data import speech_translation as st

    small = {"train": [("nein nein", "no no"), ("der dritte märz", "march third")], "valid": [], "test": []}
    monkeypatch.setattr(st, "german_corpus_text", lambda seed: small)
    few = st.CorpusSplit(voices=("de",), speeds=(175,), pitches=(50,), snrs=(None,), per_line=1)
    monkeypatch.setattr(st, "GERMAN_SPLITS", {"train": few, "valid": few, "test": few})
    manifests = st.make_german_corpus(tmp_path)
    rows = read_manifest(manifests["train"])
    assert [(r.text, r.translation) for r in rows] == small["train"] and rows[0].voice == "de"


# ---------------------------------------- noise


def test_add_noise_hits_the_snr_and_is_deterministic():
    clean = (0.3 * np.sin(np.arange(16000) / 7)).astype(np.float32)
    for snr in (0.0, 10.0, 25.0):
        noisy = add_noise(clean, snr, np.random.default_rng(1))
        assert noisy.dtype == np.float32
        assert 10 * math.log10(power(clean) / power(noisy - clean)) == pytest.approx(snr, abs=0.01)
    again = add_noise(clean, 10.0, np.random.default_rng(1))
    assert np.array_equal(again, add_noise(clean, 10.0, np.random.default_rng(1)))
    assert not np.array_equal(again, add_noise(clean, 10.0, np.random.default_rng(2)))


def test_add_noise_clean_silent_and_bad_snr():
    clean = np.ones(100, dtype=np.float32)
    assert np.array_equal(add_noise(clean, None, np.random.default_rng(0)), clean)
    assert np.array_equal(add_noise(clean, math.inf, np.random.default_rng(0)), clean)
    assert np.array_equal(add_noise(np.zeros(50), 10.0, np.random.default_rng(0)), np.zeros(50))  # no power, no noise
    assert add_noise(np.zeros(0), 10.0, np.random.default_rng(0)).shape == (0,)
    for bad in (math.nan, -math.inf, "10"):
        with pytest.raises(RnnkitError, match="is not a number of decibels"):
            add_noise(clean, bad, np.random.default_rng(0))


def test_write_wav_scales_down_instead_of_clipping(tmp_path):
    x = np.array([0.0, 2.0, -1.0], dtype=np.float32)
    back = load_audio(write_wav(tmp_path / "a.wav", x))
    np.testing.assert_allclose(back, [0.0, 0.99, -0.495], atol=1e-4)


# ---------------------------------------- loading audio


def test_other_rates_are_resampled(tmp_path):
    for rate in (44100, 8000, 22050):
        t = np.arange(rate) / rate
        sf.write(tmp_path / f"{rate}.wav", 0.5 * np.sin(2 * np.pi * 440 * t), rate, subtype="FLOAT")
        audio = load_audio(tmp_path / f"{rate}.wav")
        assert audio.dtype == np.float32 and audio.shape == (SAMPLE_RATE,)
        expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
        np.testing.assert_allclose(audio[500:-500], expected[500:-500], atol=0.01)  # filter edges aside


def test_stereo_is_downmixed_by_the_mean(tmp_path):
    left, right = np.full(1000, 0.5), np.full(1000, -0.1)
    sf.write(tmp_path / "st.flac", np.stack([left, right], axis=1), SAMPLE_RATE)
    np.testing.assert_allclose(load_audio(tmp_path / "st.flac"), 0.2, atol=1e-4)


def test_empty_wav_is_an_empty_array(tmp_path):
    write_wav(tmp_path / "empty.wav", np.zeros(0))
    audio = load_audio(tmp_path / "empty.wav")
    assert audio.shape == (0,) and audio.dtype == np.float32


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"one one two\n", r"x\.wav is not audio rnnkit can read \(Format not recognised\): give a WAV"),
        (b"", r"x\.wav is empty \(0 bytes\), not audio"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", r"x\.wav is not audio rnnkit can read"),
    ],
)
def test_files_that_are_not_audio(tmp_path, content, message):
    (tmp_path / "x.wav").write_bytes(content)
    with pytest.raises(RnnkitError, match=message) as info:
        load_audio(tmp_path / "x.wav")
    assert "\n" not in str(info.value)


def test_truncated_wav_is_an_error(tmp_path):
    data = write_wav(tmp_path / "full.wav", np.full(16000, 0.1)).read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:20000])
    with pytest.raises(RnnkitError, match=r"cut\.wav is truncated: its header promises 32,000 bytes .* only 19,956"):
        load_audio(tmp_path / "cut.wav")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(RnnkitError, match=r"nope\.wav: no such file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(RnnkitError, match="is a folder: give an audio file"):
        load_audio(tmp_path)


# ---------------------------------------- manifests and transcripts


def write_manifest(folder, rows):
    write_wav(folder / "a.wav", np.zeros(160))
    path = folder / "m.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_read_manifest_minimal_rows(tmp_path):
    path = write_manifest(
        tmp_path, [{"path": "a.wav", "text": "hi"}, "", {"path": str(tmp_path / "a.wav"), "text": ""}]
    )
    first, second = read_manifest(path)
    assert (first.path, first.text, first.voice, first.snr, first.line) == (tmp_path / "a.wav", "hi", None, None, 1)
    assert (second.text, second.line) == ("", 3)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"path": "gone.wav", "text": "hi"}, r"m\.jsonl:2: audio file .*gone\.wav does not exist \(paths are relative"),
        ({"path": ".", "text": "hi"}, r"m\.jsonl:2: audio file .* is a folder"),
        ({"text": "hi"}, r'm\.jsonl:2: "path" is missing or not a string'),
        ({"path": "a.wav", "text": 3}, r'm\.jsonl:2: "text" is missing or not a string'),
        ({"path": "a.wav", "text": "hi", "snr": "loud"}, r"m\.jsonl:2: \"snr\" is 'loud': give a number"),
        ('{"path": "a.wav",', r"m\.jsonl:2: column 18: not JSON"),
        ("[1, 2]", r"m\.jsonl:2: a list of 2 items is not a JSON object"),
        ({"path": "a.wav", "text": "hi", "translation": ["hi"]}, r'm\.jsonl:2: "translation" is .*: give a string'),
    ],
)
def test_read_manifest_errors_name_the_line(tmp_path, row, message):
    path = write_manifest(tmp_path, [{"path": "a.wav", "text": "ok"}, row])
    with pytest.raises(RnnkitError, match=message):
        read_manifest(path)


def test_check_alphabet_names_the_line_and_the_character(tmp_path):
    alphabet = " abcdefghijklmnopqrstuvwxyz'"
    check_alphabet(["it's ok", ""], alphabet, where="m.jsonl")
    with pytest.raises(
        RnnkitError, match=r"^m\.jsonl:7: the transcript 'call 911' has '9' \(U\+0039\), .*map or remove"
    ):
        check_alphabet(["fine", "call 911"], alphabet, where="m.jsonl", lines=[3, 7])
    with pytest.raises(RnnkitError, match=r"m\.jsonl:1: .* has 'C' \(U\+0043\).*--lowercase"):
        check_alphabet(["Coffee"], alphabet, where="m.jsonl")


def test_normalise_text():
    assert normalise_text("  Turn THE\tlight\n on ") == "turn the light on"
    assert normalise_text(" \n") == ""
