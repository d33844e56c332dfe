"""benchmarks/clockwork_waveform.py: each model and size reports the learning rate whose median over the seeds
is lowest, among the rates run on the most seeds, and runs at several rates add up in one results file."""

import sys

import pytest
import torch


@pytest.fixture
def clockwork(benchmarks):
    return benchmarks("clockwork_waveform")


def run(model, lr, seed, nmse):
    return {"model": model, "target_params": 100, "params": 97, "hidden": 8, "lr": lr, "seed": seed, "nmse": nmse}


def test_the_rate_with_the_lowest_median_over_the_most_seeds_is_reported(clockwork):
    setting = {"iters": 10}
    target = torch.zeros(4)
    nmse = {(0.03, 0): 0.5, (0.03, 1): 0.6, (0.03, 2): 0.9, (0.1, 0): 0.4, (0.1, 1): 0.7, (0.1, 2): 0.8}
    for (lr, seed), value in nmse.items():
        sections = clockwork.record("cw", "chord", setting, target, run("rnn", lr, seed, value), torch.zeros(4))
    sections = clockwork.record("cw", "chord", setting, target, run("rnn", 0.001, 0, 0.01), None)  # one seed only
    (row,) = sections["chord"]["table"]
    assert (row["lr"], row["nmse_median"], row["seeds"]) == (0.03, 0.6, [0, 1, 2])
    assert row["lrs_tried"] == [0.001, 0.03, 0.1]
    assert len(sections["chord"]["runs"]) == 7 and "rnn/0.1/2" in sections["chord"]["waveforms"]
    table = clockwork.markdown(sections["chord"] | {"setting": {"target": "chord"}})
    assert "| rnn | 0.6 (97, lr 0.03) | **0.6** | 0.001, 0.03, 0.1 | 0.46 |" in table
    sections = clockwork.record("cw", "chord", {"iters": 20}, target, run("rnn", 0.1, 0, 0.3), None)
    assert len(sections["chord"]["runs"]) == 1  # another budget starts the target afresh


@pytest.mark.parametrize(("text", "message"), [("a,b", "expected learning rates"), ("nan", "finite"), ("0", "above 0")])
def test_learning_rates_that_are_not_usable_are_refused_with_exit_2(clockwork, monkeypatch, capsys, text, message):
    monkeypatch.setattr(sys, "argv", ["clockwork_waveform.py", "--lrs", text])
    with pytest.raises(SystemExit) as exit_:
        clockwork.main()
    assert exit_.value.code == 2 and message in capsys.readouterr().err
