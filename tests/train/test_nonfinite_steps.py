"""Non-finite losses: the step is skipped (weights untouched), reported and counted; too many in a row stop
the run with the last checkpoint intact."""

import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnkit.cli
from rnnkit.tasks import runs
from rnnkit.tasks.base import LossOutput
from rnnkit.train import Trainer


def write_corpus(path: Path, n: int = 244, seed: int = 1) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(rng.choice("abcde fg\n") for _ in range(n)), encoding="utf-8")
    return path


def train_argv(tmp: Path, out: Path, *extra: str) -> list[str]:
    """12 steps per epoch, Adam."""
    argv = ["lm", "train", "--train", str(write_corpus(tmp / "train.txt")), "--level", "char", "--out", str(out)]
    argv += ["--hidden", "8", "--layers", "1", "--batch-size", "4", "--bptt", "5", "--no-progress", "--lr", "0.01"]
    return argv + list(extra)


class Recorder:
    """Installed in the next Trainer: makes the loss of the chosen (1-based) steps NaN, and records the
    weights at the start of every training step and each step's (summed loss, count)."""

    def __init__(self, monkeypatch, nan_steps, on_first_nan=None, gradient_only=False):
        self.nan_steps, self.on_first_nan = set(nan_steps), on_first_nan
        self.weights: dict[int, list[torch.Tensor]] = {}  # step s -> weights before step s
        self.losses: dict[int, tuple[float, int]] = {}
        recorder = self

        class RecordingTrainer(Trainer):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                recorder.trainer = self
                loss = self.task.loss

                def wrapped(batch, state=None):
                    out = loss(batch, state)
                    if not self.task.training:
                        return out
                    step = self.step + 1
                    recorder.weights[step] = [p.detach().clone() for p in self.task.parameters()]
                    recorder.losses[step] = (out.loss.item(), int(out.count))
                    if step in recorder.nan_steps:
                        if recorder.on_first_nan is not None and step == min(recorder.nan_steps):
                            recorder.on_first_nan()
                        if gradient_only:  # a finite loss whose gradient is NaN: sqrt'(0) = inf, times 0
                            zero = sum(p.sum() for p in self.task.parameters()) * 0
                            return LossOutput(out.loss + torch.sqrt(zero), out.count, out.state)
                        return LossOutput(out.loss * float("nan"), out.count, out.state)
                    return out

                self.task.loss = wrapped

        monkeypatch.setattr(runs, "Trainer", RecordingTrainer)

    def changed(self, step: int) -> bool:
        """Whether ``step`` changed the weights."""
        before, after = self.weights[step], self.weights[step + 1]
        return any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_nonfinite_steps_are_skipped_reported_and_counted(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    rec = Recorder(monkeypatch, nan_steps={3, 7, 8})
    assert rnnkit.cli.main(train_argv(tmp_path, out, "--max-steps", "11", "--log-every", "5")) == 0
    err = capsys.readouterr().err

    for step in (3, 7, 8):
        assert not rec.changed(step), f"the skipped step {step} changed the weights"
        assert f"step {step}: non-finite loss or gradient; the step is skipped" in err
    for step in (1, 2, 4, 5, 6, 9, 10):
        assert rec.changed(step), f"step {step} should have changed the weights"
    assert "step 4: non-finite" not in err

    lines = [r for r in records(out) if "loss" in r]
    assert [(r["step"], r["skipped"]) for r in lines] == [(5, 1), (10, 2)]
    assert lines[0]["lr"] == 0.01
    # Adam counted only the 8 steps it took
    trainer_state = load_file(str(out / "checkpoint" / "trainer.safetensors"))
    assert float(trainer_state["optimizer.0.step"]) == 8
    assert json.loads((out / "checkpoint" / "trainer.json").read_text())["step"] == 11


def test_a_finite_loss_with_a_nan_gradient_is_skipped_too(tmp_path, monkeypatch, capsys):
    """The check reads the gradient (through its norm), not only the loss."""
    out = tmp_path / "run"
    rec = Recorder(monkeypatch, nan_steps={3}, gradient_only=True)
    assert rnnkit.cli.main(train_argv(tmp_path, out, "--max-steps", "5")) == 0
    assert math.isfinite(rec.losses[3][0])
    assert "step 3: non-finite loss or gradient; the step is skipped" in capsys.readouterr().err
    assert not rec.changed(3) and rec.changed(2) and rec.changed(4)


def test_skipped_steps_do_not_poison_the_logged_loss(tmp_path, monkeypatch):
    """The logged loss and gradient norm of a window with a skipped step are those of its good steps."""
    out = tmp_path / "run"
    rec = Recorder(monkeypatch, nan_steps={3})
    assert rnnkit.cli.main(train_argv(tmp_path, out, "--max-steps", "5", "--log-every", "5")) == 0
    (line,) = [r for r in records(out) if "loss" in r]
    assert line["skipped"] == 1
    good = [rec.losses[s] for s in (1, 2, 4, 5)]
    expected = sum(loss for loss, _ in good) / sum(count for _, count in good)
    assert isinstance(line["loss"], float) and math.isfinite(line["loss"]), line
    assert line["loss"] == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(line["grad_norm"]) and line["grad_norm"] > 0
    # and every line of metrics.jsonl is strict JSON (no NaN tokens)
    constants: list[str] = []
    for text in (out / "metrics.jsonl").read_text().splitlines():
        json.loads(text, parse_constant=constants.append)
    assert constants == [], f"metrics.jsonl holds {constants}"


def test_too_many_nonfinite_steps_in_a_row_stop_with_the_checkpoint_intact(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    saved: dict[str, bytes] = {}

    def snapshot():  # at the first bad step: the checkpoint of the end of epoch 1 (step 12)
        files = [out / "config.json", out / "vocab.json", out / "best.safetensors", *(out / "checkpoint").iterdir()]
        saved.update({p.name: p.read_bytes() for p in files})

    Recorder(monkeypatch, nan_steps=set(range(15, 100)), on_first_nan=snapshot)
    argv = train_argv(tmp_path, out, "--epochs", "5", "--max-bad-steps", "3")
    assert rnnkit.cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rnnkit: error: stopped at step 17 after 3 non-finite losses or gradients in a row")
    assert str(out) in err[-1] and "--lr" in err[-1]
    assert [line for line in err if "non-finite loss or gradient" in line and line.startswith("step ")] == [
        f"step {s}: non-finite loss or gradient; the step is skipped" for s in (15, 16, 17)
    ]

    assert len(saved) == 6
    files = [out / "config.json", out / "vocab.json", out / "best.safetensors", *(out / "checkpoint").iterdir()]
    assert {p.name: p.read_bytes() for p in files} == saved
    assert json.loads((out / "checkpoint" / "trainer.json").read_text())["step"] == 12
    assert not (out / "checkpoint.tmp").exists() and not (out / "checkpoint.old").exists()


def test_a_good_step_resets_the_count_of_bad_ones(tmp_path, monkeypatch):
    out = tmp_path / "run"
    Recorder(monkeypatch, nan_steps={2, 3, 5, 6, 8, 9})  # never 3 in a row
    assert rnnkit.cli.main(train_argv(tmp_path, out, "--max-steps", "10", "--max-bad-steps", "3")) == 0
    assert json.loads((out / "checkpoint" / "trainer.json").read_text())["step"] == 10
