"""``rnnkit demo`` for real, with a budget of seconds: trains, prints samples and scores, leaves a run."""

import json
import warnings

import pytest

import rnnkit.cli
from rnnkit.cli.demo import SCORED


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it


def test_demo_with_a_tiny_budget(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--minutes", "0.05", "--corpus-mb", "0.05", "--out", str(out)]
    assert rnnkit.cli.main(argv) == 0
    printed = capsys.readouterr().out

    assert "corpus: 0.0 MB of the standard library's source" in printed
    assert "bits per character" in printed
    assert "--- sample at temperature 0.7" in printed and "--- sample at temperature 1.0" in printed
    samples = [line for line in printed.splitlines() if line.startswith("def ")]
    assert len(samples) >= 2
    scored = [line.split("  ")[-1] for line in printed.splitlines() if "logprob" in line]
    assert sorted(scored) == sorted(SCORED)
    assert f"rnnkit lm sample {out}" in printed

    meta = json.loads((out / "checkpoint" / "trainer.json").read_text())
    assert meta["step"] >= 1
    assert f"trained {meta['step']} steps" in printed
    assert (tmp_path / "demo-corpus" / "corpus.train.txt").is_file()

    # the command it suggests works on the run it leaves
    assert rnnkit.cli.main(["lm", "sample", str(out), "--prime", "class ", "--length", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"].startswith("class ")
