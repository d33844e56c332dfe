"""``rnnkit tag train|eval|predict`` end to end on tiny generated CoNLL, ATIS and JSON lines data; resume;
seqeval against conlleval worked by hand; bad input; and the tutorials' ATIS example on the real data."""

import io
import json
import random
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnkit.cli
from rnnkit.data.formats import read_atis, read_conll
from rnnkit.tasks.tag import tagging_scores

FLAGS = ["--hidden", "16", "--embed", "12", "--batch-size", "8", "--lr", "0.02", "--no-progress"]
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CITIES = ["boston", "denver", "new york", "san francisco", "dallas"]
DAYS = ["monday", "friday"]
TEMPLATES = [  # (intent, words: a slot is "{type}")
    ("flight", "i want to fly from {from} to {to} on {day}"),
    ("flight", "show me flights from {from} to {to}"),
    ("fare", "how much is a ticket from {from} to {to}"),
    ("fare", "fares to {to} from {from} on {day}"),
]


def flights(n: int, seed: int) -> list[tuple[list[str], list[str], str]]:
    """Generated ATIS-like sentences: (tokens, BIO tags, intent)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        intent, template = rng.choice(TEMPLATES)
        tokens, tags = [], []
        for word in template.split():
            if word.startswith("{"):
                kind = word[1:-1]
                value = rng.choice(DAYS if kind == "day" else CITIES).split()
                tokens += value
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(value) - 1)
            else:
                tokens.append(word)
                tags.append("O")
        out.append((tokens, tags, intent))
    return out


def write(kind: str, path: Path, rows) -> Path:
    """Write ``rows`` as a CoNLL file (token POS tag), an ATIS folder or a JSON lines file."""
    if kind == "conll":
        path.write_text("".join("".join(f"{w} X {t}\n" for w, t in zip(*row[:2], strict=True)) + "\n" for row in rows))
    elif kind == "atis":
        path.mkdir()
        (path / "seq.in").write_text("".join(" ".join(r[0]) + "\n" for r in rows))
        (path / "seq.out").write_text("".join(" ".join(r[1]) + "\n" for r in rows))
        (path / "label").write_text("".join(r[2] + "\n" for r in rows))
    else:
        path.write_text("".join(json.dumps({"tokens": r[0], "tags": r[1], "intent": r[2]}) + "\n" for r in rows))
    return path


SUFFIX = {"conll": ".txt", "atis": "", "jsonl": ".jsonl"}


@pytest.fixture(scope="module", params=["conll", "atis", "jsonl"])
def trained(request, tmp_path_factory):
    """A run per format (ATIS and JSON lines with an intent head): (format, run folder, valid data)."""
    kind, tmp = request.param, tmp_path_factory.mktemp(request.param)
    train = write(kind, tmp / f"train{SUFFIX[kind]}", flights(120, 1))
    valid = write(kind, tmp / f"valid{SUFFIX[kind]}", flights(30, 2))
    model = {"conll": ["--cell", "gru", "--window", "1"], "atis": ["--bidirectional", "--crf", "--intent"]}
    model["jsonl"] = ["--cell", "lstm", "--bidirectional", "--char", "--intent", "--pool", "last"]
    argv = ["tag", "train", "--train", train, "--valid", valid, "--out", tmp / "run", *FLAGS, "--epochs", "4"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert rnnkit.cli.main([str(a) for a in [*argv, *model[kind]]]) == 0
    finally:
        torch.set_num_threads(threads)
    return kind, tmp / "run", valid


def test_train_eval_predict_end_to_end(trained, tmp_path, cli):
    kind, run, valid = trained
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "vocab.json", "tags.json", "best.safetensors", "checkpoint", "metrics.jsonl"} <= names
    assert ("intents.json" in names) == (kind != "conll") and ("chars.json" in names) == (kind == "jsonl")
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["valid_f1"] for r in epochs if "valid_f1" in r][-1] > 0.9

    code, out, _ = cli("tag", "eval", run, "--data", valid, "--json")
    result = json.loads(out)
    keys = {"data", "sentences", "count", "precision", "recall", "f1", "per_type", "token_accuracy", "loss"}
    assert code == 0 and keys | {"unknown_tags"} <= set(result) and result["sentences"] == 30
    assert set(result["per_type"]) == {"from", "to", "day"} and result["f1"] > 0.9
    assert set(result["per_type"]["to"]) == {"precision", "recall", "f1", "support"}
    assert ("intent_accuracy" in result) == ("sentence_accuracy" in result) == (kind != "conll")
    code, out, _ = cli("tag", "eval", run, "--data", valid, "--batch-size", "3")
    assert code == 0 and f"f1 {result['f1']:.4f}" in out and "support" in out

    (tmp_path / "in.txt").write_text("i want to fly from new york to boston on friday\n\nfares to dallas from denver\n")
    code, out, _ = cli("tag", "predict", run, tmp_path / "in.txt", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 3 and lines[1]["tokens"] == [] and lines[1]["spans"] == []
    assert {"type": "from", "start": 5, "end": 7, "text": "new york"} in lines[0]["spans"]
    assert set(lines[0]) == {"tokens", "tags", "spans"} | ({"intent"} if kind != "conll" else set())


def test_predict_reads_stdin_and_prints_word_tag_pairs(trained, monkeypatch, cli):
    kind, run, _ = trained
    monkeypatch.setattr(sys, "stdin", io.StringIO("show me flights from boston to denver\n"))
    code, out, _ = cli("tag", "predict", run)
    expected = "show/O me/O flights/O from/O boston/B-from to/O denver/B-to"
    assert code == 0 and out == expected + ("\tintent=flight" if kind != "conll" else "") + "\n"


def test_resume_is_exact(tmp_path, cli):
    data = write("jsonl", tmp_path / "train.jsonl", flights(40, 3))
    base = ["tag", "train", "--train", data, *FLAGS, "--char", "--crf", "--intent", "--dropout", "0.3"]
    base += ["--rare-word-dropout", "0.5"]  # its draws resume too
    assert cli(*base, "--epochs", "2", "--out", tmp_path / "whole")[0] == 0
    assert cli(*base, "--epochs", "1", "--out", tmp_path / "parts")[0] == 0
    code, _, err = cli("tag", "train", "--out", tmp_path / "parts", "--resume", "--epochs", "2")
    assert code == 0 and "finished (done) after 10 steps" in err
    whole, parts = (load_file(str(tmp_path / r / "checkpoint" / "model.safetensors")) for r in ("whole", "parts"))
    assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole)


def test_seqeval_equals_conlleval_worked_by_hand(tmp_path):
    # token gold predicted, as conlleval reads them; a chunk is right when its type and both ends are
    (tmp_path / "pred.txt").write_text(
        "EU B-ORG B-ORG\nrejects O O\nGerman B-MISC B-MISC\ncall O O\nto O O\nboycott O B-MISC\nBritish B-MISC I-MISC\n"
        "lamb O O\n\n"
        "Peter B-PER B-PER\nBlackburn I-PER O\nin O O\nNew B-LOC I-LOC\nYork I-LOC I-LOC\n\n"
        "Yes O I-PER\n"
    )  # fmt: skip
    gold = [s.tags for s in read_conll(tmp_path / "pred.txt", tag_column=1, scheme=None)]
    pred = [s.tags for s in read_conll(tmp_path / "pred.txt", tag_column=2, scheme=None)]
    # gold chunks: ORG EU, MISC German, MISC British, PER Peter Blackburn, LOC New York = 5
    # predicted: ORG EU (right), MISC German (right), MISC boycott British (wrong ends), PER Peter (wrong end),
    # LOC New York (I- starts a chunk, as in conlleval: right), PER Yes (wrong) = 6 chunks, 3 right
    precision, recall = 3 / 6, 3 / 5
    scores = tagging_scores(gold, pred, per_type=True)
    assert scores["precision"] == pytest.approx(precision) and scores["recall"] == pytest.approx(recall)
    assert scores["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert scores["token_accuracy"] == pytest.approx(9 / 14)
    assert scores["per_type"]["MISC"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_bad_conll_line_is_one_line_naming_file_and_line(tmp_path, cli):
    (tmp_path / "bad.txt").write_text("EU X B-ORG\nrejects O\n")
    code, _, err = cli("tag", "train", "--train", tmp_path / "bad.txt", "--out", tmp_path / "r")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'bad.txt'}:2: expected 3 columns (as on line 1), received 2" in err


def test_i_without_b_is_repaired_and_counted(tmp_path, cli):
    rows = flights(20, 4)
    rows[0][1][rows[0][1].index("B-to")] = "I-to"
    rows[1][1][rows[1][1].index("B-from")] = "I-from"
    data = write("conll", tmp_path / "train.txt", rows)
    with pytest.warns(UserWarning, match=r"2 I- tag\(s\) without a B- or I- of the same type .* were read as B-"):
        code, _, _ = cli("tag", "train", "--train", data, "--out", tmp_path / "r", *FLAGS, "--epochs", "1")
    assert code == 0 and json.loads((tmp_path / "r" / "tags.json").read_text())["names"][0] == "O"


def test_unseen_tags_and_intents_at_eval_are_reported_by_name_and_count(trained, tmp_path, cli):
    kind, run, _ = trained
    rows = flights(5, 5)
    rows[0][1][0] = rows[2][1][0] = "B-price"
    rows[3] = (rows[3][0], rows[3][1], "meal")
    data = write(kind, tmp_path / f"new{SUFFIX[kind]}", rows)
    with pytest.warns(UserWarning) as record:
        code, out, _ = cli("tag", "eval", run, "--data", data, "--json")
    messages = [str(w.message) for w in record]
    assert f"{data}: 2 tag(s) the run never saw in training: B-price (2)" in messages[0]
    result = json.loads(out)
    assert code == 0 and result["unknown_tags"] == {"B-price": 2} and result["recall"] < 1
    if kind != "conll":
        assert "1 intent(s) the run never saw in training: meal (1)" in messages[1]
        assert result["unknown_intents"] == {"meal": 1} and result["intent_accuracy"] <= 0.8


def test_atis_files_of_different_lengths_are_one_line(tmp_path, cli):
    folder = write("atis", tmp_path / "atis", flights(4, 6))
    (folder / "label").write_text("flight\nfare\nflight\n")
    code, _, err = cli("tag", "train", "--train", folder, "--out", tmp_path / "r", "--intent")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{folder / 'seq.in'} has 4 lines but {folder / 'label'} has 3" in err


def test_intent_needs_intents(tmp_path, cli):
    data = write("conll", tmp_path / "train.txt", flights(4, 7))
    code, _, err = cli("tag", "train", "--train", data, "--out", tmp_path / "r", "--intent")
    assert code == 2 and "--intent needs an intent for every sentence, and 4 of 4 have none" in err


def test_help_shows_examples(capsys):
    for verb in ("train", "eval", "predict"):
        with pytest.raises(SystemExit):
            rnnkit.cli.main(["tag", verb, "--help"])
        assert "example" in capsys.readouterr().out


@pytest.mark.skipif(not (SHARED_DATA / "atis" / "train").is_dir(), reason="needs ../shared/data/atis")
def test_tutorial_example_on_atis(tmp_path, cli):
    """The tutorials' example: a BiGRU trained on the ATIS sentences that turn on arriving and leaving (those with
    a word starting "arriv" or "leav": 681 of 4,478) tells a destination and an arrival date from an origin."""
    atis = read_atis(SHARED_DATA / "atis" / "train")
    sentences = [s for s in atis if any(w.startswith(("arriv", "leav")) for w in s.tokens)]
    write("atis", tmp_path / "atis", [(s.tokens, s.tags, s.intent) for s in sentences])
    argv = ["tag", "train", "--train", tmp_path / "atis", "--out", tmp_path / "run", "--cell", "gru"]
    argv += ["--bidirectional", "--hidden", "48", "--embed", "48", "--batch-size", "16", "--lr", "0.01"]
    assert cli(*argv, "--epochs", "4", "--no-progress")[0] == 0
    text = "i would like to arrive in boston on november second\nleave boston on november second\n"
    (tmp_path / "in.txt").write_text(text)
    code, out, _ = cli("tag", "predict", tmp_path / "run", tmp_path / "in.txt", "--json")
    arrive, leave = (dict(zip(r["tokens"], r["tags"], strict=True)) for r in map(json.loads, out.splitlines()))
    assert code == 0 and arrive["boston"] == "B-toloc.city_name"
    assert arrive["november"] == "B-arrive_date.month_name" and arrive["second"] == "B-arrive_date.day_number"
    assert leave["boston"] == "B-fromloc.city_name"


def test_ensemble_eval_and_predict_runs_each_with_its_own_vocabulary(tmp_path, cli):
    train = write("jsonl", tmp_path / "train.jsonl", flights(120, 1))
    valid = write("jsonl", tmp_path / "valid.jsonl", flights(30, 2))
    base = ["tag", "train", "--train", train, "--valid", valid, *FLAGS, "--epochs", "4", "--crf"]
    assert cli(*base, "--intent", "--out", tmp_path / "a")[0] == 0
    assert cli(*base, "--intent", "--out", tmp_path / "b", "--seed", "1", "--min-freq", "30", "--char")[0] == 0
    assert cli(*base, "--out", tmp_path / "no-intent")[0] == 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert json.loads((a / "vocab.json").read_text()) != json.loads((b / "vocab.json").read_text())

    single = json.loads(cli("tag", "eval", a, "--data", valid, "--json")[1])
    code, out, _ = cli("tag", "eval", a, "--ensemble", b, "--data", valid, "--json")
    both = json.loads(out)
    assert code == 0 and both["sentences"] == 30 and both["f1"] > 0.9 and "intent_accuracy" in both
    twice = json.loads(cli("tag", "eval", a, "--ensemble", a, "--data", valid, "--json")[1])
    assert twice["f1"] == single["f1"] and twice["loss"] == pytest.approx(single["loss"], rel=1e-5)

    (tmp_path / "in.txt").write_text("i want to fly from new york to boston on friday\n")
    code, out, _ = cli("tag", "predict", a, tmp_path / "in.txt", "--ensemble", b, "--json", "--scores")
    result = json.loads(out)
    spans = [(s["type"], s["text"]) for s in result["spans"]]
    assert code == 0 and spans == [("from", "new york"), ("to", "boston"), ("day", "friday")]
    assert "intent" in result and len(result["confidence"]) == 11

    code, _, err = cli("tag", "eval", a, "--ensemble", tmp_path / "no-intent", "--data", valid)
    assert code == 2 and "--ensemble" in err and "intents" in err and len(err.strip().splitlines()) == 1
