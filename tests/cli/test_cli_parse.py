"""``rnnkit parse train|eval|predict`` end to end on a generated treebank (two sentence shapes whose trees
differ), constrained decoding, EVALB scores, and bad input."""

import json
import random
from pathlib import Path

import pytest

from rnnkit.data.trees import linearize, parse_tree, repairs

NOUNS = ["dog", "cat", "man", "bird", "girl"]
VERBS = ["sees", "likes", "follows"]
FLAGS = ["--hidden", "48", "--embed", "24", "--batch-size", "16", "--lr", "0.01", "--no-progress", "--dropout", "0"]


def tree(rng: random.Random) -> str:
    a, b = rng.sample(NOUNS, 2)
    verb = rng.choice(VERBS)
    if rng.random() < 0.5:  # transitive, with a final period
        return f"(S (NP (DT the) (NN {a})) (VP (VBZ {verb}) (NP (DT the) (NN {b}))) (. .))"
    return f"(S (NP (DT the) (NN {a})) (VP (VBZ {verb}) (PP (IN with) (NP (DT the) (NN {b})))))"


def write(prefix: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    trees = [parse_tree(tree(rng)) for _ in range(n)]
    prefix.with_suffix(".trees").write_text("".join(f"{t}\n" for t in trees))
    prefix.with_suffix(".words").write_text("".join(" ".join(w for _, _, w in _leaves(t)) + "\n" for t in trees))
    prefix.with_suffix(".linear").write_text("".join(" ".join(linearize(t)) + "\n" for t in trees))
    return prefix


def _leaves(t):
    from rnnkit.data.trees import walk

    return [step for step in walk(t) if step[0] == "leaf"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_cli):
    tmp = tmp_path_factory.mktemp("parse")
    train, valid = write(tmp / "train", 300, 1), write(tmp / "valid", 30, 2)
    argv = ["parse", "train", "--train", train, "--valid", valid, "--out", tmp / "run", *FLAGS, "--epochs", "12"]
    train_cli(*argv)
    return tmp / "run", valid


def test_train_eval_predict_end_to_end(trained, tmp_path, cli):
    run, valid = trained
    code, out, _ = cli("parse", "eval", run, "--data", valid, "--json")
    result = json.loads(out)
    assert code == 0 and result["sentences"] == 30 and result["repaired"] == 0
    assert result["f1"] > 95 and {"precision", "recall", "exact_match", "sentences_per_second"} <= set(result)
    code, out, _ = cli("parse", "eval", run, "--data", valid, "--beam", "1")
    assert code == 0 and "labelled precision" in out and "F1" in out

    (tmp_path / "in.txt").write_text("the girl follows the dog .\n\nthe cat likes with the bird\n")
    code, out, _ = cli("parse", "predict", run, tmp_path / "in.txt")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and lines[1] == ""
    first = parse_tree(lines[0])
    assert [w for _, _, w in _leaves(first)] == ["the", "girl", "follows", "the", "dog", "."]
    assert lines[0] == "(S (NP (XX the) (XX girl)) (VP (XX follows) (NP (XX the) (XX dog))) (XX .))"
    code, out, _ = cli("parse", "predict", run, tmp_path / "in.txt", "--json", "--beam", "2")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and rows[2]["words"] == ["the", "cat", "likes", "with", "the", "bird"]
    assert repairs(rows[2]["linear"], 6) == []  # constrained: always one tree with one XX per word


def test_unconstrained_decoding_is_repaired_and_counted(trained, cli):
    run, valid = trained
    code, out, _ = cli("parse", "eval", run, "--data", valid, "--json", "--no-constraint")
    result = json.loads(out)
    assert code == 0 and result["constrained"] is False and 0 <= result["repaired"] <= 30


def test_first_n_trains_on_a_prefix_and_missing_files_are_named(trained, tmp_path, cli):
    _, valid = trained
    train = write(tmp_path / "train", 40, 3)
    code, _, err = cli("parse", "train", "--train", train, "--first", "10", "--out", tmp_path / "r", *FLAGS,
                        "--epochs", "1")  # fmt: skip
    assert code == 0 and "10 sentences" in err
    code, _, err = cli("parse", "train", "--train", tmp_path / "nothing", "--out", tmp_path / "r2")
    assert code == 2 and "nothing.words" in err and "treebank_sample/train" in err
    code, _, err = cli("parse", "eval", tmp_path / "r", "--data", valid, "--beam", "0")
    assert code == 2 and "--beam must be at least 1, got 0" in err


def test_a_malformed_training_tree_is_named_by_file_and_line(tmp_path, cli):
    train = write(tmp_path / "train", 5, 4)
    lines = train.with_suffix(".linear").read_text().splitlines()
    lines[3] = lines[3].replace(")VP", ")NP", 1)
    train.with_suffix(".linear").write_text("\n".join(lines) + "\n")
    code, _, err = cli("parse", "train", "--train", train, "--out", tmp_path / "r", *FLAGS)
    assert code == 2 and "train.linear:4: not a tree for the" in err and err.count("\n") == 1
