"""``rnnkit speech-ae train|eval|embed|search`` end to end on a tiny corpus of spoken words (espeak-ng): the
plumbing, the retrieval methods, exact resume and bad input. What a trained code retrieves is measured by
benchmarks/speech_retrieval.py."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (Debian: apt-get install espeak-ng)"
)

FLAGS = ["--hidden", "8", "--layers", "1", "--code", "4", "--batch-size", "4", "--no-progress", "--n-mels", "20"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, train_cli):
    tmp = tmp_path_factory.mktemp("words")
    (tmp / "words.txt").write_text("coffee\nletter\nmoon\n")
    train_cli("speech", "make-corpus", "--text", tmp / "words.txt", "--voices", "en-us,en+f4", "--speeds", "150,190",
              "--snr", "none,20", "--per-line", "3", "--out", tmp / "corpus", "--seed", "2")  # fmt: skip
    return tmp / "corpus" / "manifest.jsonl"


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory, train_cli):
    out = tmp_path_factory.mktemp("sae") / "run"
    train_cli("speech-ae", "train", "--train", corpus, "--valid", corpus, "--out", out, *FLAGS, "--epochs", "2")
    return out


def wav(corpus, row=0):
    return corpus.parent / json.loads(corpus.read_text().splitlines()[row])["path"]


@pytest.mark.parametrize("method", ["code", "mean", "dtw"])
def test_eval_reports_map_for_each_method(trained, corpus, cli, method):
    code, out, _ = cli("speech-ae", "eval", trained, "--data", corpus, "--method", method, "--json")
    result = json.loads(out)
    assert code == 0 and result["method"] == method and result["count"] == 9 and result["queries"] == 9
    assert 0 < result["map"] <= 1 and result["seconds_per_query"] > 0
    assert ("loss" in result) == (method == "code")
    code, out, _ = cli("speech-ae", "eval", trained, "--data", corpus, "--method", method)
    assert code == 0 and f"({method}; 9 queries" in out


def test_embed_writes_one_code_per_utterance(trained, corpus, tmp_path, cli):
    code, _, err = cli("speech-ae", "embed", trained, "--data", corpus, "--out", tmp_path / "codes.npy")
    codes = np.load(tmp_path / "codes.npy", allow_pickle=False)
    assert code == 0 and codes.shape == (9, 4) and "9 codes of size 4" in err
    assert np.all(np.abs(codes) <= 1)  # tanh
    code, out, _ = cli("speech-ae", "embed", trained, wav(corpus, 0), wav(corpus, 4))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["file"] for r in rows] == [str(wav(corpus, 0)), str(wav(corpus, 4))]
    assert np.allclose([rows[0]["vector"], rows[1]["vector"]], codes[[0, 4]], atol=1e-6)  # alone = in a batch


def test_search_finds_the_query_itself_first(trained, corpus, cli):
    code, out, _ = cli("speech-ae", "search", trained, wav(corpus, 5), "--index", corpus, "--top", "3", "--json")
    result = json.loads(out)
    assert code == 0 and len(result["results"]) == 3
    first = result["results"][0]
    assert first["file"] == str(wav(corpus, 5)) and first["similarity"] == pytest.approx(1.0, abs=1e-5)
    code, out, _ = cli("speech-ae", "search", trained, wav(corpus, 5), "--index", corpus, "--top", "2")
    assert code == 0 and out.splitlines()[0] == str(wav(corpus, 5)) and len(out.splitlines()) == 3


def test_resume_is_exact(corpus, tmp_path, cli):
    base = ["speech-ae", "train", "--train", corpus, *FLAGS, "--dropout", "0.3", "--spec-augment"]
    assert cli(*base, "--epochs", "2", "--out", tmp_path / "whole")[0] == 0
    assert cli(*base, "--epochs", "1", "--out", tmp_path / "parts")[0] == 0
    assert cli("speech-ae", "train", "--out", tmp_path / "parts", "--resume", "--epochs", "2")[0] == 0
    whole, parts = (load_file(str(tmp_path / r / "checkpoint" / "model.safetensors")) for r in ("whole", "parts"))
    assert all(torch.equal(whole[k], parts[k]) for k in whole)  # the denoising masks replayed too


def test_bad_input_is_one_line(trained, corpus, tmp_path, cli):
    (tmp_path / "bad.wav").write_text("not audio at all")
    code, _, err = cli("speech-ae", "search", trained, tmp_path / "bad.wav", "--index", corpus)
    assert code == 2 and "bad.wav" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("speech-ae", "embed", trained)
    assert code == 2 and "give audio FILEs or --data MANIFEST" in err
    from rnnkit.data.speech import write_wav

    write_wav(tmp_path / "silent.wav", np.zeros(8000, dtype=np.float32))
    code, out, _ = cli("speech-ae", "embed", trained, tmp_path / "silent.wav")
    assert code == 0 and json.loads(out)["vector"] == [0.0] * 4  # silence: a zero code, similar to nothing
    code, _, err = cli("speech-ae", "search", trained, wav(corpus), "--index", corpus, "--top", "0")
    assert code == 2 and "--top must be at least 1" in err
    code, _, err = cli("speech-ae", "embed", trained, wav(corpus), "--out", tmp_path / "codes.txt")
    assert code == 2 and "should end in .npy or .json" in err
    (tmp_path / "one.jsonl").write_text(json.dumps({"path": str(wav(corpus)), "text": "coffee"}) + "\n")
    code, _, err = cli("speech-ae", "eval", trained, "--data", tmp_path / "one.jsonl")
    assert code == 2 and "nothing to find" in err
    code, _, err = cli("speech", "make-corpus", "--words", "--default", "--out", tmp_path / "c")
    assert code == 2 and "give one" in err
    code, _, err = cli("speech", "make-corpus", "--words", "--voices", "en-us", "--out", tmp_path / "c")
    assert code == 2 and "--words makes a built-in corpus" in err
