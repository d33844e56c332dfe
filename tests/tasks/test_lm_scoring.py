"""Scoring sentences with a word-level LM trained on a corpus where "pear salad" is common and "pair salad"
never occurs (but "pair" does, elsewhere)."""

import json
import math
import random
import warnings

import pytest

import rnnkit.cli
from rnnkit.tasks.lm_run import load_run

OTHER = [
    "a pair of shoes is on the floor",
    "the man ate an apple",
    "she made a fruit salad",
    "we need a pair of hands",
    "the pear tree is old",
]


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it


def test_score_ranks_the_likely_sentence_first(tmp_path, capsys):
    rng = random.Random(0)
    lines = []
    for _ in range(60):
        lines += ["the apple and pear salad", rng.choice(OTHER)]
    corpus = tmp_path / "fruit.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert "pair salad" not in corpus.read_text()
    out = tmp_path / "run"
    argv = ["lm", "train", "--train", str(corpus), "--level", "word", "--out", str(out), "--no-progress"]
    argv += ["--hidden", "16", "--layers", "1", "--batch-size", "4", "--bptt", "8", "--epochs", "3", "--lr", "0.02"]
    assert rnnkit.cli.main(argv) == 0
    vocab = json.loads((out / "vocab.json").read_text())["tokens"]
    assert "pair" in vocab and "pear" in vocab  # not a contest against <unk>
    capsys.readouterr()

    sentences = ["the apple and pear salad", "the apple and pair salad"]
    assert rnnkit.cli.main(["lm", "score", str(out), *sentences, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in results] == sentences  # in the order given
    pear, pair = results
    assert (pear["rank"], pair["rank"]) == (1, 2)
    assert pear["logprob"] > pair["logprob"] + 1.0
    for r in results:
        assert set(r) == {"text", "logprob", "perplexity", "tokens", "rank"}
        assert r["tokens"] == 6  # five words and the closing <eos>
        assert r["perplexity"] == pytest.approx(math.exp(-r["logprob"] / r["tokens"]), rel=1e-9)
    assert pear["perplexity"] < 10  # learned: 27 tokens in the vocabulary

    library = load_run(out).score(sentences)
    assert [r["logprob"] for r in library] == pytest.approx([r["logprob"] for r in results], rel=1e-6)
