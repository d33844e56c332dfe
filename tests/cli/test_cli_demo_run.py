"""``rnnkit demo`` for real, with a few steps: trains, prints samples and scored pairs, leaves a run."""

import json
import warnings

import pytest

import rnnkit.cli
from rnnkit.cli.demo import PAIRS


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it


def test_demo_with_a_few_steps(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--steps", "3", "--corpus-mb", "0.05", "--out", str(out)]
    assert rnnkit.cli.main(argv) == 0
    printed = capsys.readouterr().out

    assert "corpus: 0.0 MB of the standard library's source" in printed
    assert "trained 3 steps; validation:" in printed and "bits per character" in printed
    assert "--- sample at temperature 0.7" in printed and "--- sample at temperature 1.0" in printed
    samples = [line for line in printed.splitlines() if line.startswith("def ")]
    assert len(samples) >= 2
    pairs = [line for line in printed.splitlines() if " margin " in line]
    assert len(pairs) == len(PAIRS)
    for line, (good, bad) in zip(pairs, PAIRS, strict=True):
        a, b, margin = (float(v) for v in (line.split()[0], line.split(good)[1].split()[0], line.split()[-2]))
        assert good in line and bad in line and margin == pytest.approx(a - b, abs=0.011)
        assert line.endswith("right") == (a > b) and line.endswith(("right", "WRONG"))
    assert f"rnnkit lm sample {out}" in printed

    meta = json.loads((out / "checkpoint" / "trainer.json").read_text())
    assert meta["step"] == 3
    assert (tmp_path / "demo-corpus" / "corpus.train.txt").is_file()

    # the command it suggests works on the run it leaves
    assert rnnkit.cli.main(["lm", "sample", str(out), "--prime", "class ", "--length", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"].startswith("class ")


def test_the_same_steps_and_seed_print_the_same_demo(tmp_path, capsys):
    """What makes the README's figures hold on any machine: no wall-clock budget, one seed, fixed threads."""
    printed = []
    for name in ("a", "b"):
        argv = ["demo", "--steps", "2", "--corpus-mb", "0.03", "--out", str(tmp_path / name)]
        assert rnnkit.cli.main(argv) == 0
        printed.append(capsys.readouterr().out.replace(str(tmp_path / name), "RUN"))
    assert printed[0] == printed[1]


def test_bad_steps_is_a_one_line_error(tmp_path, capsys):
    assert rnnkit.cli.main(["demo", "--steps", "0", "--out", str(tmp_path / "d")]) == 2
    assert "--steps must be at least 1, got 0" in capsys.readouterr().err
