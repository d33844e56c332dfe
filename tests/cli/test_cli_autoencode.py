"""``rnnkit autoencode train|eval|predict``, ``rnnkit embed`` and ``rnnkit search`` end to end on generated
subject-verb-object sentences, where word order carries the meaning that a bag of words loses."""

import io
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit.tasks.autoencode_run import load_run
from rnnkit.tasks.retrieval import cosine

NOUNS = ["dog", "man", "cat", "woman", "horse", "child", "bird", "girl"]
VERBS = ["sees", "bites", "follows", "helps", "pulls", "watches"]
FLAGS = ["--hidden", "64", "--embed", "32", "--batch-size", "16", "--lr", "0.005", "--no-progress", "--dropout", "0"]


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.sample(NOUNS, 2)
        out.append(f"the {a} {rng.choice(VERBS)} the {b}")
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_cli):
    tmp = tmp_path_factory.mktemp("autoencode")
    (tmp / "train.txt").write_text("".join(s + "\n" for s in sentences(600, 1)))
    (tmp / "valid.txt").write_text("".join(s + "\n" for s in sentences(40, 2)))
    argv = ["autoencode", "train", "--train", tmp / "train.txt", "--valid", tmp / "valid.txt", "--out", tmp / "run"]
    train_cli(*argv, *FLAGS, "--epochs", "15")
    return tmp / "run", tmp / "valid.txt"


def test_train_eval_and_reconstruct(trained, cli):
    run, valid = trained
    assert {"config.json", "vocab.json", "best.safetensors"} <= {p.name for p in run.iterdir()}
    code, out, _ = cli("autoencode", "eval", run, "--data", valid, "--json")
    result = json.loads(out)
    assert code == 0 and result["count"] == 40 and result["exact"] > 0.8 and result["bleu"] > 80
    assert {"perplexity", "chrf", "bleu_signature", "tokens"} <= set(result)
    code, out, _ = cli("autoencode", "predict", run, valid, "--beam", "3")
    rebuilt = out.splitlines()
    assert code == 0 and len(rebuilt) == 40
    assert rebuilt == load_run(run).reconstruct(valid.read_text().splitlines(), beam_size=3)


def test_the_code_tells_apart_what_a_bag_of_words_cannot(trained):
    """'the dog bites the man' and 'the man bites the dog' have the same words: a bag of words scores them 1.0."""
    run = load_run(trained[0])
    pairs = [("the dog bites the man", "the man bites the dog"), ("the girl sees the horse", "the horse sees the girl")]
    for a, b in pairs:
        codes = run.embed([a, b, a])
        same, swapped = cosine(codes[:1], codes[2:])[0, 0], cosine(codes[:1], codes[1:2])[0, 0]
        assert same == pytest.approx(1.0, abs=1e-5) and swapped < 0.98, (a, swapped)
    index = [b for _, b in pairs] + [a for a, _ in pairs]
    hits = run.search(index, [a for a, _ in pairs], top=1)
    assert [index[h[0][0]] for h in hits] == [a for a, _ in pairs]  # each finds itself, not its mirror


def test_embed_writes_npy_json_and_json_lines(trained, tmp_path, cli, monkeypatch):
    run, valid = trained
    code, _, err = cli("embed", run, valid, "--out", tmp_path / "codes.npy")
    codes = np.load(tmp_path / "codes.npy", allow_pickle=False)
    assert code == 0 and codes.shape == (40, 64) and codes.dtype == np.float32 and "40 codes of size 64" in err
    assert cli("embed", run, valid, "--out", tmp_path / "codes.json")[0] == 0
    np.testing.assert_allclose(np.array(json.loads((tmp_path / "codes.json").read_text())), codes, rtol=1e-6)
    monkeypatch.setattr(sys, "stdin", io.StringIO("the dog sees the cat\n\n"))
    code, out, _ = cli("embed", run)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and rows[0]["text"] == "the dog sees the cat" and len(rows[0]["vector"]) == 64
    assert rows[1] == {"text": "", "vector": [0.0] * 64}


