"""--char-lm / --char-lm-backward: frozen character LMs' states as word features (contextual string embeddings)."""

import json
import random
import shutil

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.data.batching import pad_unique
from rnnkit.data.vocab import Vocabulary
from rnnkit.tasks.string_features import CharLMs, StringFeatures, sentence_strings

LINES = ["the good film was dull", "a plot and a film", "dull plots are good films"] * 8


@pytest.fixture(scope="module")
def char_lms(tmp_path_factory, train_cli):
    """A forward character LSTM LM (dropout 0.5, so that dropout would show) and a backward 2-layer GRU one, of
    reversed lines, on tiny lower-case text; and a word-level LM, to be refused."""
    folder = tmp_path_factory.mktemp("char_lms")
    (folder / "fwd.txt").write_text("\n".join(LINES) + "\n")
    (folder / "bwd.txt").write_text("\n".join(line[::-1] for line in LINES) + "\n")
    small = ["--max-steps", "3", "--batch-size", "4", "--bptt", "20", "--embed", "5", "--no-progress"]
    train_cli("lm", "train", "--train", folder / "fwd.txt", "--out", folder / "fwd", "--level", "char", "--layers",
              "1", "--hidden", "7", "--dropout", "0.5", *small)  # fmt: skip
    train_cli("lm", "train", "--train", folder / "bwd.txt", "--out", folder / "bwd", "--level", "char", "--layers",
              "2", "--hidden", "6", "--cell", "gru", *small)  # fmt: skip
    train_cli("lm", "train", "--train", folder / "fwd.txt", "--out", folder / "words", "--level", "word", *small)
    return folder


def test_sentence_strings_are_the_sentences_written_out():
    """Random sentences of random words: each row is the boundary and the words joined by spaces (reversed whole
    for the backward row), and ``last``/``first`` point at each word's last/first character."""
    rng = random.Random(0)
    for _ in range(20):
        sentences = [[[rng.randint(3, 9) for _ in range(rng.randint(1, 4))] for _ in range(rng.randint(1, 5))]
                     for _ in range(rng.randint(1, 4))]  # fmt: skip
        words = [w for s in sentences for w in s]
        C = max(map(len, words))
        chars = torch.tensor([w + [0] * (C - len(w)) for w in words])
        lengths = torch.tensor([len(s) for s in sentences])
        fwd, bwd, last, first = sentence_strings(
            chars, torch.tensor([len(w) for w in words]), lengths, space=1, boundary=2
        )
        n = 0
        for b, sentence in enumerate(sentences):
            text = [c for i, w in enumerate(sentence) for c in (([1] if i else []) + w)]
            assert fwd[b].tolist() == [2, *text] + [0] * (fwd.shape[1] - 1 - len(text))
            assert bwd[b].tolist() == [2, *text[::-1]] + [0] * (bwd.shape[1] - 1 - len(text))
            for w in sentence:
                assert fwd[b, last[n]] == w[-1] and bwd[b, first[n]] == w[0]
                assert bwd[b, first[n] - len(w) + 1 : first[n] + 1].tolist() == w[::-1]
                n += 1


def _lm_outputs(run, text):
    """The LM's top layer over "\\n" + text, read as its own vocabulary's ids, in eval mode: (len(text) + 1, H)."""
    ids = torch.tensor([run.vocab.index(c) for c in "\n" + text]).unsqueeze(1)
    run.model.eval()
    h = run.model.embedding(ids)
    for layer in run.model.layers:
        h, _ = layer(h)
    return h.squeeze(1)


def test_each_word_reads_what_its_lms_read_at_its_ends(char_lms):
    """Each sentence of a padded batch, its words given once each (pad_unique) in characters of the task's own
    vocabulary (other ids, capitals the LMs never saw): word i's features are the forward LM's output after its
    last character and the backward LM's after its first, of that sentence alone; zeros at padding; in training
    mode too (no dropout: the forward LM was trained with 0.5)."""
    from rnnkit.tasks import registry

    lms = CharLMs.from_runs(char_lms / "fwd", char_lms / "bwd")
    chars = Vocabulary.build("zyxwvutsrqponmlkjihgfedcbaGF")  # another order than the LMs'; "G", "F" capitals
    features = StringFeatures(lms, chars.tokens)
    said = features.copy_from(char_lms / "fwd", char_lms / "bwd")
    assert said == "frozen character LM features from fwd (forward, 7 units) and bwd (backward, 6 units)"
    assert features.output_size == 13
    sentences = [["Good", "film"], ["a", "dull", "plot", "and", "a", "Film"], ["plots"]]
    ids, lengths, index = pad_unique([chars.encode(w) for s in sentences for w in s], 0)
    features.train()
    out = features(ids, lengths, torch.tensor([len(s) for s in sentences]), index, width=7)
    assert out.shape == (3, 7, 13)
    fwd, bwd = registry.load_run(char_lms / "fwd"), registry.load_run(char_lms / "bwd")
    with torch.no_grad():
        for b, sentence in enumerate(sentences):
            text = " ".join(sentence).lower()
            forward, backward = _lm_outputs(fwd, text), _lm_outputs(bwd, text[::-1])
            start = 0
            for i, word in enumerate(sentence):
                end = start + len(word)  # word i is text[start:end]; column = index + 1 (the boundary)
                torch.testing.assert_close(out[b, i, :7], forward[end], rtol=0, atol=1e-6)
                torch.testing.assert_close(out[b, i, 7:], backward[len(text) - start], rtol=0, atol=1e-6)
                start = end + 1
            assert not out[b, len(sentence) :].any()
    assert not any(p.requires_grad for p in features.parameters())


