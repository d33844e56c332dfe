"""``rnnkit lm train|eval|sample|score`` end to end, their help, and their one-line errors."""

import json
import math
import os
import random
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import rnnkit.cli
from rnnkit.errors import RnnkitError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("rnnkit")
WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "log", "and", "big", "small", "red"]


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it


def sentences(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7))) + "\n" for _ in range(n))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A char-level and a word-level run, trained through the CLI (with a validation file)."""
    tmp = tmp_path_factory.mktemp("cli")
    train, valid = tmp / "train.txt", tmp / "valid.txt"
    train.write_text(sentences(60, 1), encoding="utf-8")
    valid.write_text(sentences(10, 2), encoding="utf-8")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for level in ("char", "word"):
            out[level] = tmp / level
            argv = ["lm", "train", "--train", str(train), "--valid", str(valid), "--level", level]
            argv += ["--out", str(out[level]), "--hidden", "16", "--layers", "1", "--batch-size", "4"]
            argv += ["--bptt", "10", "--epochs", "2", "--lr", "0.01", "--no-progress", "--eval-batch-size", "2"]
            assert rnnkit.cli.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return out | {"train": train, "valid": valid, "tmp": tmp}


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = rnnkit.cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(capsys, *argv: str) -> str:
    code, _, err = run_main(capsys, *argv)
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rnnkit: error: ")
    return last


def test_train_writes_both_runs(runs):
    for level in ("char", "word"):
        config = json.loads((runs[level] / "config.json").read_text())
        assert config["data"]["level"] == level
        assert (runs[level] / "best.safetensors").is_file()
    words = json.loads((runs["word"] / "vocab.json").read_text())["tokens"]
    assert set(words[4:]) == set(WORDS)


@pytest.mark.parametrize("level", ["char", "word"])
def test_eval_json(runs, capsys, level):
    code, out, _ = run_main(capsys, "lm", "eval", str(runs[level]), "--data", str(runs["valid"]), "--json")
    assert code == 0
    result = json.loads(out)
    text = runs["valid"].read_text()
    n = len(text) if level == "char" else len(text.split()) + text.count("\n")
    assert result["tokens"] == (n // 2 - 1) * 2  # --eval-batch-size 2 streams, each losing its first token
    assert result["data"] == str(runs["valid"])
    assert result["ppl"] == pytest.approx(math.exp(result["loss"]), rel=1e-9)
    if level == "char":
        assert set(result) == {"data", "tokens", "loss", "bpc", "ppl"}
        assert result["bpc"] == pytest.approx(result["loss"] / math.log(2), rel=1e-9)
        assert result["ppl"] < 20  # it learned something (the vocabulary has 20 characters plus specials)
    else:
        assert set(result) == {"data", "tokens", "loss", "ppl"}
        assert result["ppl"] < len(WORDS) + 4
    # the last validation loss of training is the best one here: eval reads the same weights
    epochs = [json.loads(line) for line in (runs[level] / "metrics.jsonl").read_text().splitlines()]
    best = min(r["valid_loss"] for r in epochs if "valid_loss" in r)
    assert result["loss"] == pytest.approx(best, abs=1e-5)


def test_eval_with_another_batch_size_and_plain_output(runs, capsys):
    code, out, _ = run_main(capsys, "lm", "eval", str(runs["char"]), "--data", str(runs["valid"]), "--batch-size", "1")
    assert code == 0
    assert out.startswith(f"data {runs['valid']}  tokens {len(runs['valid'].read_text()) - 1}  loss ")


@pytest.mark.parametrize(("level", "prime"), [("char", "the c"), ("word", "the cat")])
def test_sample_json_starts_with_the_prime(runs, capsys, level, prime):
    argv = ["lm", "sample", str(runs[level]), "--prime", prime, "--length", "20", "--json", "--seed", "1"]
    code, out, _ = run_main(capsys, *argv)
    assert code == 0
    result = json.loads(out)
    assert result["prime"] == prime and result["text"].startswith(prime)
    if level == "char":  # (a word sample may end at once, with <eos>)
        assert len(result["text"]) > len(prime)
    assert run_main(capsys, *argv)[1] == out  # same seed, same text
    code, plain, _ = run_main(
        capsys, "lm", "sample", str(runs[level]), "--prime", prime, "--length", "20", "--seed", "1"
    )
    assert plain == result["text"] + "\n"


def test_sample_options(runs, capsys):
    base = ["lm", "sample", str(runs["char"]), "--prime", "the ", "--length", "30"]
    greedy = [run_main(capsys, *base, "--temperature", "0", "--seed", str(s))[1] for s in (1, 2)]
    assert greedy[0] == greedy[1]
    for extra in (["--top-k", "3"], ["--top-p", "0.5"], ["--allow-unk"], ["--top-p", "1"]):
        code, out, _ = run_main(capsys, *base, *extra)
        assert code == 0 and out.startswith("the ")


def test_score_json(runs, capsys):
    code, out, _ = run_main(capsys, "lm", "score", str(runs["word"]), "the cat sat on the mat", "mat the on", "--json")
    assert code == 0
    results = json.loads(out)
    assert [r["text"] for r in results] == ["the cat sat on the mat", "mat the on"]
    assert [r["tokens"] for r in results] == [7, 4]
    assert sorted(r["rank"] for r in results) == [1, 2]
    for r in results:
        assert set(r) == {"text", "logprob", "perplexity", "tokens", "rank"}
        assert r["logprob"] < 0 and r["perplexity"] == pytest.approx(math.exp(-r["logprob"] / r["tokens"]))
    code, out, _ = run_main(capsys, "lm", "score", str(runs["char"]), "the cat", "zzz")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and lines[0].lstrip().startswith("1. logprob")


@pytest.mark.parametrize("verb", ["train", "eval", "sample", "score"])
def test_help_of_every_verb_shows_an_example(capsys, verb):
    with pytest.raises(SystemExit) as info:
        rnnkit.cli.main(["lm", verb, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"rnnkit lm {verb} " in out


def test_training_errors_are_one_line(runs, tmp_path, capsys):
    out = ["--level", "char", "--out", str(tmp_path / "run"), "--no-progress", "--hidden", "8", "--batch-size", "2"]
    missing = tmp_path / "missing.txt"
    assert f"{missing}: no such file" in one_line_error(capsys, "lm", "train", "--train", str(missing), *out)
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n")
    assert f"{empty} is empty" in one_line_error(capsys, "lm", "train", "--train", str(empty), *out)
    assert "--train FILE is required" in one_line_error(capsys, "lm", "train", *out)
    valid_missing = ["--train", str(runs["train"]), "--valid", str(missing)]
    assert f"{missing}: no such file" in one_line_error(capsys, "lm", "train", *valid_missing, *out, "--force")


def test_non_utf8_training_text(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(("caf\u00e9 au lait\n".encode() + "na\u00efve\n".encode("latin-1")) * 20)
    argv = ["lm", "train", "--train", str(bad), "--level", "char", "--out", str(tmp_path / "run"), "--no-progress"]
    argv += ["--hidden", "8", "--layers", "1", "--batch-size", "2", "--bptt", "5", "--max-steps", "3"]
    line = one_line_error(capsys, *argv)
    assert str(bad) in line and "byte 0xef at offset 16 (line 2)" in line and "--encoding-errors replace" in line
    assert not (tmp_path / "run" / "checkpoint").exists()

    code, _, err = run_main(capsys, *argv, "--encoding-errors", "replace")
    assert code == 0, err
    vocab = json.loads((tmp_path / "run" / "vocab.json").read_text())["tokens"]
    assert "\ufffd" in vocab and "\u00e9" in vocab
    code, out, _ = run_main(capsys, "lm", "eval", str(tmp_path / "run"), "--data", str(bad), "--json")
    assert code == 2  # eval is strict by default too
    code, out, _ = run_main(
        capsys, "lm", "eval", str(tmp_path / "run"), "--data", str(bad), "--json", "--encoding-errors", "ignore"
    )
    assert code == 0 and json.loads(out)["tokens"] > 0


def test_unknown_priming_words_warn_and_still_sample(runs, capsys):
    with pytest.warns(UserWarning, match="<unk>"):
        code, out, _ = run_main(capsys, "lm", "sample", str(runs["word"]), "--prime", "the zebra", "--length", "8")
    assert code == 0 and out.startswith("the zebra ") and len(out.split()) > 2


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "-1"], "temperature must be >= 0"),
        (["--top-p", "0"], "top-p must lie in (0, 1]"),
        (["--top-p", "1.5"], "top-p must lie in (0, 1]"),
        (["--top-k", "0"], "top-k must be at least 1"),
        (["--length", "-3"], "--length must be at least 0"),
    ],
)
def test_bad_sampling_options_are_one_line_errors(runs, capsys, flags, message):
    assert message in one_line_error(capsys, "lm", "sample", str(runs["char"]), *flags)


def test_missing_run_folder_and_data(runs, tmp_path, capsys):
    nowhere = tmp_path / "nowhere"
    for verb, extra in [("sample", []), ("score", ["a b"]), ("eval", ["--data", str(runs["valid"])])]:
        line = one_line_error(capsys, "lm", verb, str(nowhere), *extra)
        assert f"{nowhere}: no such run folder" in line and "rnnkit lm train" in line
    missing = tmp_path / "missing.txt"
    assert f"{missing}: no such file" in one_line_error(capsys, "lm", "eval", str(runs["char"]), "--data", str(missing))
    not_a_run = tmp_path / "plain"
    not_a_run.mkdir()
    assert "config.json: missing" in one_line_error(capsys, "lm", "sample", str(not_a_run))


def test_corrupted_run_files_are_one_line_errors(runs, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(runs["char"], broken)
    (broken / "vocab.json").write_text("{not json")
    assert "vocab.json" in one_line_error(capsys, "lm", "sample", str(broken))
    shutil.copy(runs["char"] / "vocab.json", broken / "vocab.json")
    config = json.loads((broken / "config.json").read_text())
    config["model"]["hidden"] = "many"
    (broken / "config.json").write_text(json.dumps(config))
    line = one_line_error(capsys, "lm", "score", str(broken), "abc")
    assert "config.json" in line and "'hidden'" in line


def test_debug_raises_instead_of_printing_one_line(runs, tmp_path, capsys):
    with pytest.raises(RnnkitError, match="no such run folder"):
        rnnkit.cli.main(["--debug", "lm", "sample", str(tmp_path / "nowhere")])
    with pytest.raises(RnnkitError, match="temperature must be >= 0"):
        rnnkit.cli.main(["--debug", "lm", "sample", str(runs["char"]), "--temperature", "-1"])
    assert "rnnkit: error" not in capsys.readouterr().err


def test_the_installed_command_in_a_real_process(runs):
    """Warnings and errors as one line each on stderr, no traceback, exit codes 0 and 2."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "rnnkit"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*command, "lm", "sample", str(runs["word"]), "--prime", "the zebra", "--length", "5", "--seed", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0 and done.stdout.startswith("the zebra")
    assert done.stderr == "rnnkit: warning: 1 priming token(s) not in the vocabulary are read as <unk>\n"
