"""Data parallel: two CPU processes under torchrun take the same steps as one process on the global batch."""

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed
from safetensors.torch import load_file

import rnnkit.cli

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 24 steps (two epochs) under torchrun with 2 processes and in this process."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    if not TORCHRUN.exists():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    rng = random.Random(1)
    train = tmp_path / "train.txt"
    train.write_text("".join(rng.choice("abcde fg\n") for _ in range(244)), encoding="utf-8")
    valid = tmp_path / "valid.txt"
    valid.write_text("".join(rng.choice("abcde fg\n") for _ in range(60)), encoding="utf-8")
    flags = ["--train", str(train), "--valid", str(valid), "--eval-batch-size", "2", "--level", "char"]
    flags += ["--hidden", "8", "--layers", "2", "--batch-size", "4", "--bptt", "5", "--epochs", "2"]
    flags += ["--log-every", "4", "--no-progress", "--lr", "0.01"]  # 24 steps, across an epoch end

    ddp = tmp_path / "ddp"
    port = free_port()
    launcher = [str(TORCHRUN), "--nnodes", "1", "--nproc-per-node", "2", "--rdzv-backend", "c10d"]
    launcher += ["--rdzv-endpoint", f"localhost:{port}"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launcher, "-m", "rnnkit", "lm", "train", *flags, "--out", str(ddp)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stderr and "finished (done) after 24 steps" in done.stderr

    single = tmp_path / "single"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert rnnkit.cli.main(["lm", "train", *flags, "--out", str(single)]) == 0
    finally:
        torch.set_num_threads(threads)
    return ddp, single


def logs(ddp: Path, single: Path) -> tuple[list[dict], list[dict]]:
    ddp_log = [json.loads(line) for line in (ddp / "metrics.jsonl").read_text().splitlines()]
    one_log = [json.loads(line) for line in (single / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ddp_log] == [r["step"] for r in one_log] == [4, 8, 12, 12, 16, 20, 24, 24]
    return ddp_log, one_log


def test_two_processes_match_one_process_on_the_global_batch(runs):
    ddp, single = runs

    a = load_file(str(ddp / "checkpoint" / "model.safetensors"))
    b = load_file(str(single / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-6), f"{key}: {(a[key] - b[key]).abs().max()}"
    meta = json.loads((ddp / "checkpoint" / "trainer.json").read_text())
    assert (meta["world"], meta["step"], meta["tokens"]) == (2, 24, 2 * 240)  # 240 target tokens per epoch

    ddp_log, one_log = logs(ddp, single)
    for r, s in zip(ddp_log, one_log, strict=True):
        if "valid_loss" in s:  # every process evaluates the whole validation set
            assert r["valid_loss"] == pytest.approx(s["valid_loss"], abs=1e-5)


def test_logged_training_loss_is_that_of_the_global_batch(runs):
    """The weights match, so the loss of the global batch (what one process logs) matches too; a data-parallel
    run must not log rank 0's half of the batch only."""
    ddp_log, one_log = logs(*runs)
    for r, s in zip(ddp_log, one_log, strict=True):
        if "loss" in s:
            assert r["loss"] == pytest.approx(s["loss"], abs=1e-5), f"step {s['step']}"
