"""--embeddings: GloVe / word2vec text files and rnnkit LM runs into a tagger's or classifier's word embedding."""

import json
import shutil
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


# --encoder / --encoder-backward: the LM's recurrent layers too (ULMFiT's transfer)


@pytest.fixture(scope="module")
def lms(tmp_path_factory, train_cli):
    """Two 1-layer LSTM LMs of 6 units on tiny text, one of it reversed line by line, and the text's words."""
    folder = tmp_path_factory.mktemp("lms")
    lines = ["a good film and a dull plot", "the plot is good", "a dull film"] * 10
    runs = []
    for name, text in (("fwd", lines), ("bwd", [" ".join(reversed(line.split())) for line in lines])):
        (folder / f"{name}.txt").write_text("\n".join(text) + "\n")
        argv = ["lm", "train", "--train", folder / f"{name}.txt", "--out", folder / name, "--level", "word"]
        train_cli(*argv, "--layers", "1", "--hidden", "6", "--max-steps", "3", "--batch-size", "2", "--no-progress")
        runs.append(folder / name)
    return runs


def _lm_layer_output(run_path, words):
    from rnnkit.tasks import registry

    run = registry.load_run(run_path)
    ids = torch.tensor([run.vocab.index(w) for w in words]).unsqueeze(1)  # (T, 1)
    return run.model.layers[0](run.model.embedding(ids))[0].squeeze(1)  # (T, 6)


def test_each_direction_starts_computing_exactly_what_its_lm_computed(lms):
    """The encoder's forward half equals the forward LM's layer; its backward half, read right to left, the
    backward LM's; character columns keep their random start; words the LMs lack keep their vectors."""
    from rnnkit.compat import make_layer
    from rnnkit.tasks.pretrained import init_encoder

    vocab = Vocabulary.build(["good", "film", "plot", "dull", "unseen"])
    embedding = torch.nn.Embedding(len(vocab), 12)
    unseen = embedding.weight[vocab.index("unseen")].detach().clone()
    rnn = make_layer("lstm", 12 + 4, 6, bidirectional=True, batch_first=True)  # 4 character-feature columns
    chars = (rnn.weight_ih_l0[:, 12:].detach().clone(), rnn.weight_ih_l0_reverse[:, 12:].detach().clone())
    said = init_encoder(embedding.weight, rnn, vocab, lms[0], lms[1], cell="lstm")
    assert said == "encoder from fwd (4 of 5 words, 1 of 1 layer(s)) and bwd (4 of 5 words, 1 of 1 layer(s) backward)"
    assert torch.equal(embedding.weight[vocab.index("unseen")], unseen)
    assert torch.equal(rnn.weight_ih_l0[:, 12:], chars[0]) and torch.equal(rnn.weight_ih_l0_reverse[:, 12:], chars[1])
    words = ["good", "dull", "plot"]
    x = torch.cat([embedding(torch.tensor([[vocab.index(w) for w in words]])), torch.zeros(1, 3, 4)], dim=-1)
    with torch.no_grad():
        out = rnn(x)[0][0]  # (T, 12)
        torch.testing.assert_close(out[:, :6], _lm_layer_output(lms[0], words), rtol=0, atol=1e-6)
        backward = _lm_layer_output(lms[1], list(reversed(words)))
        torch.testing.assert_close(out[:, 6:], backward.flip(0), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("cell", "hidden", "embed", "bidirectional", "backward", "message"),
    [
        ("gru", 6, 6, False, False, "fwd is a lstm LM and the encoder gru: pass --cell lstm"),
        (
            "lstm",
            8,
            6,
            False,
            False,
            "layer 0's weight_ih_l0 is (24, 6) but the encoder's is (32, 6): give the encoder the LM's --hidden 6",
        ),
        ("lstm", 6, 6, True, True, "the word embedding has 6: pass --embed 12 (the runs' vectors side by side)"),
        ("lstm", 6, 12, False, True, "--encoder-backward starts a backward direction: add --bidirectional"),
    ],
)
def test_encoders_that_do_not_fit_are_one_line(lms, cell, hidden, embed, bidirectional, backward, message):
    from rnnkit.compat import make_layer
    from rnnkit.tasks.pretrained import init_encoder

    vocab = Vocabulary.build(["good"])
    rnn = make_layer(cell, embed, hidden, bidirectional=bidirectional)
    with pytest.raises(RnnkitError) as error:
        init_encoder(torch.zeros(len(vocab), embed), rnn, vocab, lms[0], lms[1] if backward else None, cell=cell)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_upper_layers_of_a_bidirectional_encoder_keep_their_start(lms, tmp_path, train_cli):
    from rnnkit.compat import make_layer
    from rnnkit.tasks.pretrained import init_encoder

    vocab = Vocabulary.build(["good"])
    rnn = make_layer("lstm", 6, 6, num_layers=2, bidirectional=True)
    upper = rnn.weight_hh_l1.detach().clone()
    assert init_encoder(torch.zeros(len(vocab), 6), rnn, vocab, lms[0], cell="lstm").endswith("1 of 1 layer(s))")
    assert torch.equal(rnn.weight_hh_l1, upper)
    deep = tmp_path / "deep"  # a 2-layer LM into a 2-layer unidirectional encoder: both layers
    argv = ["lm", "train", "--train", lms[0].parent / "fwd.txt", "--out", deep, "--level", "word", "--hidden", "6"]
    train_cli(*argv, "--layers", "2", "--max-steps", "1", "--batch-size", "2", "--no-progress")
    rnn = make_layer("lstm", 6, 6, num_layers=2)
    assert init_encoder(torch.zeros(len(vocab), 6), rnn, vocab, deep, cell="lstm").endswith("2 of 2 layer(s))")
    from rnnkit.tasks import registry

    torch.testing.assert_close(rnn.weight_hh_l1, registry.load_run(deep).model.layers[1].weight_hh_l0)


