"""benchmarks/long_memory.py: the learning rate is chosen on validation (never on test), then three seeds."""

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def long_memory(tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))  # the script imports its siblings common.py and long_range.py
        for name in ("long_range", "long_memory"):
            spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            mp.setitem(sys.modules, name, module)
            spec.loader.exec_module(module)
        mp.setattr(sys.modules["common"], "RESULTS", tmp_path)
        mp.setattr(module, "RESULTS", tmp_path)
        yield module


def args(**kw):
    base = {"task": "adding", "T": "6", "variants": ["irnn", "lstm:forget_bias=chrono,t_max=8"], "optimizer": "sgd"}
    base |= {"lrs": [0.1, 0.01], "clip": 1.0, "hidden": 8, "batch": 4, "updates": 4, "eval_every": 2, "eval_size": 8}
    base |= {"reuse": False}
    return argparse.Namespace(**(base | kw))


def test_a_tiny_sweep_runs_every_variant_and_seed(long_memory):
    long_memory.sweep(args())
    runs = long_memory.load()["runs"]
    assert len(runs) == 2 * (2 + 2)  # per variant: seed 0 at both rates, seeds 1 and 2 at the chosen one
    for variant in ("irnn", "lstm:forget_bias=chrono,t_max=8"):
        chosen = [r for r in runs if r["variant"] == variant and r.get("chosen")]
        assert sorted(r["seed"] for r in chosen) == [0, 1, 2] and len({r["lr"] for r in chosen}) == 1
        assert [p["step"] for p in chosen[0]["curve"]] == [0, 2, 4]
    rows = long_memory.summary(long_memory.load())
    assert [r["seeds"] for r in rows] == [3, 3]
    assert "| adding | 6 | `irnn` | sgd, 4 |" in long_memory.markdown(rows)


def test_the_rate_is_chosen_on_validation_not_test(long_memory, monkeypatch):
    """Rate 0.1 wins on test and 0.01 on validation: 0.01 is kept."""

    def fake_train(task, T, spec, lr, seed, a):
        valid, test = (0.05, 0.001) if lr == 0.1 else (0.01, 0.1)
        final = {"valid_mse": valid, "test_mse": test}
        return {"failed": False, "final": final, "below_baseline_at": 2, "solved_at": None, "minutes": 0.0,
                "curve": [{"step": 0, **final}]}  # fmt: skip

    monkeypatch.setattr(long_memory, "train", fake_train)
    long_memory.sweep(args(variants=["irnn"]))
    chosen = [r for r in long_memory.load()["runs"] if r.get("chosen")]
    assert {r["lr"] for r in chosen} == {0.01} and sorted(r["seed"] for r in chosen) == [0, 1, 2]


def test_a_diverging_rate_is_never_chosen(long_memory, monkeypatch):
    def fake_train(task, T, spec, lr, seed, a):
        failed = lr == 0.1  # stopped at a non-finite loss, with the last (good-looking) scores it had
        final = {"valid_mse": 0.0 if failed else 0.2, "test_mse": 0.2}
        return {"failed": failed, "final": final, "below_baseline_at": None, "solved_at": None, "minutes": 0.0,
                "curve": [{"step": 0, **final}]}  # fmt: skip

    monkeypatch.setattr(long_memory, "train", fake_train)
    long_memory.sweep(args(variants=["irnn"]))
    assert {r["lr"] for r in long_memory.load()["runs"] if r.get("chosen")} == {0.01}


def test_reuse_trains_only_what_is_missing_and_moves_the_choice(long_memory, monkeypatch):
    """A sweep at 0.1 alone, then one at 0.1 and 0.01 with --reuse: seed 0 at 0.1 is read back, not trained; 0.01
    wins on validation, so seeds 1 and 2 train at it and the runs at 0.1 are no longer the chosen ones."""
    trained = []

    def fake_train(task, T, spec, lr, seed, a):
        trained.append((lr, seed))
        final = {"valid_mse": 0.1 if lr == 0.1 else 0.05, "test_mse": 0.1}
        return {"failed": False, "final": final, "below_baseline_at": 2, "solved_at": None, "minutes": 0.0,
                "curve": [{"step": 0, **final}]}  # fmt: skip

    monkeypatch.setattr(long_memory, "train", fake_train)
    long_memory.sweep(args(variants=["irnn"], lrs=[0.1]))
    assert trained == [(0.1, 0), (0.1, 1), (0.1, 2)]
    trained.clear()
    long_memory.sweep(args(variants=["irnn"], lrs=[0.1, 0.01], reuse=True))
    assert trained == [(0.01, 0), (0.01, 1), (0.01, 2)]
    runs = long_memory.load()["runs"]
    assert sorted((r["lr"], r["seed"]) for r in runs if r["chosen"]) == [(0.01, 0), (0.01, 1), (0.01, 2)]
    assert len(runs) == 6
    trained.clear()
    long_memory.sweep(args(variants=["irnn"], lrs=[0.1, 0.01], reuse=True, hidden=16))  # other settings: train
    assert len(trained) == 4
