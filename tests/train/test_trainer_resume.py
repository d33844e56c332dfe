"""Exact resume: a stopped run continued with ``--resume`` ends bit for bit where an uninterrupted run ends.

The corpus has 244 characters: with ``--batch-size 4 --bptt 5`` an epoch is 12 steps, so a stop at step 20
is in the middle of epoch 2 (with a carried TBPTT state) and the continuation to step 40 crosses the ends
of epochs 2 and 3. Dropout makes the result depend on the restored random number generator.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnkit.cli
import rnnkit.cli.lm
from rnnkit.tasks import runs
from rnnkit.train import Trainer, loop

ROOT = Path(__file__).resolve().parents[2]


def write_corpus(path: Path, n: int = 244, seed: int = 1) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(rng.choice("abcde fg\n") for _ in range(n)), encoding="utf-8")
    return path


SCENARIOS = {
    "adam-dropout-valid": [
        "--cell", "lstm", "--layers", "2", "--hidden", "12", "--dropout", "0.3",
        "--optimizer", "adam", "--lr", "0.01", "--eval-batch-size", "2",
    ],
    "sgd-decay-variational": [
        "--cell", "gru", "--layers", "2", "--hidden", "12", "--dropout", "0.3", "--variational",
        "--optimizer", "sgd", "--lr", "0.5", "--momentum", "0.9", "--lr-decay", "0.5", "--decay-after", "1",
    ],
    "awd-regularisers": [  # every AWD-LSTM regulariser draws from the saved RNG: resume must replay them all
        "--cell", "lstm", "--layers", "3", "--hidden", "12", "--embed", "8", "--tie-weights", "--variational",
        "--dropout", "0.4", "--dropout-input", "0.3", "--dropout-hidden", "0.2", "--embed-dropout", "0.1",
        "--weight-drop", "0.5", "--ar", "2", "--tar", "1", "--optimizer", "sgd", "--lr", "0.5",
    ],
    "ntasgd-valid": [  # NT-ASGD: at this rate validation worsens at the check of step 24 and averaging starts
        "--cell", "lstm", "--layers", "2", "--hidden", "12", "--dropout", "0.3",
        "--optimizer", "sgd", "--lr", "20", "--asgd-nonmono", "1",
    ],
}  # fmt: skip


def train_args(tmp: Path, out: Path, scenario: str, max_steps: int) -> list[str]:
    train = write_corpus(tmp / "train.txt")
    args = ["lm", "train", "--train", str(train), "--level", "char", "--out", str(out)]
    if scenario.endswith("-valid"):
        args += ["--valid", str(write_corpus(tmp / "valid.txt", n=60, seed=2))]
    args += ["--batch-size", "4", "--bptt", "5", "--epochs", "10", "--log-every", "4", "--no-progress"]
    return args + SCENARIOS[scenario] + ["--max-steps", str(max_steps)]


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = tensors(a), tensors(b)
    assert sorted(ta) == sorted(tb)
    for key in ta:
        assert torch.equal(ta[key], tb[key]), f"{key} differs between {a} and {b}"


def metrics(run: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        line.pop("tok_s", None)  # the wall-clock values
        line.pop("time_s", None)
    return lines


def assert_same_run(a: Path, b: Path, partial_window: int | None = None) -> None:
    """Same weights, optimizer state, RNG, carried state, counters, best weights and metrics.

    ``partial_window``: the step of the metrics line whose logging window the stop cut in two (it covers
    only the steps after the resume); it is left out of the comparison.
    """
    assert_same_tensors(a / "checkpoint" / "model.safetensors", b / "checkpoint" / "model.safetensors")
    assert_same_tensors(a / "checkpoint" / "trainer.safetensors", b / "checkpoint" / "trainer.safetensors")
    meta_a, meta_b = (json.loads((r / "checkpoint" / "trainer.json").read_text()) for r in (a, b))
    seconds = meta_a.pop("seconds")  # training time, counted across the resume
    assert meta_b.pop("seconds") > 0 and meta_a == meta_b
    times = [json.loads(line).get("time_s") for line in (a / "metrics.jsonl").read_text().splitlines()]
    times = [t for t in times if t is not None]  # one a validation (or epoch end): never back to 0 on resume
    assert times and times == sorted(times) and times[-1] <= seconds + 0.1
    assert_same_tensors(a / "best.safetensors", b / "best.safetensors")
    ma, mb = metrics(a), metrics(b)
    if partial_window is not None:
        ma, mb = ([m for m in ms if not (m["step"] == partial_window and "loss" in m)] for ms in (ma, mb))
    assert len(ma) > 10 and ma == mb


_BASELINES: dict[str, Path] = {}


@pytest.fixture
def baseline(tmp_path_factory):
    """One uninterrupted 40-step run per scenario, shared by the tests of this module."""

    def get(scenario: str) -> Path:
        if scenario not in _BASELINES:
            tmp = tmp_path_factory.mktemp(f"baseline-{scenario}")
            out = tmp / "run"
            assert rnnkit.cli.main(train_args(tmp, out, scenario, 40)) == 0
            _BASELINES[scenario] = out
        return _BASELINES[scenario]

    return get


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, baseline, scenario, capsys):
    base = baseline(scenario)
    out = tmp_path / "run"
    assert rnnkit.cli.main(train_args(tmp_path, out, scenario, 20)) == 0
    assert "reached --max-steps 20" in capsys.readouterr().err

    meta = json.loads((out / "checkpoint" / "trainer.json").read_text())
    assert (meta["step"], meta["epoch"], meta["position"]) == (20, 1, 8)  # mid-epoch 2
    args = SCENARIOS[scenario]
    layers = int(args[args.index("--layers") + 1])
    assert meta["carry"] == (2 if "lstm" in args else 1) * layers  # (h, c) or h of each layer
    saved = tensors(out / "checkpoint" / "trainer.safetensors")
    assert {"rng.0", "carry.0.0"} <= set(saved)
    assert saved["carry.0.0"].abs().sum() > 0  # a real state, not zeros

    # the weights at step 20 are not those at 40: the comparison below is not vacuous
    mid = tensors(out / "checkpoint" / "model.safetensors")
    end = tensors(base / "checkpoint" / "model.safetensors")
    assert any(not torch.equal(mid[k], end[k]) for k in mid)

    resume = ["lm", "train", "--out", str(out), "--resume", "--max-steps", "40", "--no-progress"]
    assert rnnkit.cli.main(resume) == 0
    meta = json.loads((out / "checkpoint" / "trainer.json").read_text())
    assert (meta["step"], meta["epoch"], meta["position"]) == (40, 3, 4)  # crossed two epoch ends
    assert_same_run(out, base)


def test_resume_with_the_weight_average_running_is_exact(tmp_path, baseline, capsys):
    """A stop after NT-ASGD has started (step 24) keeps the average and the validation history: the continuation
    ends as the uninterrupted run, whose best weights are the average (not the last weights)."""
    base = baseline("ntasgd-valid")
    meta = json.loads((base / "checkpoint" / "trainer.json").read_text())
    assert meta["average"] == {"steps": 17, "start": 24} and len(meta["history"]) == 3
    out = tmp_path / "run"
    assert rnnkit.cli.main(train_args(tmp_path, out, "ntasgd-valid", 30)) == 0
    assert "averaging the weights from step 24" in capsys.readouterr().err
    saved = json.loads((out / "checkpoint" / "trainer.json").read_text())
    assert saved["average"] == {"steps": 7, "start": 24}
    resume = ["lm", "train", "--out", str(out), "--resume", "--max-steps", "40", "--no-progress"]
    assert rnnkit.cli.main(resume) == 0
    assert_same_run(out, base, partial_window=32)
    last, best = tensors(base / "checkpoint" / "model.safetensors"), tensors(base / "best.safetensors")
    averaged = tensors(base / "checkpoint" / "trainer.safetensors")
    assert any(not torch.equal(last[k], best[k]) for k in last)
    assert any(k.startswith("average.") for k in averaged)


def test_variable_bptt_resumes_exactly_and_scales_each_chunks_rate(tmp_path, capsys):
    """Chunks of random length (AWD-LSTM): each step's learning rate is the epoch's times length / bptt, and a
    run stopped mid-epoch continues on the same cut."""
    from rnnkit.data.batching import StreamBatches, VariableStream

    flags = ["--variable-bptt", "--log-every", "1"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert rnnkit.cli.main([*train_args(tmp_path, whole, "sgd-decay-variational", 40), *flags]) == 0
    assert rnnkit.cli.main([*train_args(tmp_path, parts, "sgd-decay-variational", 17), *flags]) == 0
    resume = ["lm", "train", "--out", str(parts), "--resume", "--max-steps", "40", "--no-progress"]
    assert rnnkit.cli.main(resume) == 0
    assert_same_run(parts, whole)
    steps = [m for m in metrics(whole) if "loss" in m][:5]
    text = (tmp_path / "train.txt").read_text()
    ids = torch.tensor([sorted(set(text)).index(c) for c in text])  # any ids: only the lengths matter here
    lengths = VariableStream(StreamBatches(ids, 4, 5), seed=0).lengths(0)
    assert [m["lr"] for m in steps] == pytest.approx([0.5 * n / 5 for n in lengths[:5]])


def _stop_by_signal_at(monkeypatch, step: int, signum: int) -> None:
    """The next trainer sets its signal flag (as its SIGTERM handler would) during the forward of ``step``."""

    class SignalledTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            loss = self.task.loss

            def wrapped(batch, state=None):
                if self.task.training and self.step + 1 == step:
                    self._signal = signum
                return loss(batch, state)

            self.task.loss = wrapped

    monkeypatch.setattr(runs, "Trainer", SignalledTrainer)


def test_stop_by_signal_saves_a_checkpoint_and_resumes_exactly(tmp_path, baseline, monkeypatch, capsys):
    scenario = "adam-dropout-valid"
    base = baseline(scenario)
    out = tmp_path / "run"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _stop_by_signal_at(monkeypatch, 15, signal.SIGTERM)

    assert rnnkit.cli.main(train_args(tmp_path, out, scenario, 40)) == 130
    err = capsys.readouterr().err
    assert "stopped at step 15 (interrupted by SIGTERM)" in err
    assert f"rnnkit lm train --out {out} --resume" in err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored
    meta = json.loads((out / "checkpoint" / "trainer.json").read_text())
    assert (meta["step"], meta["epoch"], meta["position"]) == (15, 1, 3)
    assert (out / "best.safetensors").is_file()

    monkeypatch.setattr(runs, "Trainer", Trainer)
    assert rnnkit.cli.main(["lm", "train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert_same_run(out, base, partial_window=16)  # --log-every 4: the window of steps 13-16 was cut


def test_ctrl_c_on_a_real_process_saves_and_resumes(tmp_path, capsys):
    """SIGINT to ``python -m rnnkit lm train``: exit 130, says how to resume, and the resume completes."""
    train = write_corpus(tmp_path / "train.txt", n=4000)
    out = tmp_path / "run"
    common = ["--hidden", "8", "--layers", "1", "--batch-size", "4", "--bptt", "5", "--seed", "3"]
    args = ["lm", "train", "--train", str(train), "--level", "char", "--out", str(out), *common]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", *args, "--epochs", "1000", "--log-every", "1", "--no-progress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "metrics.jsonl").exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "training did not start within 60 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted by SIGINT" in err and "Traceback" not in err
    assert f"continue with rnnkit lm train --out {out} --resume" in err
    stopped = json.loads((out / "checkpoint" / "trainer.json").read_text())["step"]
    assert stopped >= 1 and (out / "checkpoint" / "model.safetensors").is_file()

    target = stopped + 3
    resume = ["lm", "train", "--out", str(out), "--resume", "--max-steps", str(target), "--no-progress"]
    assert rnnkit.cli.main(resume) == 0
    assert f"reached --max-steps {target}" in capsys.readouterr().err
    assert json.loads((out / "checkpoint" / "trainer.json").read_text())["step"] == target
    assert [m["step"] for m in metrics(out) if "loss" in m] == list(range(1, target + 1))

    # and the continued run equals one that was never interrupted
    straight = tmp_path / "straight"
    argv = ["lm", "train", "--train", str(train), "--level", "char", "--out", str(straight), *common]
    assert rnnkit.cli.main([*argv, "--max-steps", str(target), "--no-progress"]) == 0
    assert_same_tensors(out / "checkpoint" / "model.safetensors", straight / "checkpoint" / "model.safetensors")


def test_max_minutes_stops_with_a_checkpoint_and_resumes_exactly(tmp_path, baseline, monkeypatch, capsys):
    """A fake clock jumps past --max-minutes during step 5: the run stops after it and resumes exactly."""
    scenario = "sgd-decay-variational"
    base = baseline(scenario)
    clock = [1000.0]

    class FakeTime:
        @staticmethod
        def monotonic():
            return clock[0]

    class LateTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            loss = self.task.loss

            def wrapped(batch, state=None):
                if self.task.training and self.step + 1 == 5:
                    clock[0] += 2 * 60 + 1
                return loss(batch, state)

            self.task.loss = wrapped

    monkeypatch.setattr(loop, "time", FakeTime)
    monkeypatch.setattr(runs, "Trainer", LateTrainer)
    out = tmp_path / "run"
    assert rnnkit.cli.main([*train_args(tmp_path, out, scenario, 40), "--max-minutes", "2"]) == 0
    assert "stopped at step 5 (reached --max-minutes 2.0)" in capsys.readouterr().err
    assert json.loads((out / "checkpoint" / "trainer.json").read_text())["step"] == 5

    monkeypatch.setattr(runs, "Trainer", Trainer)
    assert rnnkit.cli.main(["lm", "train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert_same_run(out, base, partial_window=8)


def test_a_second_signal_stops_at_once():
    class Stub:
        _signal = None

    trainer = Stub()
    handler = loop._Signals(trainer)
    handler._handle(signal.SIGINT, None)
    assert trainer._signal == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        handler._handle(signal.SIGINT, None)


def test_a_second_ctrl_c_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(rnnkit.cli.lm, "train", interrupted)
    assert rnnkit.cli.main(["lm", "train", "--out", "unused"]) == 130
    assert capsys.readouterr().err == "rnnkit: interrupted\n"
