"""benchmarks/suite.py (make bench): the quick suite runs every in-process section and writes JSON and Markdown."""

import json
import sys

import pytest
import torch

import rnnkit


@pytest.fixture
def suite(benchmarks):
    return benchmarks("common", "generation_speed", "lm_speed", "suite")


def test_forward_flops_count_two_per_weight_matrix_entry(suite):
    H = 8
    assert suite.forward_flops(torch.nn.LSTM(H, H)) == 2 * (4 * H * H + 4 * H * H)
    assert suite.forward_flops(rnnkit.GRU(H, 2 * H)) == 2 * (3 * 2 * H * H + 3 * 2 * H * 2 * H)


def test_the_quick_suite_writes_its_tables(suite, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["suite.py", "--quick", "--only", "layers", "generation"])
    suite.main()
    payload = json.loads((tmp_path / "bench_quick.json").read_text())
    assert payload["sgemm_gflop_s"] > 0
    layers = {(r["layer"], r["mode"]) for r in payload["layers"]}
    assert ("rnnkit.Clockwork", "forward+backward") in layers and ("rnnkit.LSTM", "forward") in layers
    assert all(r["rnnkit_tok_s"] > 0 and r["rnnkit_of_peak"] >= 0 for r in payload["layers"])
    assert set(payload["generation"]["rows"]) == {"torch.nn.LSTM", "lstm stepper", "lstm model.step", "gru stepper"}
    md = (tmp_path / "bench_quick.md").read_text()
    assert "| rnnkit.MinLSTM | 16 | forward+backward |" in md and "| lstm stepper |" in md
