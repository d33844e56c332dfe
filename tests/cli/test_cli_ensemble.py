"""``rnnkit ensemble RUN RUN2 ... --out DIR``: an ensemble kept as one run folder answers exactly as ``--ensemble``
does, stays whole without the runs it was made from, flattens ensembles of ensembles, and never loses data."""

import json
import random
import shutil

import pytest

from rnnkit.tasks import registry

WORDS = ["the", "a", "movie", "film", "plot", "was", "very", "story"]
CITIES = ["boston", "denver", "new york", "dallas"]


def texts(n: int, seed: int) -> str:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
        good = rng.random() < 0.5
        rows.append(f"{'pos' if good else 'neg'}\t{' '.join(words + ['good'] * good)}\n")
    return "".join(rows)


def flights(n: int, seed: int) -> str:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.sample(CITIES, 2)
        tokens, tags = ["fly", "from"], ["O", "O"]
        for word, kind in ((a, "from"), ("to", None), (b, "to")):
            parts = word.split()
            tokens += parts
            tags += ["O"] if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(parts) - 1)
        rows.append(json.dumps({"tokens": tokens, "tags": tags}) + "\n")
    return "".join(rows)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_cli):
    """Three taggers (the third with characters) and one never validated, two classifiers (the second with
    characters), one LM."""
    tmp = tmp_path_factory.mktemp("ensemble")
    (tmp / "tag.jsonl").write_text(flights(40, 1))
    (tmp / "tag-valid.jsonl").write_text(flights(12, 2))
    (tmp / "cls.tsv").write_text(texts(40, 1))
    (tmp / "cls-valid.tsv").write_text(texts(12, 2))
    (tmp / "lm.txt").write_text("the movie was good\n" * 20)
    small = ["--hidden", "8", "--embed", "6", "--epochs", "4", "--lr", "0.1", "--no-progress"]
    for i, extra in enumerate([[], ["--seed", "1"], ["--seed", "2", "--char"]]):
        train_cli("tag", "train", "--train", tmp / "tag.jsonl", "--valid", tmp / "tag-valid.jsonl", "--crf",
                  "--out", tmp / f"tag{i}", *small, *extra)  # fmt: skip
    train_cli("tag", "train", "--train", tmp / "tag.jsonl", "--valid", tmp / "tag-valid.jsonl", "--crf",
              "--out", tmp / "unvalidated", *small, "--batch-size", "4", "--max-steps", "3")  # fmt: skip
    for i, extra in enumerate([[], ["--seed", "1", "--char"]]):
        train_cli("classify", "train", "--train", tmp / "cls.tsv", "--valid", tmp / "cls-valid.tsv",
                  "--out", tmp / f"cls{i}", *small, *extra)  # fmt: skip
    train_cli("lm", "train", "--train", tmp / "lm.txt", "--level", "word", "--out", tmp / "lm", "--max-steps", "2",
              "--hidden", "8", "--no-progress")  # fmt: skip
    return tmp


@pytest.mark.parametrize(("task", "data", "text"), [("tag", "tag-valid.jsonl", "fly from boston to new york"),
                                                    ("classify", "cls-valid.tsv", "the movie was good")])  # fmt: skip
def test_an_ensemble_folder_answers_as_ensemble_does_without_the_runs_it_was_made_from(
    task, data, text, trained, tmp_path, cli
):
    prefix = "tag" if task == "tag" else "cls"
    copies = [shutil.copytree(trained / f"{prefix}{i}", tmp_path / f"seed{i}" / "run") for i in (0, 1)]
    (tmp_path / "in.txt").write_text(text + "\n")
    valid = trained / data
    expected = cli(task, "eval", *copies[:1], "--ensemble", copies[1], "--data", valid, "--json")
    predicted = cli(task, "predict", copies[0], tmp_path / "in.txt", "--ensemble", copies[1], "--json")
    code, out, err = cli("ensemble", *copies, "--out", tmp_path / "both")
    assert code == 0 and out == "" and err.startswith(f"wrote {tmp_path / 'both'}: an ensemble of 2 {task} runs (run, ")
    for copy in copies:
        shutil.rmtree(copy.parent)  # the folder holds its own copies
    got = cli(task, "eval", tmp_path / "both", "--data", valid, "--json")
    assert got[0] == 0 and json.loads(got[1]) == json.loads(expected[1])
    assert cli(task, "predict", tmp_path / "both", tmp_path / "in.txt", "--json")[1] == predicted[1]
    assert predicted[0] == 0 and ("B-from" in predicted[1] if task == "tag" else '"label": "pos"' in predicted[1])
    meta = json.loads((tmp_path / "both" / "ensemble.json").read_text())
    assert meta["task"] == task and meta["members"] == ["members/run", "members/run-2"]
    assert not (tmp_path / "both" / "members" / "run" / "checkpoint").exists()  # no optimizer state
    run = registry.load_run(tmp_path / "both")  # what serve and export open
    assert registry.task_of(tmp_path / "both").name == task and len(run.members) == 2