def test_classify_and_tag_train_start_from_lm_encoders(lms, tmp_path, cli):
    """As a user runs it; the one-line errors of the options' combinations; nothing written on error."""
    (tmp_path / "train.tsv").write_text("pos\tgood film\nneg\tdull plot\npos\ta good plot\nneg\tcold film\n")
    run = tmp_path / "cls"
    copies = [tmp_path / "fwd", tmp_path / "bwd"]  # deleted after training: the run no longer needs them
    for source, copy in zip(lms, copies, strict=True):
        shutil.copytree(source, copy)
    argv = ["classify", "train", "--train", tmp_path / "train.tsv", "--embed", "12", "--hidden", "6", "--epochs", "1"]
    argv += ["--bidirectional", "--encoder", copies[0], "--encoder-backward", copies[1], "--no-progress"]
    code, _, err = cli(*argv, "--out", run, "--encoder-lr", "0.5")
    assert code == 0 and "encoder from fwd (8 of 9 words, 1 of 1 layer(s)) and bwd" in err, err
    vocab = json.loads((run / "vocab.json").read_text())["tokens"]
    assert vocab[4:] == ["good", "film", "plot", "dull", "a", "cold", "and", "the", "is"]  # the LMs' words after
    for copy in copies:
        shutil.rmtree(copy)
    assert cli("classify", "train", "--out", run, "--resume", "--epochs", "2", "--no-progress")[0] == 0
    code, out, _ = cli("classify", "eval", run, "--data", tmp_path / "train.tsv", "--json")
    assert code == 0 and json.loads(out)["count"] == 4
    argv[argv.index(copies[0])], argv[argv.index(copies[1])] = lms[0], lms[1]
    code, _, err = cli(*argv, "--out", tmp_path / "bad", "--embeddings", lms[0])
    assert code == 2 and "give --embeddings or --encoder, not both" in err and not (tmp_path / "bad").exists()
    (tmp_path / "train.conll").write_text("good B-X\nfilm O\n\ndull O\nplot B-X\n")
    tag = ["tag", "train", "--train", tmp_path / "train.conll", "--embed", "6", "--hidden", "6", "--epochs", "1"]
    tag += ["--encoder", lms[0], "--no-progress", "--char"]
    code, _, err = cli(*tag, "--out", tmp_path / "tag")
    assert code == 0 and "encoder from fwd (8 of 8 words, 1 of 1 layer(s))" in err, err
    code, _, err = cli(*tag, "--out", tmp_path / "window", "--window", "1")
    assert code == 2 and "leave out --window" in err
    code, _, err = cli(*tag, "--out", tmp_path / "ff", "--cell", "none")
    assert code == 2 and "this model has none (--cell none)" in err
    code, _, err = cli(*tag, "--out", tmp_path / "notlm", "--encoder", run)
    assert code == 2 and "is not an rnnkit lm run: give a folder of rnnkit lm train" in err


