"""``rnnkit speech make-corpus`` and ``rnnkit ctc train|eval|transcribe`` end to end on a tiny spoken corpus
(espeak-ng): the plumbing, exact resume, fusion with a character LM, timestamps and bad input. Learning to
recognise speech takes far longer than a test may: benchmarks/ctc_speech.py measures that."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (Debian: apt-get install espeak-ng)"
)

FLAGS = ["--hidden", "16", "--layers", "1", "--channels", "16", "--batch-size", "4", "--no-progress", "--n-mels", "20"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, train_cli):
    tmp = tmp_path_factory.mktemp("speech")
    (tmp / "lines.txt").write_text("one\none one\nno\nno no no\ncoffee\nletter\n")
    train_cli("speech", "make-corpus", "--text", tmp / "lines.txt", "--voices", "en-us,en+f4", "--speeds", "160,190",
              "--snr", "none,20", "--per-line", "3", "--out", tmp / "corpus", "--seed", "1")  # fmt: skip
    return tmp / "corpus" / "manifest.jsonl"


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory, train_cli):
    out = tmp_path_factory.mktemp("ctc") / "run"
    train_cli("ctc", "train", "--train", corpus, "--valid", corpus, "--out", out, *FLAGS, "--epochs", "2")
    return out


def test_make_corpus_writes_audio_and_a_manifest(corpus):
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert len(rows) == 18 and {"path", "text", "voice", "speed", "pitch", "snr", "duration"} <= set(rows[0])
    assert {r["text"] for r in rows} == {"one", "one one", "no", "no no no", "coffee", "letter"}
    assert all((corpus.parent / r["path"]).is_file() and r["duration"] > 0.1 for r in rows)


def test_train_eval_transcribe(trained, corpus, cli):
    assert {"labels.json", "best.safetensors", "config.json"} <= {p.name for p in trained.iterdir()}
    code, out, _ = cli("ctc", "eval", trained, "--data", corpus, "--json")
    result = json.loads(out)
    assert code == 0 and result["count"] == 18 and result["cer"] >= 0 and result["wer"] >= 0
    assert result["real_time_factor"] > 0
    wav = corpus.parent / json.loads(corpus.read_text().splitlines()[0])["path"]
    code, out, _ = cli("ctc", "transcribe", trained, wav, "--json")
    row = json.loads(out)
    assert code == 0 and row["file"] == str(wav) and isinstance(row["text"], str)
    assert all(c["start"] < c["end"] for c in row["chars"]) and "".join(c["char"] for c in row["chars"]) == row["text"]
    code, out, _ = cli("ctc", "eval", trained, "--data", corpus, "--beam", "4", "--json")
    assert code == 0 and json.loads(out)["beam"] == 4
    code, out, _ = cli("ctc", "transcribe", trained, wav, "--beam", "4", "--json")  # the beam's text, aligned
    row = json.loads(out)
    assert code == 0 and "".join(c["char"] for c in row["chars"]) == row["text"]
    assert all(a["end"] <= b["start"] for a, b in zip(row["chars"], row["chars"][1:], strict=False))


def test_beam_search_fuses_a_character_lm(trained, corpus, tmp_path, cli):
    (tmp_path / "text.txt").write_text("one one\nno no no\ncoffee\nletter\n" * 20)
    lm = ["lm", "train", "--train", tmp_path / "text.txt", "--level", "char", "--out", tmp_path / "lm"]
    assert cli(*lm, "--hidden", "16", "--epochs", "1", "--batch-size", "4", "--bptt", "10", "--no-progress")[0] == 0
    flags = ["--beam", "4", "--lm", tmp_path / "lm", "--lm-weight", "0.5", "--json"]
    code, out, _ = cli("ctc", "eval", trained, "--data", corpus, *flags)
    assert code == 0 and json.loads(out)["lm"] == str(tmp_path / "lm")
    code, _, err = cli("ctc", "eval", trained, "--data", corpus, "--lm", tmp_path / "lm")
    assert code == 2 and "give --beam 2 or more" in err


def test_resume_is_exact(corpus, tmp_path, cli):
    base = ["ctc", "train", "--train", corpus, *FLAGS, "--dropout", "0.3"]
    assert cli(*base, "--epochs", "2", "--out", tmp_path / "whole")[0] == 0
    assert cli(*base, "--epochs", "1", "--out", tmp_path / "parts")[0] == 0
    assert cli("ctc", "train", "--out", tmp_path / "parts", "--resume", "--epochs", "2")[0] == 0
    whole, parts = (load_file(str(tmp_path / r / "checkpoint" / "model.safetensors")) for r in ("whole", "parts"))
    assert all(torch.equal(whole[k], parts[k]) for k in whole)  # SpecAugment masks replayed too


def test_bad_input_is_one_line(trained, corpus, tmp_path, cli):
    (tmp_path / "bad.wav").write_text("not audio at all")
    code, _, err = cli("ctc", "transcribe", trained, tmp_path / "bad.wav")
    assert code == 2 and "bad.wav" in err and err.count("\n") == 1
    silent = tmp_path / "silent.wav"
    from rnnkit.data.speech import write_wav

    write_wav(silent, np.zeros(0, dtype=np.float32))
    code, out, _ = cli("ctc", "transcribe", trained, silent)
    assert code == 0 and out == "\n"  # an empty transcript, not a crash
    write_wav(silent, np.zeros(16000, dtype=np.float32))  # a second of digital silence: nothing was said
    code, out, _ = cli("ctc", "transcribe", trained, silent, "--json")
    assert code == 0 and json.loads(out)["text"] == "" and json.loads(out)["chars"] == []
    rows = corpus.read_text().splitlines()
    row = json.loads(rows[0]) | {"text": "one 1"}
    (tmp_path / "digits.jsonl").write_text(json.dumps(row | {"path": str(corpus.parent / row["path"])}) + "\n")
    code, _, err = cli("ctc", "eval", trained, "--data", tmp_path / "digits.jsonl")
    assert code == 2 and "digits.jsonl:1" in err and "'1' is not in the run's alphabet" in err
    code, _, err = cli("ctc", "eval", trained, "--data", corpus, "--beam", "0")
    assert code == 2 and "--beam must be at least 1, got 0" in err
    code, _, err = cli("ctc", "eval", trained, "--data", corpus, "--beam", "4", "--lm-weight", "nan")
    assert code == 2 and "--lm-weight and --bonus must be finite numbers" in err
