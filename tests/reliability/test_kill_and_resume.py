"""Fault injection: training killed at random moments, and failures inside checkpoint writes.

After every kill the run folder is either no run at all (killed before the new run was swapped in: only
the lock file, or nothing; a fresh start then works) or a run that loads (best and last weights) and that
``--resume`` carries on to *exactly* the weights, optimizer state, best weights and trainer state of an
uninterrupted run with the same arguments (compared tensor by tensor with ``torch.equal``).

The killed trainings are children forked from this warm process, each running ``rnnkit.cli.main(argv)``
as ``python -m rnnkit`` would, then killed with SIGKILL or SIGTERM after a delay from a seeded RNG: forking
skips the 4-8 s of importing torch (and torch._dynamo) that a fresh interpreter spends before training
starts, so every kill lands somewhere in rnnkit (checking the folder, preparing, staging and swapping in
the new run, training steps, checkpoint and metrics writes), several per test within the CI budget. A kill
chain kills the same folder several times in a row, so the later kills also hit resumes. One real
``python -m rnnkit`` subprocess is used for the writer-lock tests (a second writer is refused with the
first one's PID; after ``kill -9`` its stale lock is taken over).

The number of kills follows RNNKIT_HYPOTHESIS_PROFILE (see conftest.py); the seeds are fixed, and a
failure prints each kill's delay and what the child did.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import rnnkit.cli
import rnnkit.io
import rnnkit.train.checkpoint
import rnnkit.train.run_folder
from rnnkit.tasks.lm_run import load_run
from rnnkit.train.run_folder import foreign_entries, is_run

ROOT = Path(__file__).resolve().parents[2]
LONG = os.environ.get("RNNKIT_HYPOTHESIS_PROFILE", "ci") == "long"
EPOCHS = 5  # 12 steps each: 60 steps, 5 validations, 5 epoch checkpoints
EARLY = 0.3  # seconds: kills in this window hit the folder check, preparation, staging and the swap


def kill_argv(h, data, out: Path) -> list[str]:
    return h.lm_train_argv(data, out, "--epochs", str(EPOCHS), "--log-every", "3", "--dropout", "0.2")


def resume_argv(out: Path) -> list[str]:
    return ["lm", "train", "--out", str(out), "--resume", "--no-progress"]


# -- forked children ------------------------------------------------------------------------------------------


def spawn(argv: list[str], log: Path, prepare=None) -> int:
    """Fork a child that runs ``rnnkit argv`` with stdout and stderr to ``log`` and exits with its code
    (``prepare()`` runs in the child first: it may patch rnnkit there)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1  # the child: it never returns into pytest
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        signal.alarm(0)
        for signum in (signal.SIGTERM, signal.SIGALRM, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        torch.set_num_threads(1)
        if prepare is not None:
            prepare()
        code = rnnkit.cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def read_log(log: Path) -> str:
    """What a child printed (nothing when it was killed before it opened its log)."""
    return log.read_text(errors="replace") if log.exists() else ""


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.WEXITSTATUS(status)}"