def test_search_prints_nearest_lines_with_scores(trained, cli, monkeypatch):
    run, valid = trained
    first = valid.read_text().splitlines()[0]
    code, out, _ = cli("search", run, "--index", valid, first, "--top", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0] == first and lines[1].startswith("  1.0000  " + first) and len(lines) == 3
    monkeypatch.setattr(sys, "stdin", io.StringIO(first + "\n"))
    code, out, _ = cli("search", run, "--index", valid, "--json", "--top", "1")
    result = json.loads(out)
    assert code == 0 and result["query"] == first and result["results"][0]["line"] == 1


def test_bad_input_is_one_line(trained, tmp_path, capsys, cli, monkeypatch):
    run, valid = trained
    code, _, err = cli("search", run, "--index", valid, "x", "--top", "0")
    assert code == 2 and "--top must be at least 1, got 0" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = cli("search", run, "--index", valid)
    assert code == 2 and "no query" in err
    code, _, err = cli("embed", run, valid, "--out", tmp_path / "codes.txt")
    assert code == 2 and "should end in .npy or .json" in err
    (tmp_path / "empty.txt").write_text("\n\n")
    code, _, err = cli("autoencode", "train", "--train", tmp_path / "empty.txt", "--out", tmp_path / "r")
    assert code == 2 and "empty.txt is empty" in err
    with pytest.raises(SystemExit):
        cli("search", run, "--index", valid, "x", "--bogus")
    assert "unrecognized arguments" in capsys.readouterr().err


def test_embed_refuses_a_run_of_another_task(tmp_path, cli):
    folder = Path(tmp_path / "lm")
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"task": "lm", "data": {}, "model": {}, "train": {}}))
    code, _, err = cli("embed", folder, "-")
    assert code == 2 and "is a lm run: embed and search need an autoencode run" in err


def paragraphs(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [sentences(rng.randint(1, 3), rng.randrange(10**6)) for _ in range(n)]


def test_hierarchical_paragraphs_end_to_end(tmp_path, cli, monkeypatch):
    """--hierarchical reads paragraphs separated by blank lines; embed, search and predict work on paragraphs."""
    write = lambda path, ps: path.write_text("".join("\n".join(p) + "\n\n" for p in ps))  # noqa: E731
    write(tmp_path / "train.txt", paragraphs(200, 1))
    valid = paragraphs(12, 2)
    write(tmp_path / "valid.txt", valid)
    argv = ["autoencode", "train", "--train", tmp_path / "train.txt", "--valid", tmp_path / "valid.txt"]
    hier = ["--hierarchical", "--word-dropout", "0", *FLAGS, "--lr", "0.01", "--epochs", "6"]
    code, _, err = cli(*argv, "--out", tmp_path / "run", *hier)
    assert code == 0 and "hierarchical paragraph autoencoder" in err and "200 paragraphs" in err
    run = tmp_path / "run"
    # learning to write paragraphs back takes far longer (tests/tasks/test_hierarchical.py): here, the plumbing
    curve = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    perplexities = [r["valid_perplexity"] for r in curve if "valid_perplexity" in r]
    assert len(perplexities) == 6 and perplexities[-1] < perplexities[0]
    code, out, _ = cli("autoencode", "eval", run, "--data", tmp_path / "valid.txt", "--json")
    result = json.loads(out)
    assert code == 0 and result["count"] == 12 and {"bleu", "chrf", "exact", "perplexity"} <= set(result)

    code, out, _ = cli("autoencode", "predict", run, tmp_path / "valid.txt")
    rebuilt = out.split("\n\n")[:-1]
    assert code == 0 and len(rebuilt) == 12 and all(r.strip() for r in rebuilt)
    code, _, _ = cli("embed", run, tmp_path / "valid.txt", "--out", tmp_path / "codes.npy")
    assert code == 0 and np.load(tmp_path / "codes.npy").shape == (12, 64)

    two = next(p for p in valid if len(p) >= 2)
    swapped = "\n".join([two[1], two[0], *two[2:]])
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(two) + "\n\n" + swapped + "\n"))
    code, out, _ = cli("search", run, "--index", tmp_path / "valid.txt", "--json", "--top", "1")
    hits = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(hits) == 2 and hits[0]["results"][0]["text"] == "\n".join(two)
    codes = load_run(run).embed(["\n".join(two), swapped])
    assert cosine(codes[:1], codes[1:])[0, 0] < 0.99999  # sentence order is in the code (a bag of sentences: 1.0)
