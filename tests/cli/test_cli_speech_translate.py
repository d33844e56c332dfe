"""``rnnkit speech-translate train|eval|translate`` end to end on a tiny German corpus (espeak-ng): the plumbing,
BLEU with its signature, exact resume and bad input. What a trained model reaches is measured by
benchmarks/speech_translate.py."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnkit.tasks.ctc import make_speech_batch
from rnnkit.tasks.seq2seq.speech import SpeechSeq2Seq, SpeechSeq2SeqConfig

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (Debian: apt-get install espeak-ng)"
)

FLAGS = ["--hidden", "16", "--layers", "1", "--channels", "16", "--batch-size", "4", "--n-mels", "20"]
FLAGS += ["--no-progress"]
PAIRS = {"eins zwei": "one two", "nein nein": "no no", "mach das licht aus": "turn the light off"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, train_cli):
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (Debian: apt-get install espeak-ng)")
    tmp = tmp_path_factory.mktemp("de")
    (tmp / "lines.txt").write_text("".join(f"{de}\n" for de in PAIRS))
    train_cli("speech", "make-corpus", "--text", tmp / "lines.txt", "--voices", "de,de+f2", "--speeds", "150,190",
              "--out", tmp / "corpus", "--seed", "3")  # fmt: skip
    manifest = tmp / "corpus" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps(r | {"translation": PAIRS[r["text"]]}) + "\n" for r in rows))
    return manifest


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory, train_cli):
    out = tmp_path_factory.mktemp("st") / "run"
    train_cli("speech-translate", "train", "--train", corpus, "--valid", corpus, "--out", out, *FLAGS, "--epochs", "2")
    return out


@needs_espeak
def test_train_eval_translate(trained, corpus, cli):
    assert {"tgt.vocab.json", "best.safetensors", "config.json"} <= {p.name for p in trained.iterdir()}
    code, out, _ = cli("speech-translate", "eval", trained, "--data", corpus, "--beam", "2", "--json")
    result = json.loads(out)
    assert code == 0 and result["count"] == 12 and result["beam"] == 2 and 0 <= result["bleu"] <= 100
    assert result["bleu_signature"].startswith("nrefs:1") and result["real_time_factor"] > 0
    code, out, _ = cli("speech-translate", "eval", trained, "--data", corpus, "--beam", "1")
    assert code == 0 and "BLEU" in out and "BLEU signature: nrefs:1" in out
    wav = corpus.parent / json.loads(corpus.read_text().splitlines()[0])["path"]
    code, out, _ = cli("speech-translate", "translate", trained, wav, "--json")
    row = json.loads(out)
    assert code == 0 and row["file"] == str(wav) and isinstance(row["text"], str)
    vocab = set(json.loads((trained / "tgt.vocab.json").read_text())["tokens"])
    assert set(row["text"].split()) <= vocab


@needs_espeak
def test_resume_is_exact(corpus, tmp_path, cli):
    base = ["speech-translate", "train", "--train", corpus, *FLAGS, "--dropout", "0.3"]
    assert cli(*base, "--epochs", "2", "--out", tmp_path / "whole")[0] == 0
    assert cli(*base, "--epochs", "1", "--out", tmp_path / "parts")[0] == 0
    assert cli("speech-translate", "train", "--out", tmp_path / "parts", "--resume", "--epochs", "2")[0] == 0
    whole, parts = (load_file(str(tmp_path / r / "checkpoint" / "model.safetensors")) for r in ("whole", "parts"))
    assert all(torch.equal(whole[k], parts[k]) for k in whole)  # SpecAugment masks replayed too


@needs_espeak
def test_bad_input_is_one_line(trained, corpus, tmp_path, cli):
    row = json.loads(corpus.read_text().splitlines()[0])
    row["path"] = str(corpus.parent / row["path"])
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(row | {"translation": None}) + "\n")
    code, _, err = cli("speech-translate", "eval", trained, "--data", tmp_path / "m.jsonl")
    assert code == 2 and 'm.jsonl:2: no "translation"' in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("speech-translate", "eval", trained, "--data", corpus, "--beam", "0")
    assert code == 2 and "--beam must be at least 1" in err
    (tmp_path / "bad.wav").write_text("not audio")
    code, _, err = cli("speech-translate", "translate", trained, tmp_path / "bad.wav")
    assert code == 2 and "bad.wav" in err
    from rnnkit.data.speech import write_wav

    write_wav(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32))
    code, out, _ = cli("speech-translate", "translate", trained, tmp_path / "silent.wav")
    assert code == 0 and out == "\n"  # nothing said, nothing translated


def test_padding_changes_no_translation():
    torch.manual_seed(0)
    model = SpeechSeq2Seq(6, 12, SpeechSeq2SeqConfig(hidden=8, channels=8), pad_id=0, bos=2, eos=3).eval()
    short, long = torch.randn(9, 6), torch.randn(30, 6)
    batch, alone = make_speech_batch([long, short]), make_speech_batch([short])
    with torch.no_grad():
        together = model.translate(batch.features, batch.lengths, beam_size=3)
        single = model.translate(alone.features, alone.lengths, beam_size=3)
        x, lengths = model.embed_source(batch.features, batch.lengths)
    assert together[1][0].tokens == single[0][0].tokens
    assert together[1][0].score == pytest.approx(single[0][0].score, abs=1e-5)
    assert x.shape[1] == 8 and lengths.tolist() == [8, 3]  # 4x fewer frames: ceil(ceil(T / 2) / 2)
