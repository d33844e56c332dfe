"""``rnnkit classify train|eval|predict`` end to end on tiny generated TSV, SST and JSON lines files."""

import io
import json
import random
import sys
import warnings

import pytest
import torch
from safetensors.torch import load_file

import rnnkit.cli
from rnnkit.cli.classify import render_attention

FLAGS = ["--hidden", "12", "--embed", "8", "--batch-size", "8", "--lr", "0.03", "--no-progress"]
WORDS = ["the", "a", "movie", "film", "plot", "actors", "was", "is", "very", "quite", "story"]


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it


def examples(n: int, seed: int) -> list[tuple[list[str], str]]:
    """Texts of 2 to 8 filler words; "good" is in about half of them: label pos, else neg."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
        good = rng.random() < 0.5
        if good:
            words.insert(rng.randint(0, len(words)), "good")
        out.append((words, "pos" if good else "neg"))
    return out


def write(path, rows, format):
    lines = {
        "tsv": lambda w, y: f"{y}\t{' '.join(w)}",
        "sst": lambda w, y: f"{y} {' '.join(w)}",
        "jsonl": lambda w, y: json.dumps({"text": " ".join(w), "labels": y if isinstance(y, list) else [y]}),
    }[format]
    path.write_text("".join(lines(w, y) + "\n" for w, y in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classify")
    write(tmp / "train.tsv", examples(48, 1), "tsv")
    write(tmp / "valid.tsv", examples(16, 2), "tsv")
    return tmp


def main(capsys, *argv):
    code = rnnkit.cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A bidirectional LSTM with attention pooling, trained on the TSV files."""
    out = tmp_path_factory.mktemp("runs") / "tsv"
    argv = ["classify", "train", "--train", data / "train.tsv", "--valid", data / "valid.tsv", "--out", out]
    argv += [*FLAGS, "--epochs", "6", "--bidirectional", "--pooling", "attention"]
    assert rnnkit.cli.main([str(a) for a in argv]) == 0
    return out


def test_train_writes_a_run_folder_that_learns(run):
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "classify" and config["model"]["pooling"] == "attention"
    assert {"vocab.json", "labels.json", "best.safetensors"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "labels.json").read_text())["names"] == ["neg", "pos"]
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    accuracy = [r["valid_accuracy"] for r in epochs if "valid_accuracy" in r]
    assert len(accuracy) == 6 and max(accuracy) == 1.0


def test_eval_prints_the_report_and_json(run, data, capsys):
    code, out, _ = main(capsys, "classify", "eval", run, "--data", data / "valid.tsv", "--json")
    result = json.loads(out)
    assert code == 0
    assert {"accuracy", "macro_f1", "per_class", "confusion", "count", "unknown_labels", "excluded"} <= set(result)
    assert result["count"] == 16 and result["accuracy"] == 1.0 and result["excluded"] == 0
    assert set(result["per_class"]["pos"]) == {"precision", "recall", "f1", "support"}
    assert sum(map(sum, result["confusion"])) == 16 and result["labels"] == ["neg", "pos"]
    code, out, _ = main(capsys, "classify", "eval", run, "--data", data / "valid.tsv")
    assert code == 0 and "accuracy 1.0000  macro_f1 1.0000" in out and "confusion matrix" in out


def test_predict_from_a_file_and_from_stdin(run, tmp_path, capsys, monkeypatch):
    texts = tmp_path / "texts.txt"
    texts.write_text("the film was good\n\nvery quite the plot\n   \n")
    with pytest.warns(UserWarning, match=r"texts.txt: skipped 2 empty lines"):
        code, out, _ = main(capsys, "classify", "predict", run, texts)
    lines = [line.split("\t") for line in out.splitlines()]
    assert code == 0 and [(label, text) for label, _, text in lines] == [
        ("pos", "the film was good"),
        ("neg", "very quite the plot"),
    ]
    assert all(0.5 < float(p) <= 1 for _, p, _ in lines)

    monkeypatch.setattr(sys, "stdin", io.StringIO("good good movie\n"))
    code, out, _ = main(capsys, "classify", "predict", run, "--json")
    result = json.loads(out)
    assert code == 0 and result["text"] == "good good movie" and result["label"] == "pos"
    assert set(result["probabilities"]) == {"neg", "pos"} and sum(result["probabilities"].values()) == pytest.approx(1)
    assert [token for token, _ in result["attention"]] == ["good", "good", "movie"]
    assert sum(w for _, w in result["attention"]) == pytest.approx(1)

    piped = io.TextIOWrapper(io.BytesIO(b"good movie\r\n\xff dull\n"), encoding="utf-8")  # a pipe: bytes underneath
    monkeypatch.setattr(sys, "stdin", piped)
    code, out, err = main(capsys, "classify", "predict", run)
    assert (
        code == 2
        and out == ""
        and err.splitlines()
        == [
            "rnnkit: error: stdin:2: not UTF-8 text (0xff at byte 1 of the line): pipe UTF-8 text, e.g. through iconv "
            "-f latin1 -t utf-8"
        ]
    )


