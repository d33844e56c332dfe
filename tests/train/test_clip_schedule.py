"""Gradient clipping, the learning-rate schedule (step decay, reduce on plateau) and early stopping."""

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.config import build
from rnnkit.tasks import runs
from rnnkit.tasks.lm import LanguageModel
from rnnkit.tasks.lm_run import SECTIONS, train_lm
from rnnkit.train import Trainer
from rnnkit.train.config import TrainConfig
from rnnkit.train.optim import scheduled_lr


def write_corpus(path: Path, n: int = 244, seed: int = 1) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(rng.choice("abcde fg\n") for _ in range(n)), encoding="utf-8")
    return path


def make_cfg(tmp: Path, *, valid: bool = False, **options) -> dict:
    """A char LM config with 12 steps per epoch; ``options`` are any field of the three sections."""
    values = {
        "data": {"train": str(write_corpus(tmp / "train.txt")), "level": "char", "eval_batch_size": 2},
        "model": {"hidden": 8, "layers": 1},
        "train": {"batch_size": 4, "bptt": 5, "progress": False, "log_every": 1},
    }
    if valid:
        values["data"]["valid"] = str(write_corpus(tmp / "valid.txt", n=60, seed=2))
    for key, value in options.items():
        (section,) = [s for s, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
        values[section][key] = value
    return {name: build(cls, (values[name], "test")) for name, cls in SECTIONS.items()}


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def watch_applied_gradients(monkeypatch) -> list[list[torch.Tensor]]:
    """The gradients the optimizer applies, one list per step, recorded by a step pre-hook."""
    applied: list[list[torch.Tensor]] = []

    class Watched(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

            def hook(optimizer, args, kwargs):
                grads = [p.grad.clone() for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
                applied.append(grads)

            self.optimizer.register_step_pre_hook(hook)

    monkeypatch.setattr(runs, "Trainer", Watched)
    return applied


def total_norm(grads: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


def test_tiny_clip_norm_clips_every_step_to_exactly_that_norm(tmp_path, monkeypatch):
    applied = watch_applied_gradients(monkeypatch)
    train_lm(make_cfg(tmp_path, max_steps=6, clip_norm=1e-3, log_every=2), tmp_path / "run")
    assert len(applied) == 6
    for grads in applied:
        assert total_norm(grads) == pytest.approx(1e-3, rel=1e-4)
    lines = [r for r in records(tmp_path / "run") if "loss" in r]
    assert [r["step"] for r in lines] == [2, 4, 6]
    assert all(r["clipped_frac"] == 1.0 and r["grad_norm"] > 1e-2 for r in lines)  # logged: the norm before


def test_large_clip_norm_leaves_the_gradient_alone(tmp_path, monkeypatch):
    applied = watch_applied_gradients(monkeypatch)
    train_lm(make_cfg(tmp_path, max_steps=4, clip_norm=1e3), tmp_path / "run")
    lines = [r for r in records(tmp_path / "run") if "loss" in r]
    assert all(r["clipped_frac"] == 0.0 for r in lines)
    for grads, line in zip(applied, lines, strict=True):
        assert total_norm(grads) == pytest.approx(line["grad_norm"], rel=1e-4)
        assert total_norm(grads) > 1e-2


def test_clip_value_bounds_every_entry(tmp_path, monkeypatch):
    applied = watch_applied_gradients(monkeypatch)
    train_lm(make_cfg(tmp_path, max_steps=3, clip_norm=None, clip_value=1e-4), tmp_path / "run")
    assert len(applied) == 3
    for grads in applied:
        largest = max(float(g.abs().max()) for g in grads)
        assert largest == pytest.approx(1e-4, rel=1e-6)  # bounded, and reached by the clipped entries
        assert sum(int((g.abs() < 1e-4 - 1e-9).sum()) for g in grads) > 0  # small entries are kept


def test_scheduled_lr_zaremba():
    cfg = TrainConfig(optimizer="sgd", lr=1.0, lr_decay=0.5, decay_after=4)
    assert [scheduled_lr(cfg, e) for e in range(7)] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    assert scheduled_lr(cfg, 5, plateau_scale=0.1) == pytest.approx(0.025)
    assert [scheduled_lr(TrainConfig(lr=0.3), e) for e in range(3)] == [0.3, 0.3, 0.3]  # no decay by default
    ptb = TrainConfig(optimizer="sgd", lr=20.0, lr_decay=0.5, decay_after=4)  # configs/lm/ptb_small.toml
    assert [scheduled_lr(ptb, e) for e in range(3, 6)] == [20.0, 10.0, 5.0]


def test_the_trainer_follows_the_schedule(tmp_path):
    cfg = make_cfg(tmp_path, epochs=3, optimizer="sgd", lr=0.1, lr_decay=0.5, decay_after=1, log_every=6)
    summary = train_lm(cfg, tmp_path / "run")
    assert summary["reason"] == "done" and summary["step"] == 36
    lines = records(tmp_path / "run")
    assert [r["lr"] for r in lines if "loss" in r] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    assert [r["lr"] for r in lines if "loss" not in r] == [0.1, 0.05, 0.025]


def fake_validation(monkeypatch, losses: list[float]) -> list[dict[str, torch.Tensor]]:
    """LanguageModel.evaluate returns ``losses`` in turn; returns the weights seen at each evaluation."""
    seen: list[dict[str, torch.Tensor]] = []

    def evaluate(self, batches):
        seen.append({k: v.clone() for k, v in self.state_dict().items()})
        loss = losses[len(seen) - 1]
        return self.metrics(loss) | {"count": 100}

    monkeypatch.setattr(LanguageModel, "evaluate", evaluate)
    return seen


@pytest.mark.parametrize(
    ("patience", "losses", "lrs", "scale"),
    [
        (0, [1.0, 2.0, 0.5, 3.0], [0.1, 0.1, 0.05, 0.05], 0.25),
        (1, [1.0, 2.0, 3.0, 4.0, 5.0], [0.1, 0.1, 0.1, 0.05, 0.05], 0.25),
    ],
)
def test_reduce_on_plateau(tmp_path, monkeypatch, patience, losses, lrs, scale):
    fake_validation(monkeypatch, losses)
    cfg = make_cfg(tmp_path, valid=True, epochs=len(losses), lr=0.1, plateau_factor=0.5, plateau_patience=patience)
    train_lm(cfg, tmp_path / "run")
    epochs = [r for r in records(tmp_path / "run") if "valid_loss" in r]
    assert [r["valid_loss"] for r in epochs] == losses
    assert [r["lr"] for r in epochs] == lrs  # the optimizer's learning rate during each epoch
    meta = json.loads((tmp_path / "run" / "checkpoint" / "trainer.json").read_text())
    assert meta["plateau_scale"] == scale


def test_early_stop_after_epochs_without_improvement_keeps_the_best_weights(tmp_path, monkeypatch, capsys):
    seen = fake_validation(monkeypatch, [1.0, 0.8, 0.9, 0.85, 0.7, 0.6])
    summary = train_lm(make_cfg(tmp_path, valid=True, epochs=6, early_stop=2), tmp_path / "run")
    assert summary["reason"] == "early stop: 2 epochs without a better validation loss"
    assert (summary["epoch"], summary["step"], summary["best_valid_loss"]) == (4, 48, 0.8)
    assert len(seen) == 4
    assert "epoch 2: valid loss 0.8" in capsys.readouterr().err
    best = load_file(str(tmp_path / "run" / "best.safetensors"))
    last = load_file(str(tmp_path / "run" / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(best[k], seen[1][k]) for k in best)  # the weights of epoch 2
    assert all(torch.equal(last[k], seen[3][k]) for k in last)
    assert any(not torch.equal(best[k], last[k]) for k in best)


def test_early_stop_on_real_validation_with_a_diverging_lr(tmp_path):
    """SGD with lr 1000 and no clipping: the validation loss jumps around; the run stops at the first
    epoch that ends two epochs in a row without a new best, and best_valid_loss is the best seen."""
    cfg = make_cfg(
        tmp_path, valid=True, epochs=20, early_stop=2, optimizer="sgd", lr=1000.0, clip_norm=None, max_bad_steps=100
    )
    summary = train_lm(cfg, tmp_path / "run")
    valid = [r["valid_loss"] for r in records(tmp_path / "run") if "valid_loss" in r]
    best, bad, expected_epochs = float("inf"), 0, None
    for epoch, value in enumerate(valid, 1):
        best, bad = (value, 0) if value < best else (best, bad + 1)
        if bad >= 2:
            expected_epochs = epoch
            break
    assert expected_epochs is not None and summary["reason"].startswith("early stop")
    assert summary["epoch"] == len(valid) == expected_epochs < 20
    assert summary["best_valid_loss"] == pytest.approx(min(valid), rel=1e-6)


# -- without validation data: "the last weights count as the best and nothing is scheduled on plateau" ----------


def test_without_validation_the_best_weights_are_the_last(tmp_path):
    summary = train_lm(make_cfg(tmp_path, epochs=2), tmp_path / "run")
    assert summary["reason"] == "done"
    best = load_file(str(tmp_path / "run" / "best.safetensors"))
    last = load_file(str(tmp_path / "run" / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(best[k], last[k]) for k in best), "best.safetensors holds epoch 1's weights"


def test_without_validation_there_is_no_early_stop_or_plateau(tmp_path):
    cfg = make_cfg(tmp_path, epochs=3, early_stop=1, plateau_factor=0.5, lr=0.01)
    summary = train_lm(cfg, tmp_path / "run")
    assert (summary["reason"], summary["epoch"]) == ("done", 3)
    assert [r["lr"] for r in records(tmp_path / "run") if "valid_loss" not in r and "loss" not in r] == [0.01] * 3
    assert json.loads((tmp_path / "run" / "checkpoint" / "trainer.json").read_text())["plateau_scale"] == 1.0
