"""Shared helpers of the benchmark scripts: interleaved timing, machine description, result files."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": date.today().isoformat(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def interleaved_medians(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds of each function, running them in turns so that machine noise hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def fwd_bwd(layer: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One forward and backward pass (sum of the outputs) of a layer returning (output, state), to time."""

    def run() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x)[0].sum().backward()

    return run


class Within(torch.nn.Module):
    """``layer`` run inside the context ``block()`` opens, for rows that time one of rnnkit's paths turned off."""

    def __init__(self, layer: torch.nn.Module, block: Callable[[], contextlib.AbstractContextManager]) -> None:
        super().__init__()
        self.layer, self.block = layer, block

    def forward(self, x: torch.Tensor) -> tuple:
        with self.block():
            return self.layer(x)


def ReferenceLoop(layer: torch.nn.Module) -> Within:  # a class name: it reads as the class it was
    """``layer`` inside :func:`rnnkit.bptt.reference_loop`: autograd through every step, for the rows that show
    what the hand-written backward gains."""
    from rnnkit import bptt

    return Within(layer, bptt.reference_loop)


def PythonElementwise(layer: torch.nn.Module) -> Within:
    """``layer`` with its loop's elementwise work in torch operations from Python (:func:`rnnkit.native.disabled`),
    for the rows that show what rnnkit.native's kernels gain."""
    from rnnkit import native

    return Within(layer, native.disabled)