# -- the reference run ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(helpers, lm_data, lm_run, tmp_path_factory):
    """An uninterrupted run (a forked child, as the killed ones) and how long it took. (``lm_run`` has
    trained in this process first, so children start warm: torch._dynamo, which the optimizer imports on
    first use, is already loaded and a child's time is rnnkit's.)"""
    out = tmp_path_factory.mktemp("reference") / "run"
    log = out.parent / "log.txt"
    started = time.monotonic()
    pid = spawn(kill_argv(helpers, lm_data, out), log)
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - started
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, log.read_text()
    return out, seconds


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_run(run: Path, reference: Path, *, exact_metrics: bool, story: str) -> None:
    """The final run equals the reference bit for bit (weights, optimizer, RNG, best weights, counters)."""
    for name in ("checkpoint/model.safetensors", "checkpoint/trainer.safetensors", "best.safetensors"):
        a, b = tensors(run / name), tensors(reference / name)
        assert sorted(a) == sorted(b), f"{name}: other tensors\n{story}"
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs from the uninterrupted run\n{story}"
    meta_a = json.loads((run / "checkpoint" / "trainer.json").read_text())
    meta_b = json.loads((reference / "checkpoint" / "trainer.json").read_text())
    assert meta_a.pop("seconds") >= 0 and meta_b.pop("seconds") >= 0  # wall time: the one thing that may differ
    assert meta_a == meta_b, f"trainer.json differs\n{story}"
    ma, mb = metrics(run), metrics(reference)
    assert [(m["step"], "loss" in m) for m in ma] == [(m["step"], "loss" in m) for m in mb], f"metrics lines\n{story}"
    if exact_metrics:  # resumed only at epoch ends: every logging window is whole
        assert ma == mb, f"metrics values differ\n{story}"


