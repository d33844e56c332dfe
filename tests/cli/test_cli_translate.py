"""``rnnkit translate train|eval|predict`` end to end on a generated language pair (words mapped one to one and
their order reversed), with words and with subwords; exact resume; and each kind of bad input."""

import io
import json
import random
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.tasks.registry import load_run

WORDS = [
    "a",
    "man",
    "woman",
    "dog",
    "cat",
    "runs",
    "sits",
    "on",
    "the",
    "red",
    "blue",
    "green",
    "ball",
    "street",
    "park",
]
FOREIGN = {w: f"{w[::-1]}x" for w in WORDS}  # man -> namx
FLAGS = ["--hidden", "32", "--embed", "24", "--batch-size", "16", "--lr", "0.01", "--no-progress", "--dropout", "0"]


def pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """(source, target): the target's words reversed and each replaced by its foreign word."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
        out.append((foreign(" ".join(words)), " ".join(words)))
    return out


def foreign(sentence: str) -> str:
    return " ".join(FOREIGN[w] for w in reversed(sentence.split()))


def write(prefix: Path, rows: list[tuple[str, str]]) -> Path:
    prefix.with_name(prefix.name + ".fo").write_text("".join(s + "\n" for s, _ in rows))
    prefix.with_name(prefix.name + ".en").write_text("".join(t + "\n" for _, t in rows))
    return prefix


def train(tmp: Path, *extra: str) -> list[str]:
    data = write(tmp / "train", pairs(400, 1))
    valid = write(tmp / "valid", pairs(40, 2))
    langs = ["--src-lang", "fo", "--tgt-lang", "en"]
    return ["translate", "train", "--train", data, "--valid", valid, *langs, *FLAGS, *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_cli):
    tmp = tmp_path_factory.mktemp("translate")
    argv = train(tmp, "--epochs", "30", "--out", tmp / "run", "--attention", "general")
    train_cli(*argv)
    return tmp / "run", tmp / "valid"


def test_train_eval_predict_end_to_end(trained, tmp_path, cli):
    run, valid = trained
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "src.vocab.json", "tgt.vocab.json", "best.safetensors", "metrics.jsonl"} <= names
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["valid_bleu"] for r in epochs if "valid_bleu" in r) > 90

    code, out, _ = cli("translate", "eval", run, "--data", valid, "--json")
    result = json.loads(out)
    assert code == 0 and result["count"] == 40 and result["beam"] == 5
    assert result["bleu"] > 85 and result["chrf"] > 90
    assert "nrefs:1" in result["bleu_signature"] and "tok:13a" in result["bleu_signature"]
    code, out, _ = cli("translate", "eval", run, "--src", f"{valid}.fo", "--ref", f"{valid}.en", "--beam", "1")
    assert code == 0 and "BLEU" in out and "signature: nrefs:1" in out

    sentences = [foreign("dog sits on the red ball"), "", foreign("a man")]
    (tmp_path / "in.fo").write_text("".join(f"{line}\n" for line in sentences))
    best = [n_best[0]["text"] for n_best in load_run(run).translate(sentences, beam_size=5)]
    code, out, _ = cli("translate", "predict", run, tmp_path / "in.fo")
    assert code == 0 and out.splitlines() == best and best[1] == "" and best[2] == "a man"
    code, out, _ = cli("translate", "predict", run, tmp_path / "in.fo", "--json", "--n-best", "3")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["translation"] for r in lines] == best and lines[0]["source"] == sentences[0]
    assert len(lines[0]["n_best"]) == 3 and lines[0]["n_best"][0]["score"] >= lines[0]["n_best"][2]["score"]
    assert lines[1]["n_best"] == [{"text": "", "score": 0.0, "log_prob": 0.0}]
    # the default search stops a sentence early; without a length penalty that is exact
    flags = ["--json", "--n-best", "2", "--length-penalty", "0"]
    early = cli("translate", "predict", run, tmp_path / "in.fo", *flags)[1]
    assert early == cli("translate", "predict", run, tmp_path / "in.fo", *flags, "--exhaustive")[1]
    # --shrink-beam searches as TranslateRun.translate(shrink=True) does
    shrunk = [n_best[0]["text"] for n_best in load_run(run).translate(sentences, beam_size=3, shrink=True)]
    code, out, _ = cli("translate", "predict", run, tmp_path / "in.fo", "--beam", "3", "--shrink-beam")
    assert code == 0 and out.splitlines() == shrunk


def test_plot_attention_writes_one_png_per_sentence(trained, tmp_path, cli):
    run, _ = trained
    (tmp_path / "in.fo").write_text(f"{foreign('dog sits on the red ball')}\n\n{foreign('a man')}\n")
    code, _, err = cli("translate", "predict", run, tmp_path / "in.fo", "--plot-attention", tmp_path / "a.png")
    assert code == 0 and "sentence 2" in err
    for name in ("a.png", "a-2.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    source, output, weights = load_run(run).attention(foreign("a man"), beam_size=1)
    assert source == ["namx", "ax"] and output[-1] == "<eos>" and len(weights) == len(output)
    assert all(abs(sum(row) - 1) < 1e-5 and len(row) == 2 for row in weights)
    # reversal: the first output word ("a") looks mostly at the last source word ("ax")
    assert weights[0][1] > weights[0][0]


def test_predict_reads_stdin_and_load_run_opens_the_folder(trained, monkeypatch, cli):
    run, _ = trained
    monkeypatch.setattr(sys, "stdin", io.StringIO("tacx stisx\n"))
    code, out, _ = cli("translate", "predict", run, "--beam", "1")
    assert code == 0 and out == "sits cat\n"
    assert load_run(run).translate(["tacx stisx"], beam_size=3)[0][0]["text"] == "sits cat"


def test_subwords_run_learns_and_keeps_its_sentencepiece_models(tmp_path, cli):
    argv = train(tmp_path, "--epochs", "12", "--out", tmp_path / "bpe", "--tokens", "bpe", "--subword-vocab", "40")
    code, _, err = cli(*argv)
    assert code == 0, err
    assert {"src.spm", "tgt.spm"} <= {p.name for p in (tmp_path / "bpe").iterdir()}
    code, out, _ = cli("translate", "eval", tmp_path / "bpe", "--data", tmp_path / "valid", "--json")
    assert code == 0 and json.loads(out)["bleu"] > 60


def test_resume_is_exact(tmp_path, cli):
    base = train(tmp_path, "--teacher-forcing", "0.7", "--dropout", "0.3", "--attention", "additive")
    assert cli(*base, "--epochs", "2", "--out", tmp_path / "whole")[0] == 0
    assert cli(*base, "--epochs", "1", "--out", tmp_path / "parts")[0] == 0
    code, _, err = cli("translate", "train", "--out", tmp_path / "parts", "--resume", "--epochs", "2")
    assert code == 0 and "finished (done) after 50 steps" in err
    whole, parts = (load_file(str(tmp_path / r / "checkpoint" / "model.safetensors")) for r in ("whole", "parts"))
    assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole)


def test_bad_input_is_one_line(tmp_path, trained, capsys, cli):
    run, valid = trained
    prefix = write(tmp_path / "bad", pairs(5, 3))
    (tmp_path / "bad.en").write_text("one\ntwo\n")
    code, _, err = cli(*train(tmp_path, "--out", tmp_path / "r")[:2], "--train", prefix, "--src-lang", "fo",
                        "--tgt-lang", "en", "--out", tmp_path / "r")  # fmt: skip
    assert code == 2 and "bad.fo has 5 lines but" in err and "bad.en has 2" in err and err.count("\n") == 1
    code, _, err = cli("translate", "train", "--train", valid, "--src-lang", "fr", "--tgt-lang", "en",
                        "--out", tmp_path / "r2")  # fmt: skip
    assert code == 2 and "valid.fr" in err and "valid.fo" in err
    code, _, err = cli("translate", "eval", run, "--data", valid, "--beam", "0")
    assert code == 2 and "--beam must be at least 1, got 0" in err
    code, _, err = cli("translate", "predict", run, f"{valid}.fo", "--json", "--beam", "2", "--n-best", "3")
    assert code == 2 and "--n-best must be between 1 and --beam (2), got 3" in err
    code, _, err = cli("translate", "eval", run)
    assert code == 2 and "give --data PREFIX, or --src FILE and --ref FILE" in err
    for flag, value, message in (
        ("--max-len-a", "nan", "--max-len-a and --max-len-b must be numbers in [0, 100,000]"),
        ("--max-len-b", "99999999999", "--max-len-a and --max-len-b must be numbers in [0, 100,000]"),
        ("--length-penalty", "nan", "--length-penalty must be a finite number, got nan"),
        ("--beam", "100000", "--beam must be at most 1000, got 100000"),
    ):
        code, _, err = cli("translate", "predict", run, f"{valid}.fo", flag, value)
        assert code == 2 and message in err and err.count("\n") == 1, (flag, err)
    with pytest.raises(SystemExit):
        cli(*train(tmp_path, "--out", tmp_path / "r3", "--attention", "luong"))
    assert "invalid choice: 'luong'" in capsys.readouterr().err


def test_empty_pairs_are_skipped_and_long_ones_cut_with_warnings(tmp_path, cli):
    rows = [*pairs(30, 4), ("", "empty source"), ("llabx", "")]
    rows.append((" ".join(["namx"] * 12), " ".join(["man"] * 12)))
    write(tmp_path / "t", rows)
    argv = ["translate", "train", "--train", tmp_path / "t", "--src-lang", "fo", "--tgt-lang", "en", *FLAGS]
    with pytest.warns(UserWarning) as caught:
        code, _, err = cli(*argv, "--out", tmp_path / "r", "--max-length", "8", "--epochs", "1")
    messages = " | ".join(str(w.message) for w in caught)
    assert code == 0, err
    assert "2" in messages and "empty" in messages and "longer than --max-length 8" in messages