def test_remembered_sentences_are_read_not_computed(char_lms, monkeypatch):
    """After remember(), a batch of remembered sentences, grouped and padded otherwise, reads the same features
    without running the LMs; a batch with a sentence not remembered computes them all."""
    chars = Vocabulary.build("abcdefghijklmnopqrstuvwxyz")
    features = StringFeatures(CharLMs.from_runs(char_lms / "fwd", char_lms / "bwd"), chars.tokens)
    features.copy_from(char_lms / "fwd", char_lms / "bwd")
    sentences = [["good", "film"], ["a", "dull", "plot", "and", "a", "film"], ["plots"], ["the", "film"]]

    def batch(group):
        ids, lengths, index = pad_unique([chars.encode(w) for s in group for w in s], 0)
        return ids, lengths, torch.tensor([len(s) for s in group]), index

    alone = [features(*batch([s]))[0] for s in sentences]
    said = features.remember([batch(sentences[:2]), batch(sentences[2:3])])
    assert said == "character LM features of 3 sentences kept in memory (0 MiB)" and not features.memory
    regrouped = batch([sentences[2], sentences[0]])
    out = features(*regrouped, width=4)  # computes the three, then reads two of them
    assert len(features.memory) == 3 and out.shape == (2, 4, 13) and not out[1, 2:].any()
    torch.testing.assert_close(out[0, :1], alone[2], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[1, :2], alone[0], rtol=0, atol=1e-6)

    def no_lm(lm, strings):
        raise RuntimeError("the LM ran")

    monkeypatch.setattr(StringFeatures, "_top", staticmethod(no_lm))
    assert torch.equal(features(*regrouped, width=4), out)
    with pytest.raises(RuntimeError, match="the LM ran"):  # "the film" was never remembered: the LMs run
        features(*batch([sentences[0], sentences[3]]))
    assert features.remember([batch(sentences)], limit=10).startswith("character LM features of 11 words computed")


def test_resume_with_char_lms_is_exact(char_lms, tmp_path, cli):
    (tmp_path / "train.conll").write_text("Good B-X\nfilm O\n\ndull O\nplot B-X\n\na O\ngood B-X\nfilm O\n\nplots O\n")
    base = ["tag", "train", "--train", tmp_path / "train.conll", "--valid", tmp_path / "train.conll", "--embed", "4"]
    base += ["--hidden", "5", "--no-progress", "--batch-size", "2", "--char-lm", char_lms / "fwd", "--dropout", "0.3"]
    assert cli(*base, "--epochs", "2", "--out", tmp_path / "whole")[0] == 0
    code, _, err = cli(*base, "--epochs", "1", "--out", tmp_path / "parts")
    assert code == 0 and "features of 8 sentences kept in memory" in err, err  # 4 to train on, 4 to validate
    code, _, err = cli("tag", "train", "--out", tmp_path / "parts", "--resume", "--epochs", "2", "--no-progress")
    assert code == 0 and "finished (done) after 4 steps" in err, err
    whole, parts = (load_file(str(tmp_path / r / "checkpoint" / "model.safetensors")) for r in ("whole", "parts"))
    assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole)