def metrics(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("tok_s", None)
        record.pop("time_s", None)  # wall time
    return records


# -- what a killed writer may leave ---------------------------------------------------------------------------


def folder_state(out: Path, story: str) -> str:
    """ "none" (no run: nothing, or only the lock file) or "run" (a run that loads, best and last weights)."""
    entries = set(os.listdir(out)) if out.is_dir() else set()
    if not entries - {".lock"}:
        return "none"
    unknown = foreign_entries(out)
    assert not unknown, f"a killed writer left {unknown} in {out}\n{story}"
    assert is_run(out), f"{out} holds {sorted(entries)} but is not a run (config.json)\n{story}"
    for weights in ("best", "last"):
        try:
            load_run(out, weights=weights)
        except Exception as error:
            raise AssertionError(f"the run does not load ({weights} weights): {error}\n{story}") from None
    return "run"


def finish(h, data, out: Path, story: str) -> None:
    """Complete the run in this process: a fresh start where there is no run, else --resume."""
    if folder_state(out, story) == "none":
        code, _, err = h.run_cli(kill_argv(h, data, out))
        assert code == 0, f"a fresh start after the kill failed:\n{err[-2000:]}\n{story}"
        return
    code, _, err = h.run_cli(resume_argv(out))
    if code == 2 and f"has trained all its {EPOCHS} epochs" in err:  # killed after its last checkpoint
        h.assert_clean_failure(code, err)
        return
    assert code == 0, f"--resume after the kill failed:\n{err[-2000:]}\n{story}"


def kill_chain(h, data, reference, work: Path, seed: int, signum: int, kills: int) -> None:
    """Start (or resume) training in a child, kill it after a random delay; ``kills`` times; then finish."""
    ref_run, seconds = reference
    rng = random.Random(seed)
    out = work / "run"
    story, stopped_mid_epoch = [f"seed {seed}, {signal.Signals(signum).name}, reference run {seconds:.2f} s"], False
    for k in range(kills):
        resuming = folder_state(out, "\n".join(story)) == "run"
        argv = resume_argv(out) if resuming else kill_argv(h, data, out)
        delay = rng.uniform(0, EARLY) if rng.random() < 0.4 else rng.uniform(0, seconds * 1.1)
        log = work / f"kill{k}.log"
        pid = spawn(argv, log)
        time.sleep(delay)
        os.kill(pid, signum)
        _, status = os.waitpid(pid, 0)
        text = read_log(log)
        story.append(f"kill {k}: {'resume' if resuming else 'fresh'} after {delay:.3f} s -> {describe(status)}")
        assert "Traceback" not in text, f"the child printed a traceback:\n{text[-3000:]}\n" + "\n".join(story)
        if os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
            if code == 2 and f"has trained all its {EPOCHS} epochs" in text:
                h.assert_clean_failure(code, text)
            else:
                assert code in (0, 130), f"the child ended with exit {code}:\n{text[-2000:]}\n" + "\n".join(story)
            if code == 130:  # SIGTERM: it stopped with a checkpoint and said how to continue
                assert "interrupted by SIGTERM" in text and "--resume" in text, text[-2000:]
                stopped_mid_epoch = True
        story.append(f"        folder: {folder_state(out, chr(10).join(story))}")
    story = "\n".join(story)
    finish(h, data, out, story)
    assert folder_state(out, story) == "run"
    assert not h.staging_leftovers(out), f"staging folders left after the next writer: {h.staging_leftovers(out)}"
    assert_same_run(out, ref_run, exact_metrics=not stopped_mid_epoch, story=story)


CHAINS = 8 if LONG else 2
KILLS_PER_CHAIN = 6 if LONG else 3


@pytest.mark.parametrize("chain", range(CHAINS))
def test_sigkill_at_random_moments_then_exact_resume(helpers, lm_data, reference, tmp_path, chain):
    kill_chain(helpers, lm_data, reference, tmp_path, seed=1000 + chain, signum=signal.SIGKILL, kills=KILLS_PER_CHAIN)


@pytest.mark.parametrize("chain", range(CHAINS // 2))
def test_sigterm_at_random_moments_then_exact_resume(helpers, lm_data, reference, tmp_path, chain):
    kill_chain(helpers, lm_data, reference, tmp_path, seed=2000 + chain, signum=signal.SIGTERM, kills=KILLS_PER_CHAIN)


@pytest.mark.parametrize("seed", range(4 if LONG else 1))
def test_sigkill_during_force_leaves_the_old_run_or_the_new_one(helpers, lm_data, lm_run, reference, tmp_path, seed):
    """``--force`` over an existing run, killed mostly in its first moments (preparing, staging, swapping):
    the folder is at every instant the whole old run, byte for byte, or the whole new one."""
    h, ref_run, seconds = helpers, *reference
    rng = random.Random(3000 + seed)
    for k in range(8 if LONG else 4):
        work = tmp_path / f"k{k}"
        out = h.copy_run(lm_run, work / "run")
        old = h.snapshot(out)
        delay = rng.uniform(0, 0.15) if rng.random() < 0.7 else rng.uniform(0, seconds)
        argv = [*kill_argv(h, lm_data, out), "--force"]
        pid = spawn(argv, work / "log.txt")
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        story = f"seed {3000 + seed}, kill {k} after {delay:.3f} s: {describe(status)}"
        text = read_log(work / "log.txt")
        assert "Traceback" not in text, f"{story}\n{text[-3000:]}"
        if h.snapshot(out).get("config.json") == old["config.json"]:
            h.assert_unchanged(old, out, argv)  # the old run, whole
            code, _, err = h.run_cli(argv)  # --force again, to the end
            assert code == 0, f"{story}\n{err[-2000:]}"
        else:
            assert folder_state(out, story) == "run"  # the new run, whole
            finish(h, lm_data, out, story)
        assert not h.staging_leftovers(out), f"{story}: staging left after the next writer"
        assert_same_run(out, ref_run, exact_metrics=True, story=story)


# -- failures inside checkpoint writes, in-process ------------------------------------------------------------


class Disk:
    """Counts calls of one write step and makes the k-th fail like a full disk (OSError ENOSPC); or, with
    ``kill`` "before" or "after", SIGKILLs its own process just before or just after the k-th call."""

    def __init__(self, fail_at: int, kill: str | None = None) -> None:
        self.fail_at, self.kill, self.calls = fail_at, kill, 0

    def wrap(self, real):
        def step(*args, **kwargs):
            self.calls += 1
            if self.calls == self.fail_at:
                if self.kill is None:
                    raise OSError(28, "No space left on device (injected)")
                if self.kill == "before":
                    os.kill(os.getpid(), signal.SIGKILL)
            result = real(*args, **kwargs)
            if self.calls == self.fail_at and self.kill == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return step


class _Setattr:
    """monkeypatch's setattr for a forked child, which dies with its patches."""

    @staticmethod
    def setattr(target, name, value) -> None:
        setattr(target, name, value)


class _OsWithFailingReplace:
    """rnnkit.io's view of ``os`` with ``replace`` (the atomic rename of every file write) failing."""

    def __init__(self, replace) -> None:
        self.replace = replace

    def __getattr__(self, name):
        return getattr(os, name)


def inject(monkeypatch, target: str, disk: Disk) -> None:
    ckpt, folder = rnnkit.train.checkpoint, rnnkit.train.run_folder
    if target == "os.replace":
        monkeypatch.setattr(rnnkit.io, "os", _OsWithFailingReplace(disk.wrap(os.replace)))
    elif target == "checkpoint-rename":
        real = Path.rename

        def rename(self, to):
            if self.name.startswith("checkpoint"):
                return disk.wrap(real)(self, to)
            return real(self, to)

        monkeypatch.setattr(Path, "rename", rename)
    else:
        module = {"save_model": ckpt, "save_file": ckpt, "write_json": ckpt, "fsync": ckpt}.get(target, folder)
        monkeypatch.setattr(module, target, disk.wrap(getattr(module, target)))


TARGETS = ["save_model", "save_file", "write_json", "fsync", "os.replace", "checkpoint-rename", "_exchange"]


@settings(max_examples=300 if LONG else 20)  # each example trains a whole run (about 0.5 s)
@given(target=st.sampled_from(TARGETS), fail_at=st.integers(1, 40), force=st.booleans())
def test_a_failing_write_leaves_a_run_that_resumes_exactly(
    helpers, lm_data, lm_run, reference, scratch, monkeypatch, target, fail_at, force
):
    """The k-th write step fails (disk full): the command fails cleanly; the folder is no run, the old run
    byte for byte (--force failing before its new run is in), or a run that loads; --resume then ends
    exactly where the uninterrupted run ends."""
    h = helpers
    work = scratch()
    out = work / "run"
    if force:
        h.copy_run(lm_run, out)
    before = h.snapshot(out)
    disk = Disk(fail_at)
    with monkeypatch.context() as patch:
        inject(patch, target, disk)
        argv = kill_argv(h, lm_data, out) + (["--force"] if force else [])
        code, _, err = h.run_cli(argv)
    story = f"{target} fails at call {fail_at} of {disk.calls}; --force: {force}; exit {code}"
    if disk.calls < fail_at:
        assert code == 0, f"{story}\n{err[-2000:]}"
    else:
        line = h.assert_clean_failure(code, err, argv)
        assert "No space left on device" in line, f"{story}: {line}"
    assert not h.staging_leftovers(out), f"{story}: staging left behind"
    if force and " process(es) -> " not in err:
        h.assert_unchanged(before, out, argv, err)  # the old run, byte for byte
        return
    if code == 0:
        assert_same_run(out, reference[0], exact_metrics=True, story=story)
        return
    finish(h, lm_data, out, story)
    assert_same_run(out, reference[0], exact_metrics=True, story=story)


@pytest.fixture(scope="module")
def write_steps(helpers, lm_data, reference, tmp_path_factory) -> dict[str, int]:
    """How often an uninterrupted run calls each write step of TARGETS."""
    disks = {target: Disk(10**9) for target in TARGETS}
    with pytest.MonkeyPatch.context() as patch:
        for target, disk in disks.items():
            inject(patch, target, disk)
        code, _, err = helpers.run_cli(kill_argv(helpers, lm_data, tmp_path_factory.mktemp("count") / "run"))
    assert code == 0, err
    return {target: disk.calls for target, disk in disks.items()}


@pytest.mark.parametrize("target", TARGETS)
def test_sigkill_inside_a_write_step_then_exact_resume(helpers, lm_data, reference, write_steps, tmp_path, target):
    """A child SIGKILLs itself just before or just after the k-th call of a write step (writing weights,
    the trainer state, trainer.json, an fsync, an atomic rename, a checkpoint folder's rename, the swap of a
    new run): the folder is no run or a run that loads, and resumes exactly."""
    h, ref_run, _ = helpers, *reference
    rng = random.Random(f"{target}-kill")
    for k in range(6 if LONG else 1):
        out = tmp_path / f"k{k}" / "run"
        out.parent.mkdir()
        fail_at, when = rng.randint(1, write_steps[target]), rng.choice(["before", "after"])
        disk = Disk(fail_at, kill=when)
        story = f"SIGKILL {when} call {fail_at} of {write_steps[target]} of {target}"
        pid = spawn(kill_argv(h, lm_data, out), out.parent / "log.txt", lambda d=disk: inject(_Setattr, target, d))
        _, status = os.waitpid(pid, 0)
        text = read_log(out.parent / "log.txt")
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"{story}: {describe(status)}\n{text}"
        assert "Traceback" not in text, f"{story}\n{text[-3000:]}"
        story += f" -> folder: {folder_state(out, story)}"
        finish(h, lm_data, out, story)
        assert not h.staging_leftovers(out), f"{story}: staging left after the next writer"
        assert_same_run(out, ref_run, exact_metrics=True, story=story)


def test_a_killed_writers_temporary_file_is_removed_by_the_next_writer(helpers, lm_data, reference, tmp_path):
    """A writer killed before it renamed best.safetensors.PID.tmp into place leaves that temporary (a whole
    copy of the weights); the next writer removes it (found: it stayed forever; fixed in 7d3b7ed)."""
    h = helpers
    out = tmp_path / "run"

    def kill_before_best_is_renamed():
        def replace(src, dst):
            if Path(dst).name == "best.safetensors":
                os.kill(os.getpid(), signal.SIGKILL)
            return os.replace(src, dst)

        rnnkit.io.os = _OsWithFailingReplace(replace)

    pid = spawn(kill_argv(h, lm_data, out), tmp_path / "log.txt", kill_before_best_is_renamed)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), read_log(tmp_path / "log.txt")
    assert [p.name for p in out.glob("best.safetensors.*.tmp")], "the kill came before the temporary was written"
    finish(h, lm_data, out, "killed before best.safetensors was renamed")
    assert sorted(p.name for p in out.rglob("*.tmp")) == []


# -- one writer at a time: a real `python -m rnnkit` process --------------------------------------------------


def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(helpers, tmp_path):
    h = helpers
    train = h.write_corpus(tmp_path / "train.txt", n=6000)
    out = tmp_path / "run"
    argv = ["lm", "train", "--train", str(train), "--level", "char", "--out", str(out), "--hidden", "8"]
    argv += ["--layers", "1", "--batch-size", "4", "--bptt", "5", "--epochs", "1000", "--no-progress"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen([sys.executable, "-m", "rnnkit", *argv], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 90
        while not (out / "config.json").exists():
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the first writer did not install its run within 90 s"
            time.sleep(0.05)
        for second in (
            ["lm", "train", "--out", str(out), "--resume", "--no-progress", "--max-steps", "3"],
            [*argv, "--force", "--max-steps", "3"],
        ):
            code, _, err = h.run_cli(second)
            line = h.assert_clean_failure(code, err, second)
            assert f"being written by process {first.pid}" in line, line
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        log.close()
    assert first.returncode == -signal.SIGKILL
    assert (out / ".lock").read_text().strip() == str(first.pid)  # the dead writer's lock file is still there
    step = json.loads((out / "checkpoint" / "trainer.json").read_text())["step"]
    code, _, err = h.run_cli([*resume_argv(out), "--max-steps", str(step + 3)])
    assert code == 0, err
    assert json.loads((out / "checkpoint" / "trainer.json").read_text())["step"] == step + 3
    assert not h.staging_leftovers(out)