@pytest.mark.parametrize("task", ["classify", "tag"])
def test_encoder_lr_scales_the_embedding_and_recurrent_steps_only(task):
    """One SGD step: the encoder's parameters move by encoder_lr times what they move at 1; the rest alike."""
    from rnnkit.tasks.classify import ClassifyConfig, SequenceClassifier, make_batch
    from rnnkit.tasks.tag import SequenceTagger, TagConfig, collate
    from rnnkit.train.config import TrainConfig
    from rnnkit.train.optim import make_optimizer, set_lr

    def model(scale):
        torch.manual_seed(0)
        if task == "classify":
            return SequenceClassifier(20, 3, ClassifyConfig(hidden=4, embed=5, mlp=6, encoder_lr=scale))
        return SequenceTagger(20, ["O", "B-X", "I-X"], TagConfig(hidden=4, embed=5, crf=True, encoder_lr=scale))

    def step(scale):
        m = model(scale)
        before = {name: p.detach().clone() for name, p in m.named_parameters()}
        optimizer = make_optimizer(m.param_groups(), TrainConfig(optimizer="sgd", lr=0.5))
        set_lr(optimizer, 0.5)
        if task == "classify":
            batch = make_batch([[4, 5, 6], [7, 8]], [2, 0])
        else:
            batch = collate([[4, 5, 6], [7, 8]], [[0, 1, 2], [1, 0]])
        m.loss(batch).loss.backward()
        optimizer.step()
        return {name: p.detach() - before[name] for name, p in m.named_parameters()}

    full, scaled = step(1.0), step(0.25)
    for name, delta in full.items():
        factor = 0.25 if name.startswith(("embedding.", "rnn.", "encoder.")) else 1.0
        torch.testing.assert_close(scaled[name], factor * delta, rtol=1e-5, atol=1e-7, msg=name)
    assert sum(full[name].abs().sum() for name in full if name.startswith("embedding.")) > 0


def test_lm_finetune_starts_from_the_run_and_trains_on_the_new_text(lms, tmp_path, cli):
    """``rnnkit lm train --finetune RUN``: the new run has RUN's vocabulary and architecture (its own model flags
    replaced) and starts from its weights (one step at learning rate 1e-30 leaves them as they were), then trains on its
    own text and resumes; a run of another task or level is one line, nothing written."""
    (tmp_path / "reviews.txt").write_text("a good plot\nthe dull film is good\n" * 5)
    argv = ["lm", "train", "--train", tmp_path / "reviews.txt", "--level", "word", "--finetune", lms[0]]
    argv += ["--hidden", "9", "--batch-size", "2", "--bptt", "4", "--no-progress"]
    code, _, err = cli(*argv, "--out", tmp_path / "same", "--max-steps", "1", "--lr", "1e-30")
    assert code == 0 and f"starting from {lms[0]}" in err, err
    config = json.loads((tmp_path / "same" / "config.json").read_text())
    assert config["model"]["hidden"] == 6 and config["data"]["finetune"] == str(lms[0])
    assert (tmp_path / "same" / "vocab.json").read_text() == (lms[0] / "vocab.json").read_text()
    source = load_file(str(lms[0] / "checkpoint" / "model.safetensors"))
    start = load_file(str(tmp_path / "same" / "checkpoint" / "model.safetensors"))
    assert source.keys() == start.keys() and all(torch.equal(source[k], start[k]) for k in source)
    code, _, err = cli(*argv, "--out", tmp_path / "tuned", "--max-steps", "3", "--lr", "0.1")
    assert code == 0, err
    tuned = load_file(str(tmp_path / "tuned" / "checkpoint" / "model.safetensors"))
    assert not torch.equal(tuned["decoder.weight"], source["decoder.weight"])
    code, _, err = cli("lm", "train", "--out", tmp_path / "tuned", "--resume", "--max-steps", "5", "--no-progress")
    assert code == 0 and "stopped at step 5" in err and "starting from" not in err, err
    (tmp_path / "c.tsv").write_text("pos\ta good plot\nneg\tthe dull film\n")
    assert cli("classify", "train", "--train", tmp_path / "c.tsv", "--out", tmp_path / "cls", "--max-steps", "1",
               "--no-progress")[0] == 0  # fmt: skip
    for source_run, level, message in (
        (lms[0], "char", "is a word-level LM: pass --level word"),
        (tmp_path / "cls", "word", "is not an rnnkit lm run: give a folder of rnnkit lm train"),
        (tmp_path / "missing", "word", "missing"),
    ):
        code, _, err = cli(*argv[:5], level, "--finetune", source_run, "--out", tmp_path / "bad", "--no-progress")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
