"""benchmarks/long_memory.py: the learning rate is chosen on validation (never on test), then three seeds."""

import argparse
import sys

import pytest


@pytest.fixture
def long_memory(benchmarks):
    return benchmarks("long_range", "long_memory")


def args(**kw):
    base = {"task": "adding", "T": "6", "variants": ["irnn", "lstm:forget_bias=chrono,t_max=8"], "optimizer": "sgd"}
    base |= {"lrs": [0.1, 0.01], "clip": 1.0, "hidden": 8, "batch": 4, "updates": 4, "eval_every": 2, "eval_size": 8}
    base |= {"reuse": False, "anneal": 0.0, "seeds": [0, 1, 2]}
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


def _fake(trained):
    def fake_train(task, T, spec, lr, seed, a):
        trained.append((lr, seed))
        final = {"valid_mse": 0.1 if lr == 0.1 else 0.05, "test_mse": 0.1}
        return {"failed": False, "final": final, "below_baseline_at": 2, "solved_at": None, "minutes": 0.0,
                "curve": [{"step": 0, **final}]}  # fmt: skip

    return fake_train


def test_seeds_split_a_sweep_over_processes(long_memory, monkeypatch):
    """--seeds 1,2 after --seeds 0: the second process takes seed 0's best rate from the file, trains only its
    own seeds, and the row ends with all three chosen."""
    trained = []
    monkeypatch.setattr(long_memory, "train", _fake(trained))
    with pytest.raises(SystemExit, match="no seed-0 run recorded"):
        long_memory.sweep(args(variants=["irnn"], seeds=[1, 2]))
    long_memory.sweep(args(variants=["irnn"], seeds=[0]))
    assert trained == [(0.1, 0), (0.01, 0)]
    trained.clear()
    long_memory.sweep(args(variants=["irnn"], seeds=[1, 2]))
    assert trained == [(0.01, 1), (0.01, 2)]
    chosen = sorted((r["lr"], r["seed"]) for r in long_memory.load()["runs"] if r["chosen"])
    assert chosen == [(0.01, 0), (0.01, 1), (0.01, 2)]
    trained.clear()
    long_memory.sweep(args(variants=["irnn"], lrs=[0.1], seeds=[2], updates=8))  # one rate: nothing to look up
    assert trained == [(0.1, 2)]


def test_anneal_falls_linearly_to_zero_over_the_last_fraction(long_memory):
    factor = long_memory.schedule(100, 0.25)
    assert [factor(s) for s in (1, 75, 80, 90, 100)] == [1.0, 1.0, 0.8, 0.4, 0.0]
    assert long_memory.schedule(100, 0.0)(100) == 1.0


def test_annealed_runs_are_their_own_row_and_older_runs_read_as_constant(long_memory):
    long_memory.sweep(args(variants=["irnn"], lrs=[0.1], anneal=0.5))
    payload = long_memory.load()
    assert {r["anneal"] for r in payload["runs"]} == {0.5}
    old = dict(payload["runs"][0], seed=0, anneal=None)
    del old["anneal"]  # recorded before --anneal existed
    payload["runs"].append(old)
    rows = long_memory.summary(payload)
    assert sorted(r["anneal"] for r in rows) == [0.0, 0.5]
    assert "| sgd, 4, annealed over the last 50% |" in long_memory.markdown(rows)


@pytest.mark.parametrize("flag", ["--anneal=1.5", "--anneal=x", "--seeds=3", "--seeds=0,,1", "--seeds=a"])
def test_bad_flags_exit_2_with_one_line(long_memory, monkeypatch, capsys, flag):
    monkeypatch.setattr(sys, "argv", ["long_memory.py", flag])
    with pytest.raises(SystemExit) as stop:
        long_memory.main()
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("long_memory.py: error: argument")