class RNNWithReadout(torch.nn.Module):
    """torch.nn.RNN(H, H) and a Linear(H, O) read-out of every step: an Elman network with an output layer, the
    same multiply-adds per token as rnnkit.Jordan(H, H, O), whose output layer feeds back."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.rnn, self.readout = torch.nn.RNN(input_size, hidden_size), torch.nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> tuple:
        out, h = self.rnn(x)
        return torch.tanh(self.readout(out)), h


def learning_rates(text: str) -> list[float]:
    """``--lrs`` as argparse's ``type``: learning rates separated by commas, each finite and above 0 (argparse then
    exits 2 with the message)."""
    try:
        rates = [float(v) for v in text.split(",")]
    except ValueError:
        message = f"{text!r}: expected learning rates separated by commas, e.g. 1e-3,3e-3"
        raise argparse.ArgumentTypeError(message) from None
    bad = [r for r in rates if not math.isfinite(r) or r <= 0]
    if bad:
        raise argparse.ArgumentTypeError(f"{text!r}: a learning rate must be finite and above 0, got {bad[0]:g}")
    return rates


@contextlib.contextmanager
def results_lock(name: str):
    """Hold an exclusive lock on results/<name>.json's lock file while a script reads, merges and writes it:
    sweeps running side by side (one per core) then never lose each other's runs."""
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_result(name: str, payload: dict) -> Path:
    """Write ``results/<name>.json`` atomically."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")  # one per process: two sweeps may write one file
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    return path


def add_char_lms_flag(parser: argparse.ArgumentParser) -> None:
    """``--char-lms [CORPUS]``: the flag of the benchmarks that add :func:`char_lm_features`."""
    parser.add_argument(
        "--char-lms",
        nargs="?",
        const="pretrain",
        default=None,
        metavar="CORPUS",
        help="add frozen character-LM features: pretrain_lm.py --level char's LMs, or those fine-tuned on CORPUS",
    )


def char_lm_features(runs: str = "pretrain") -> list[str]:
    """The flags that add frozen character LMs as word features: ``runs`` "pretrain" takes those of
    ``pretrain_lm.py --level char`` (forward and backward), a corpus name (sst2, inspec, ...) those fine-tuned on
    it (``--finetune-on``); exits with a one-line message where they have not been trained."""
    stem = "pretrain_charlm" if runs == "pretrain" else f"finetune_charlm_{runs}"
    folders = [Path(__file__).resolve().parent.parent / "runs" / "bench" / f"{stem}_{d}" for d in DIRECTIONS]
    how = "" if runs == "pretrain" else f" --finetune-on {runs}"
    for run, direction in zip(folders, DIRECTIONS, strict=True):
        if not (run / "config.json").exists():
            sys.exit(
                f"{run}: no trained LM: first run benchmarks/pretrain_lm.py --level char --direction {direction}{how}"
            )
    return ["--char-lm", str(folders[0]), "--char-lm-backward", str(folders[1])]


DIRECTIONS = ("forward", "backward")


def pretrained_encoders() -> list[str]:
    """The flags that start a task's encoder from the LMs of ``benchmarks/pretrain_lm.py`` (forward and backward);
    exits with a one-line message where they have not been trained."""
    runs = [
        Path(__file__).resolve().parent.parent / "runs" / "bench" / f"pretrain_lm_{d}" for d in ("forward", "backward")
    ]
    for run, direction in zip(runs, ("forward", "backward"), strict=True):
        if not (run / "best.safetensors").exists():
            sys.exit(f"{run} has no trained LM: first run python benchmarks/pretrain_lm.py --direction {direction}")
    return ["--encoder", str(runs[0]), "--encoder-backward", str(runs[1])]


def run_task(
    task: str,
    train: Path,
    valid: Path,
    out: Path,
    flags: list[str],
    *,
    threads: int | None = None,
    resume: bool = False,
    skip_training: bool = False,
) -> dict:
    """``rnnkit <task> train`` then ``rnnkit <task> eval --json`` on the validation data, as a user runs them.

    Returns the eval metrics, the training minutes, the median training speed of the metrics log (the items the
    task counts per second: words for tag, texts for classify, tokens for lm) and the
    validation curve. ``threads`` sets OMP_NUM_THREADS for both commands (two benchmarks side by side on 2 cores).
    ``resume``: continue the run in ``out`` (``train --resume``, its own config and data, ``flags`` on top);
    ``skip_training``: evaluate ``out`` as it is (the minutes are then None).
    """
    env = dict(os.environ) | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    rnnkit = [sys.executable, "-m", "rnnkit", task]
    if resume:
        command = [*rnnkit, "train", "--out", str(out), "--resume", "--no-progress", *flags]
    else:
        command = [*rnnkit, "train", "--train", str(train), "--valid", str(valid), "--out", str(out)]
        command += ["--force", "--no-progress", *flags]
    print(" ".join(command), flush=True)
    start = time.monotonic()
    if not skip_training:
        subprocess.run(command, check=True, env=env)
    minutes = None if skip_training else (time.monotonic() - start) / 60
    evaluated = subprocess.run(
        [*rnnkit, "eval", str(out), "--data", str(valid), "--json"], check=True, capture_output=True, env=env
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    speeds = [r["tok_s"] for r in records if "tok_s" in r]
    curve = [
        {k: v for k, v in r.items() if k.startswith("valid_") or k == "epoch"}
        for r in records
        if any(k.startswith("valid_") for k in r)
    ]
    return {
        "metrics": json.loads(evaluated.stdout),
        "train_minutes": None if minutes is None else round(minutes, 1),
        "train_tokens_per_s": round(statistics.median(speeds)) if speeds else None,
        "epochs": curve,
        "threads": threads or torch.get_num_threads(),
        "command": " ".join(command),
    }


def write_tagger_result(name: str, result: dict, setting: dict) -> None:
    """A tagger's :func:`run_task` result as benchmarks/results/tag_<name>.json, beside a summary (span F1, precision,
    recall, token accuracy, F1 per type) that is also printed as one JSON line."""
    metrics = result["metrics"]
    summary = {k: metrics.get(k) for k in ("f1", "precision", "recall", "token_accuracy")}
    summary["per_type_f1"] = {t: s["f1"] for t, s in metrics.get("per_type", {}).items()}
    path = write_result(f"tag_{name}", {"setting": machine() | setting, "valid": summary} | result)
    print(json.dumps(summary | {"minutes": result["train_minutes"]}))
    print(f"written {path}")


def rnnkit_cli(*args: str, threads: int | None = None, capture: bool = False) -> str:
    """``rnnkit ARGS`` in a subprocess, as a user runs it, on ``threads`` threads (OMP_NUM_THREADS; None: torch's
    default); its stdout when ``capture``. A failure stops the benchmark."""
    env = dict(os.environ) | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    done = subprocess.run([sys.executable, "-m", "rnnkit", *args], check=True, env=env, capture_output=capture)
    return done.stdout.decode() if capture else ""