def test_ensembles_of_ensembles_are_flat_and_eval_ensemble_takes_folders(trained, tmp_path, cli):
    t0, t1, t2 = (trained / f"tag{i}" for i in range(3))
    valid = trained / "tag-valid.jsonl"
    assert cli("ensemble", t0, t1, "--out", tmp_path / "two")[0] == 0
    assert cli("ensemble", tmp_path / "two", t2, "--out", tmp_path / "three")[0] == 0
    meta = json.loads((tmp_path / "three" / "ensemble.json").read_text())
    assert meta["members"] == ["members/tag0", "members/tag1", "members/tag2"]
    assert meta["from"] == [str(tmp_path / "two"), str(t2)]
    expected = json.loads(cli("tag", "eval", t0, "--ensemble", t1, t2, "--data", valid, "--json")[1])
    assert json.loads(cli("tag", "eval", tmp_path / "three", "--data", valid, "--json")[1]) == expected
    assert json.loads(cli("tag", "eval", tmp_path / "two", "--ensemble", t2, "--data", valid, "--json")[1]) == expected
    alone = json.loads(cli("tag", "eval", t0, "--data", valid, "--json")[1])
    assert alone["loss"] != expected["loss"]


def test_bad_ensembles_are_one_line_and_nothing_is_lost(trained, tmp_path, cli):
    t0, t1, c0, lm = trained / "tag0", trained / "tag1", trained / "cls0", trained / "lm"
    out = tmp_path / "out"
    for argv, message in (
        ([t0, c0], f"rnnkit: error: rnnkit ensemble: {c0} is a classify run, not a tag run like {t0}"),
        ([lm, t0], f"rnnkit: error: rnnkit ensemble keeps taggers and classifiers; {lm} is a lm run"),
        ([t0], "rnnkit: error: an ensemble needs two runs or more"),
        ([t0, t1, t0], f"rnnkit: error: {t0} is given twice"),
        ([t0, tmp_path / "nope"], f"rnnkit: error: {tmp_path / 'nope'}: no such run folder"),
    ):
        code, _, err = cli("ensemble", *argv, "--out", out)
        assert code == 2 and err.startswith(message) and len(err.splitlines()) == 1, err
        assert not out.exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    code, _, err = cli("ensemble", t0, t1, "--out", tmp_path / "mine", "--force")
    assert code == 2 and "is not an empty folder or an ensemble (it holds notes.txt)" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    code, _, err = cli("ensemble", t0, t1, "--out", t1, "--force")  # a run is not an ensemble: never replaced
    assert code == 2 and "is not an empty folder or an ensemble" in err and (t1 / "best.safetensors").is_file()

    assert cli("ensemble", t0, t1, "--out", out)[0] == 0
    code, _, err = cli("ensemble", t0, trained / "tag2", "--out", out)
    assert code == 2 and "holds another ensemble: replace it with --force" in err
    assert cli("ensemble", t0, trained / "tag2", "--out", out, "--force")[0] == 0
    assert json.loads((out / "ensemble.json").read_text())["members"] == ["members/tag0", "members/tag2"]
    code, _, err = cli("tag", "train", "--train", trained / "tag.jsonl", "--out", out, "--force", "--no-progress")
    assert code == 2 and "is not an empty folder or an rnnkit run" in err and (out / "ensemble.json").is_file()
    code, _, err = cli("classify", "eval", out, "--data", trained / "cls-valid.tsv")
    assert code == 2 and err == f"rnnkit: error: {out} is an ensemble of tag runs, not of classify runs: use " \
        f"rnnkit tag eval {out}\n"  # fmt: skip

    shutil.rmtree(out / "members" / "tag2")
    code, _, err = cli("tag", "eval", out, "--data", trained / "tag-valid.jsonl")
    assert code == 2 and err == f"rnnkit: error: {out}: the ensemble's run members/tag2 is missing: make the " \
        "ensemble again\n"  # fmt: skip
    (out / "ensemble.json").write_text('{"format": "rnnkit-ensemble", "members": ["../../tag0", "x"]}')
    code, _, err = cli("tag", "eval", out, "--data", trained / "tag-valid.jsonl")
    assert code == 2 and "is not an rnnkit ensemble file: make the ensemble again with rnnkit ensemble" in err


def test_a_run_that_never_validated_joins_with_its_last_checkpoint(trained, tmp_path, cli):
    t0, last = trained / "tag0", trained / "unvalidated"
    assert not (last / "best.safetensors").exists()
    assert cli("ensemble", t0, last, "--out", tmp_path / "e")[0] == 0
    member = tmp_path / "e" / "members" / "unvalidated"
    assert sorted(p.name for p in (member / "checkpoint").iterdir()) == [
        "model.safetensors", "trainer.json", "trainer.safetensors"
    ]  # fmt: skip
    valid = trained / "tag-valid.jsonl"
    expected = json.loads(cli("tag", "eval", t0, "--ensemble", last, "--data", valid, "--json")[1])
    assert json.loads(cli("tag", "eval", tmp_path / "e", "--data", valid, "--json")[1]) == expected
