"""--embeddings: GloVe / word2vec text files and rnnkit LM runs into a tagger's or classifier's word embedding."""

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError
from rnnkit.tasks.pretrained import init_embedding


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it


def test_text_vectors_fill_their_words_and_nothing_else(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("3 2\nGood 9 9\ngood 1 2\nFILM 3 4\n<unk> 7 7\n")  # word2vec header; "good" beats "Good"
    vocab = Vocabulary.build(["good", "film", "plot"])
    weight = torch.full((len(vocab), 2), -5.0)
    assert init_embedding(weight, vocab, path, lowercase=True) == "pretrained vectors for 2 of 3 words from vectors.txt"
    assert weight[vocab.index("good")].tolist() == [1, 2] and weight[vocab.index("film")].tolist() == [3, 4]
    assert weight[vocab.index("plot")].tolist() == [-5, -5] and weight[vocab.unk_id].tolist() == [-5, -5]
    weight = torch.full((len(vocab), 2), -5.0)
    init_embedding(weight, Vocabulary.build(["good", "FILM"]), path)  # case kept: "FILM" only as written
    assert weight[Vocabulary.build(["good", "FILM"]).index("FILM")].tolist() == [3, 4]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("good 1 2\nfilm 1\n", "vectors.txt:2: 1 values where the first vector has 2: one size for all"),
        ("good 1 x\n", "vectors.txt:1: a value of 'good' is not a number"),
        ("good\n", "vectors.txt:1: a word without a vector"),
        ("\n", "vectors.txt is empty"),
        ("good 1 2 3\n", "vectors.txt has 3-dimensional vectors but the word embedding has 2: pass --embed 3"),
    ],
)
def test_bad_vector_files_are_one_line_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "vectors.txt"
    path.write_text(text)
    with pytest.raises(RnnkitError) as error:
        init_embedding(torch.zeros(6, 2), Vocabulary.build(["good", "film"]), path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_lm_run_is_a_source_and_training_starts_from_its_vectors(tmp_path, cli):
    """Self-supervised pretraining: an rnnkit LM's input embedding becomes a classifier's, word by word."""
    (tmp_path / "lm.txt").write_text("a good film and a dull plot\n" * 30)
    lm = tmp_path / "lm"
    argv = ["lm", "train", "--train", tmp_path / "lm.txt", "--out", lm, "--level", "word", "--hidden", "6"]
    assert cli(*argv, "--max-steps", "2", "--batch-size", "2", "--bptt", "4", "--no-progress")[0] == 0
    lm_weight = load_file(str(lm / "best.safetensors"))["embedding.weight"]
    lm_vocab = json.loads((lm / "vocab.json").read_text())["tokens"]
    (tmp_path / "train.tsv").write_text("pos\tgood film\nneg\tdull plot\npos\ta good plot\nneg\tcold film\n")
    run = tmp_path / "cls"
    argv = ["classify", "train", "--train", tmp_path / "train.tsv", "--out", run, "--embed", "6", "--hidden", "4"]
    argv += ["--embeddings", lm, "--optimizer", "sgd", "--lr", "1e-9", "--epochs", "1", "--no-progress"]
    code, _, err = cli(*argv)
    assert code == 0 and "pretrained vectors for 5 of 6 words from lm" in err  # "cold" is not in the LM
    weight = load_file(str(run / "checkpoint" / "model.safetensors"))["embedding.weight"]
    vocab = json.loads((run / "vocab.json").read_text())["tokens"]
    for word in ("good", "film", "dull", "plot", "a"):
        torch.testing.assert_close(weight[vocab.index(word)], lm_weight[lm_vocab.index(word)], rtol=0, atol=1e-6)
    assert cli("classify", "train", "--out", run, "--resume", "--epochs", "2", "--no-progress")[0] == 0  # not re-read
    bad = ["classify", "train", "--train", tmp_path / "train.tsv", "--out", tmp_path / "bad", "--embed", "6"]
    code, _, err = cli(*bad, "--embeddings", run, "--no-progress")
    assert code == 2 and "is not an rnnkit lm run" in err
    assert not (tmp_path / "bad").exists()