def test_tag_train_with_char_lms_as_a_user_runs_it(char_lms, tmp_path, cli):
    """Training, resuming and evaluating a tagger with --char-lm/--char-lm-backward; the LMs' folders needed at the
    start only; their weights never trained; the one-line errors, with nothing written."""
    copies = [tmp_path / "fwd", tmp_path / "bwd"]
    for name, copy in zip(("fwd", "bwd"), copies, strict=True):
        shutil.copytree(char_lms / name, copy)
    (tmp_path / "train.conll").write_text("Good B-X\nfilm O\n\ndull O\nplot B-X\n\na O\ngood B-X\nfilm O\n")
    run = tmp_path / "tag"
    argv = ["tag", "train", "--train", tmp_path / "train.conll", "--valid", tmp_path / "train.conll", "--embed", "4"]
    argv += ["--hidden", "5", "--crf", "--bidirectional", "--no-progress", "--lr", "0.5", "--batch-size", "1"]
    code, _, err = cli(*argv, "--out", run, "--epochs", "1", "--char-lm", copies[0], "--char-lm-backward", copies[1])
    assert code == 0 and "frozen character LM features from fwd (forward, 7 units) and bwd" in err, err
    assert (run / "char_lms.json").is_file() and (run / "chars.json").is_file()
    chars = Vocabulary.load(run / "chars.json").tokens  # the training text's characters, then those only the LMs
    trained = set("Goodfilmdullplotagood")  # know, so that "s" (as in "plots") reaches them as itself, not <unk>
    assert len(trained) == 12 and set(chars[4:16]) == trained and set(chars[16:]) == set("ehnrsw")
    features = StringFeatures(CharLMs.in_run(run), chars)
    assert features.map_forward[chars.index("s")] == Vocabulary.load(copies[0] / "vocab.json").index("s")
    lm_weights = load_file(str(copies[0] / "best.safetensors"))
    for copy in copies:
        shutil.rmtree(copy)
    code, _, err = cli("tag", "train", "--out", run, "--resume", "--epochs", "3", "--no-progress")
    assert code == 0 and "finished (done) after 9 steps" in err, err
    weights = load_file(str(run / "checkpoint" / "model.safetensors"))
    for name, value in lm_weights.items():  # 9 steps at lr 0.5 later: the LM's weights as they were
        assert torch.equal(weights[f"lm_features.lms.forward_lm.{name}"], value)
    code, out, _ = cli("tag", "eval", run, "--data", tmp_path / "train.conll", "--json")
    assert code == 0 and json.loads(out)["count"] == 7
    (tmp_path / "in.txt").write_text("good film\nDULL plot\n")
    code, out, _ = cli("tag", "predict", run, tmp_path / "in.txt", "--json")
    tokens = [json.loads(line)["tokens"] for line in out.splitlines()]
    assert code == 0 and tokens == [["good", "film"], ["DULL", "plot"]]
    saved = (run / "char_lms.json").read_text()
    for text, message in (("{not json", "char_lms.json"), ('{"format": "x"}', "not an rnnkit char_lms.json")):
        (run / "char_lms.json").write_text(text)  # a damaged run file: one line naming it
        code, _, err = cli("tag", "eval", run, "--data", tmp_path / "train.conll")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    (run / "char_lms.json").write_text(saved)
    for source, message in (
        (char_lms / "words", "is a word-level LM: give a character LM (rnnkit lm train --level char)"),
        (run, "is not an rnnkit lm run: give a folder of rnnkit lm train --level char"),
        (tmp_path / "missing", "missing"),
    ):
        code, _, err = cli(*argv, "--out", tmp_path / "bad", "--char-lm", source)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()


def test_classify_train_with_a_char_lm_as_a_user_runs_it(char_lms, tmp_path, cli):
    """The classifier reads the features too (without --char): train, resume, eval, predict."""
    (tmp_path / "train.tsv").write_text("pos\tgood film\nneg\tdull plot\npos\ta good plot\nneg\tDull film\n")
    run = tmp_path / "cls"
    argv = ["classify", "train", "--train", tmp_path / "train.tsv", "--embed", "4", "--hidden", "5", "--no-progress"]
    code, _, err = cli(*argv, "--out", run, "--epochs", "1", "--char-lm", char_lms / "bwd", "--lr", "0.5")
    assert code == 0 and "frozen character LM features from bwd (forward, 6 units)" in err, err
    assert cli("classify", "train", "--out", run, "--resume", "--epochs", "2", "--no-progress")[0] == 0
    weights = load_file(str(run / "checkpoint" / "model.safetensors"))
    lm = load_file(str(char_lms / "bwd" / "best.safetensors"))
    assert all(torch.equal(weights[f"lm_features.lms.forward_lm.{name}"], value) for name, value in lm.items())
    code, out, _ = cli("classify", "eval", run, "--data", tmp_path / "train.tsv", "--json")
    assert code == 0 and json.loads(out)["count"] == 4
    (tmp_path / "in.txt").write_text("a DULL film\n")
    code, out, _ = cli("classify", "predict", run, tmp_path / "in.txt", "--json")
    assert code == 0 and json.loads(out)["label"] in ("pos", "neg")
