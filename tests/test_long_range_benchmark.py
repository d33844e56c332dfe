"""Smoke test of benchmarks/long_range.py: a few updates of every cell on a tiny config."""

import math

import pytest


@pytest.fixture
def long_range(benchmarks):
    return benchmarks("long_range")


@pytest.mark.parametrize("task", ["adding", "copy"])
def test_train_runs_every_cell(long_range, task):
    for cell in long_range.CELLS:
        result = long_range.train(task, 6, cell, hidden=8, batch=4, updates=3, lr=1e-2, clip=1.0, eval_every=2,
                                  test_size=5)  # fmt: skip
        assert [p["step"] for p in result["curve"]] == [0, 2, 3]
        assert result["params"] > 0 and result["steps_to_solve"] in (None, 2, 3)
        assert all(math.isfinite(v) for v in result["final"].values())


def test_markdown_table_marks_each_cells_best_learning_rate(long_range):
    rows = [
        {"task": "adding", "T": 100, "cell": "lstm", "lr": lr, "final": {"mse": mse}, "steps_to_solve": steps}
        for lr, mse, steps in [(1e-3, 0.16, None), (3e-3, 0.004, 900)]
    ]
    header, _, slow, fast = long_range.markdown({"rows": rows}).splitlines()
    assert header == "| task | T | memoryless | lr | lstm |"
    assert slow.startswith("| adding | 100 | 0.1") and slow.endswith(" | 0.001 | 0.1600 (not solved) |")
    assert fast.endswith(" | 0.003 | 0.0040* (solved at 900) |")
    assert long_range.best(rows, "adding", 100, "lstm") is rows[1]
