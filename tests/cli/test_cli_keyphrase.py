"""Keyphrase extraction through the CLI both ways, on generated Inspec-like abstracts: ``rnnkit tag`` (BIO spans
ranked by CRF marginals) and ``rnnkit classify --label-field keyphrases`` (the many-to-one model over a
vocabulary of keyphrases); both ``eval --json`` give keyphrase F1@5/@10/@M against all and present gold."""

import json
import random

import pytest

FILLER = [
    "we",
    "study",
    "the",
    "of",
    "a",
    "new",
    "method",
    "for",
    "and",
    "show",
    "that",
    "it",
    "works",
    "well",
    "in",
    "practice",
]
TOPICS = ["neural network", "speech recognition", "control system", "image retrieval", "data mining"]
FLAGS = ["--hidden", "16", "--batch-size", "8", "--lr", "0.02", "--no-progress", "--lowercase"]


def abstracts(n: int, seed: int) -> list[dict]:
    """Documents of filler words with two topic phrases tagged B-KEY I-KEY, and one absent gold keyphrase."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        topics = rng.sample(TOPICS, 2)
        tokens, tags = [], []
        for topic in topics + topics[:1]:
            filler = rng.sample(FILLER, 4)
            words = topic.split()
            tokens += filler + [w.capitalize() if rng.random() < 0.3 else w for w in words]
            tags += ["O"] * 4 + ["B-KEY"] + ["I-KEY"] * (len(words) - 1)
        keyphrases = [f"{t}s" if j == 0 else t for j, t in enumerate(topics)] + ["absent phrase"]  # plural: stems match
        docs.append({"id": str(i), "tokens": tokens, "tags": tags, "keyphrases": keyphrases})
    return docs


def write(path, docs):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inspec")
    return write(tmp / "train.jsonl", abstracts(60, 1)), write(tmp / "valid.jsonl", abstracts(20, 2))


def test_tagger_eval_scores_keyphrases_and_predict_gives_span_scores(data, tmp_path, cli):
    train, valid = data
    run = tmp_path / "tag"
    argv = ["tag", "train", "--train", train, "--valid", valid, "--out", run, *FLAGS, "--epochs", "6"]
    assert cli(*argv, "--bidirectional", "--crf", "--embed", "12")[0] == 0
    code, out, _ = cli("tag", "eval", run, "--data", valid, "--json")
    result = json.loads(out)
    assert code == 0 and result["f1"] > 0.9
    kp = result["keyphrases"]
    # 2 of the 3 gold keyphrases are present: a perfect tagger scores R 2/3 (all) and 1 (present)
    assert kp["all"]["recall@M"] == pytest.approx(2 / 3, abs=0.05) and kp["present"]["f1@M"] > 0.9
    assert kp["all"]["documents"] == kp["present"]["documents"] == 20
    assert {"f1@5", "f1@10", "precision@M"} <= set(kp["all"])
    code, out, _ = cli("tag", "eval", run, "--data", valid)
    assert code == 0 and "keyphrases (present, 20 documents): f1@5" in out

    (tmp_path / "in.txt").write_text("we show a new neural network method\n")
    code, out, _ = cli("tag", "predict", run, tmp_path / "in.txt", "--json", "--scores")
    tagged = json.loads(out)
    assert code == 0 and len(tagged["confidence"]) == 7 and all(0 < c <= 1 for c in tagged["confidence"])
    (span,) = tagged["spans"]
    assert span["text"] == "neural network" and span["score"] == pytest.approx(
        sum(tagged["confidence"][4:6]) / 2, abs=1e-5
    )
    code, out, _ = cli("tag", "predict", run, tmp_path / "in.txt", "--json")
    assert "confidence" not in json.loads(out) and "score" not in json.loads(out)["spans"][0]


@pytest.mark.parametrize("pooling", ["attention", "label_attention"])
def test_many_to_one_over_a_keyphrase_vocabulary(data, tmp_path, cli, pooling):
    train, valid = data
    run = tmp_path / "cls"
    argv = ["classify", "train", "--train", train, "--valid", valid, "--out", run, *FLAGS, "--epochs", "15"]
    argv += ["--multi-label", "--label-field", "keyphrases", "--min-label-count", "2", "--pooling", pooling]
    code, _, _ = cli(*argv)
    assert code == 0
    labels = json.loads((run / "labels.json").read_text())["names"]
    # "absent phrase" is on every text; each topic's plural (first) and singular (second) forms on enough of them
    assert "absent phrase" in labels and "neural network" in labels and len(labels) <= 11
    code, out, _err = cli("classify", "eval", run, "--data", valid, "--json")
    result = json.loads(out)
    assert code == 0 and result["excluded"] == 0 and result["count"] == 20  # unknown labels dropped, texts kept
    kp = result["keyphrases"]
    assert kp["all"]["f1@5"] > 0.5 and kp["all"]["documents"] == 20 and kp["present"]["documents"] == 20

    # texts of different lengths, evaluated in length order: each text's scores stay its own (they did not
    # before: the ranked keyphrases of the length-sorted batches were scored against the texts in file order)
    docs = [
        d | {"tokens": ["we"] * i + d["tokens"], "tags": ["O"] * i + d["tags"]} for i, d in enumerate(abstracts(20, 2))
    ]
    scores = []
    for name, ordered in (("varied.jsonl", docs), ("reversed.jsonl", docs[::-1])):
        code, out, _ = cli("classify", "eval", run, "--data", write(tmp_path / name, ordered), "--json")
        assert code == 0
        scores.append(json.loads(out)["keyphrases"])
    for target in ("all", "present"):  # the same up to the order of summing
        assert scores[0][target] == pytest.approx(scores[1][target], abs=1e-12)
    assert scores[0]["all"]["f1@5"] > 0.5

    # a run as an ensemble with itself: the same probabilities, threshold, scores and loss
    code, out, _ = cli("classify", "eval", run, "--ensemble", run, "--data", valid, "--json")
    twice = json.loads(out)
    assert code == 0 and twice["keyphrases"] == result["keyphrases"] and twice["threshold"] == result["threshold"]
    assert twice["loss"] == pytest.approx(result["loss"], rel=1e-4) and twice["micro_f1"] == result["micro_f1"]


def test_label_field_and_min_label_count_errors(data, tmp_path, cli):
    train, _ = data
    base = ["classify", "train", "--train", train, "--out", tmp_path / "r", "--multi-label", *FLAGS]
    code, _, err = cli(*base, "--label-field", "missing")
    assert code == 2 and 'train.jsonl:1: no "missing" field (the label field)' in err and len(err.splitlines()) == 1
    code, _, err = cli(*base, "--label-field", "keyphrases", "--min-label-count", "1000")
    assert code == 2 and "no label is on 1000 or more texts" in err and "--min-label-count" in err


def test_one_keyphrase_per_text_with_an_unknown_one_in_eval_is_left_out_not_a_crash(tmp_path, cli):
    docs = [d | {"keyphrases": [" ".join(d["tokens"][4:6])]} for d in abstracts(30, 3)]  # its first topic
    valid = [*docs[:5], docs[5] | {"keyphrases": ["never seen phrase"]}]
    train, valid = write(tmp_path / "train.jsonl", docs), write(tmp_path / "valid.jsonl", valid)
    run = tmp_path / "one"
    argv = ["classify", "train", "--train", train, "--out", run, *FLAGS, "--epochs", "1", "--label-field", "keyphrases"]
    assert cli(*argv)[0] == 0
    with pytest.warns(UserWarning, match="never seen phrase"):
        code, out, _ = cli("classify", "eval", run, "--data", valid, "--json")
    result = json.loads(out)
    assert code == 0 and result["excluded"] == 1
    assert result["keyphrases"]["all"]["documents"] == 5