def test_attention_in_the_terminal_and_as_a_png(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("the movie was good\n"))
    png = tmp_path / "attention.png"
    code, out, err = main(capsys, "classify", "predict", run, "--show-attention", "--attention-png", png)
    assert code == 0 and out.startswith("pos\t") and "good[" in out and "movie[" in out  # plain: not a TTY
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "attention.png" in err
    shaded = render_attention([["not", 0.0], ["good", 0.9]], color=True)
    assert "\x1b[48;5;231m" in shaded and "\x1b[48;5;196m\x1b[30mgood\x1b[0m" in shaded


def test_resume_is_exact(data, tmp_path, capsys):
    """Two epochs at once, or one and then one more with --resume, or stopped mid-epoch and resumed: same run
    (with the character encoder, whose vocabulary the resumed runs read back from chars.json)."""
    base = ["classify", "train", "--train", data / "train.tsv", "--valid", data / "valid.tsv", *FLAGS]
    base += ["--dropout", "0.3", "--cell", "gru", "--log-every", "2", "--char", "--char-hidden", "4"]
    base += ["--rare-word-dropout", "0.5"]  # its draws resume too
    assert main(capsys, *base, "--out", tmp_path / "whole", "--epochs", "2", "--max-steps", "99")[0] == 0
    assert main(capsys, *base, "--out", tmp_path / "parts", "--epochs", "1", "--max-steps", "99")[0] == 0
    assert main(capsys, "classify", "train", "--out", tmp_path / "parts", "--resume", "--epochs", "2")[0] == 0
    assert main(capsys, *base, "--out", tmp_path / "mid", "--epochs", "2", "--max-steps", "3")[0] == 0
    assert main(capsys, "classify", "train", "--out", tmp_path / "mid", "--resume", "--max-steps", "99")[0] == 0
    for name in ("checkpoint/model.safetensors", "checkpoint/trainer.safetensors", "best.safetensors"):
        whole = load_file(str(tmp_path / "whole" / name))
        for other in ("parts", "mid"):
            got = load_file(str(tmp_path / other / name))
            assert all(torch.equal(whole[k], got[k]) for k in whole), f"{other}/{name}"
    step = json.loads((tmp_path / "whole" / "checkpoint" / "trainer.json").read_text())["step"]
    assert step == 12  # 2 epochs of 48 / 8 batches
    assert (tmp_path / "mid" / "chars.json").is_file()
    code, out, _ = main(capsys, "classify", "eval", tmp_path / "mid", "--data", data / "valid.tsv", "--json")
    assert code == 0 and json.loads(out)["count"] == 16


def test_sst_format_and_last_pooling(data, tmp_path, capsys):
    rows = [(w, "1" if y == "pos" else "0") for w, y in examples(40, 3)]
    train, valid = write(tmp_path / "stsa.train", rows, "sst"), write(tmp_path / "stsa.dev", rows[:10], "sst")
    out = tmp_path / "sst"
    argv = ["classify", "train", "--train", train, "--valid", valid, "--out", out, *FLAGS]
    assert main(capsys, *argv, "--cell", "gru", "--epochs", "2", "--lowercase")[0] == 0
    code, stdout, _ = main(capsys, "classify", "eval", out, "--data", valid, "--json")
    assert code == 0 and json.loads(stdout)["labels"] == ["0", "1"] and json.loads(stdout)["count"] == 10
    code, _, err = main(capsys, "classify", "predict", out, valid, "--show-attention")
    assert code == 2 and "need a run with attention pooling" in err and err.count("\n") == 1


def test_jsonl_several_labels_per_text(tmp_path, capsys):
    rng = random.Random(4)
    rows = [(w, [y] + (["long"] if len(w) > 5 else [])) for w, y in examples(40, 5)]
    rows += [(["good", *rng.sample(WORDS, 3)], [])]  # a text without labels is fine with several
    train = write(tmp_path / "train.jsonl", rows, "jsonl")
    out = tmp_path / "multi"
    argv = ["classify", "train", "--train", train, "--valid", train, "--out", out, *FLAGS, "--epochs", "2"]
    assert main(capsys, *argv, "--multi-label", "--pooling", "mean")[0] == 0
    code, stdout, _ = main(capsys, "classify", "eval", out, "--data", train, "--json")
    result = json.loads(stdout)
    assert code == 0 and {"micro_f1", "macro_f1", "threshold", "per_class"} <= set(result)
    assert result["labels"] == ["long", "neg", "pos"] and len(result["confusion"]) == 3
    code, stdout, _ = main(capsys, "classify", "eval", out, "--data", train)
    assert code == 0 and "micro_f1" in stdout and "tp" in stdout
    code, _, err = main(capsys, "classify", "train", "--train", train, "--out", tmp_path / "single", *FLAGS)
    assert code == 2 and "train.jsonl: " in err and "--multi-label" in err and err.count("\n") == 1


def test_unknown_labels_at_eval_are_reported_by_name_and_count(run, data, tmp_path, capsys):
    rows = [*examples(6, 7), (["so", "so"], "neutral"), (["meh"], "neutral"), (["what"], "other")]
    test = write(tmp_path / "test.tsv", rows, "tsv")
    with pytest.warns(UserWarning, match=r"test.tsv: 3 example\(s\) with labels the run never saw .*'neutral' \(2\)"):
        code, out, _ = main(capsys, "classify", "eval", run, "--data", test, "--json")
    result = json.loads(out)
    assert code == 0 and result["count"] == 6 and result["excluded"] == 3
    assert result["unknown_labels"] == {"neutral": 2, "other": 1}


def test_bad_input_is_one_line_exit_2(run, data, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("pos\tgood film\nneg a dull film without a tab\n")
    code, _, err = main(capsys, "classify", "train", "--train", bad, "--out", tmp_path / "r", *FLAGS)
    assert code == 2 and f"{bad}:2: no tab, so no label column" in err and err.count("\n") == 1
    code, _, err = main(capsys, "lm", "eval", run, "--data", data / "valid.tsv")
    assert code == 2 and "is a classify run, not a lm run: use rnnkit classify eval" in err
    code, _, err = main(capsys, "classify", "predict", run, "--batch-size", "0")
    assert code == 2 and "--batch-size must be at least 1" in err


def test_empty_lines_and_long_texts_at_training_are_warned(data, tmp_path, capsys):
    rows = examples(20, 8)
    train = tmp_path / "train.tsv"
    train.write_text("\n".join(f"{y}\t{' '.join(w)}" for w, y in rows[:10]) + "\n\n\n" + f"pos\t{'good ' * 30}\n")
    argv = ["classify", "train", "--train", train, "--out", tmp_path / "r", *FLAGS, "--epochs", "1"]
    with pytest.warns(UserWarning) as caught:
        assert main(capsys, *argv, "--max-length", "12")[0] == 0
    messages = [str(w.message) for w in caught]
    assert any("skipped 2 empty lines" in m for m in messages)
    assert any("1 training text(s) longer than --max-length 12 tokens are cut" in m and "30" in m for m in messages)


def test_help_shows_examples(capsys):
    for verb in ("train", "eval", "predict"):
        with pytest.raises(SystemExit):
            rnnkit.cli.main(["classify", verb, "--help"])
        assert "example" in capsys.readouterr().out


@pytest.mark.parametrize("task", ["classify", "tag"])
def test_a_huge_width_is_refused_before_any_allocation(tmp_path, capsys, task):
    (tmp_path / "t.tsv").write_text("pos\tgood movie\nneg\tbad movie\n")
    argv = [task, "train", "--train", str(tmp_path / "t.tsv"), "--out", str(tmp_path / "run")]
    argv += ["--hidden", "99999999999"]
    assert rnnkit.cli.main(argv) == 2
    assert "--hidden must lie in [1, 1048576]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_ensemble_averages_the_runs_probabilities_each_reading_its_own_way(data, run, tmp_path, capsys):
    other = tmp_path / "max-pool"
    argv = ["classify", "train", "--train", data / "train.tsv", "--out", other, *FLAGS, "--epochs", "3"]
    assert main(capsys, *argv, "--pooling", "max", "--min-freq", "3", "--seed", "1")[0] == 0
    texts = tmp_path / "texts.txt"
    texts.write_text("a good film\nnot a film at all\n")
    alone = [[json.loads(line) for line in main(capsys, "classify", "predict", r, texts, "--json")[1].splitlines()]
             for r in (run, other)]  # fmt: skip
    code, out, _ = main(capsys, "classify", "predict", run, texts, "--ensemble", other, "--json")
    both = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(both) == 2
    for i, result in enumerate(both):
        for label, p in result["probabilities"].items():
            assert p == pytest.approx((alone[0][i]["probabilities"][label] + alone[1][i]["probabilities"][label]) / 2)
        assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
        assert result["attention"] == alone[0][i]["attention"]  # only the first run pools by attention

    single = json.loads(main(capsys, "classify", "eval", run, "--data", data / "valid.tsv", "--json")[1])
    twice = json.loads(
        main(capsys, "classify", "eval", run, "--ensemble", run, "--data", data / "valid.tsv", "--json")[1]
    )
    assert twice["accuracy"] == single["accuracy"] and twice["loss"] == pytest.approx(single["loss"], rel=1e-4)
    code, out, _ = main(capsys, "classify", "eval", run, "--ensemble", other, "--data", data / "valid.tsv", "--json")
    assert code == 0 and json.loads(out)["count"] == 16

    (tmp_path / "three.tsv").write_text("a\tgood\nb\tbad\nc\tfilm\n")
    third = tmp_path / "three-labels"
    assert (
        main(capsys, "classify", "train", "--train", tmp_path / "three.tsv", "--out", third, *FLAGS, "--epochs", "1")[0]
        == 0
    )
    code, _, err = main(capsys, "classify", "eval", run, "--ensemble", third, "--data", data / "valid.tsv")
    assert code == 2 and "--ensemble" in err and "same labels" in err
