"""The run folder's safety, for every task: --force never loses a run to a new one that fails, rnnkit never
deletes what it did not write, one writer at a time, stale locks and staging folders, another task's run,
and advice that works when followed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rnnkit.cli
from rnnkit.tasks import registry
from rnnkit.tasks.lm_run import LMRun, load_run
from rnnkit.tasks.music_run import MusicRun
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import run_folder
from tests.train.test_run_folder import error_line, snapshot, train_argv, write_corpus


@pytest.fixture
def trained(tmp_path):
    out = tmp_path / "run"
    assert rnnkit.cli.main(train_argv(tmp_path, out, "--max-steps", "4", valid=True)) == 0
    return out


def music_run(tmp_path: Path) -> Path:
    rolls = [[[60, 64, 67], [62, 65, 69], [60, 64, 67]] * 3] * 6
    (tmp_path / "rolls.json").write_text(json.dumps(rolls))
    out = tmp_path / "music"
    argv = ["music", "train", "--train", str(tmp_path / "rolls.json"), "--out", str(out), "--hidden", "6"]
    assert rnnkit.cli.main([*argv, "--batch-size", "2", "--max-steps", "2", "--no-progress"]) == 0
    return out


@pytest.mark.parametrize(
    "bad",
    [
        ["--train", "missing.txt"],
        ["--batch-size", "100000"],
        ["--cell", "scrn", "--tie-weights"],
        ["--valid", "latin1.txt"],
        ["--level", "word", "--train", "empty.txt"],
    ],
)
def test_force_with_a_bad_new_run_keeps_the_old_one_byte_for_byte(trained, tmp_path, capsys, bad):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("  \n")
    bad = [str(tmp_path / a) if a.endswith(".txt") else a for a in bad]
    before = snapshot(trained)
    assert rnnkit.cli.main([*train_argv(tmp_path, trained, "--force", "--max-steps", "2"), *bad]) == 2
    error_line(capsys)
    assert snapshot(trained) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.new")] == []  # no staging left


def test_force_replaces_a_run_atomically_even_when_the_first_checkpoint_fails(trained, tmp_path, monkeypatch):
    before = snapshot(trained)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt, "save_checkpoint", broken)
    assert rnnkit.cli.main(train_argv(tmp_path, trained, "--force", "--max-steps", "2", "--hidden", "10")) == 2
    assert snapshot(trained) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_force_refuses_folders_that_are_not_rnnkit_runs(tmp_path, capsys):
    folder = tmp_path / "f"
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "checkpoint" / "epoch_99.ckpt").write_text("x")
    before = snapshot(folder)
    for extra in ([], ["--force"]):
        assert rnnkit.cli.main(train_argv(tmp_path, folder, "--max-steps", "1", *extra)) == 2
        line = error_line(capsys)
        assert "not an empty folder or an rnnkit run" in line and "never deletes" in line
    assert snapshot(folder) == before


def test_force_keeps_a_run_that_holds_foreign_files(trained, tmp_path, capsys):
    (trained / "notes.txt").write_text("my notes")
    before = snapshot(trained)
    assert rnnkit.cli.main(train_argv(tmp_path, trained, "--force", "--max-steps", "1")) == 2
    assert "notes.txt" in error_line(capsys)
    assert snapshot(trained) == before


def test_a_failed_start_into_a_new_folder_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    assert rnnkit.cli.main(train_argv(tmp_path, out, "--batch-size", "100000")) == 2
    error_line(capsys)
    assert not out.exists()


def test_an_empty_existing_folder_is_used_and_not_deleted(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert rnnkit.cli.main(train_argv(tmp_path, out, "--max-steps", "1")) == 0
    assert (out / "config.json").is_file() and (out / "checkpoint" / "trainer.json").is_file()


def test_a_second_writer_is_refused_with_the_pid_of_the_first(trained, tmp_path, capsys):
    lock = run_folder.RunLock(trained).acquire()
    try:
        before = snapshot(trained)
        argv = ["lm", "train", "--out", str(trained), "--resume", "--max-steps", "6", "--no-progress"]
        assert rnnkit.cli.main(argv) == 2
        line = error_line(capsys)
        assert f"process {os.getpid()}" in line and ".lock" in line
        assert rnnkit.cli.main(train_argv(tmp_path, trained, "--force", "--max-steps", "1")) == 2
        assert snapshot(trained) == before
    finally:
        lock.release()
    assert rnnkit.cli.main(argv) == 0  # released: the same command now works


def test_a_lock_left_by_a_killed_process_is_taken_over(trained, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'12345'); print('locked', flush=True); time.sleep(60)",
         str(trained / ".lock")],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == b"locked"
        with pytest.raises(rnnkit.errors.RnnkitError, match="process 12345"):
            run_folder.RunLock(trained).acquire()
    finally:
        holder.kill()
        holder.wait()
    (trained.parent / ".run.new-999999999").mkdir()  # a staging folder of a writer that died
    argv = ["lm", "train", "--out", str(trained), "--resume", "--max-steps", "6", "--no-progress"]
    assert rnnkit.cli.main(argv) == 0
    assert not (trained.parent / ".run.new-999999999").exists()


def test_every_run_is_resumable_from_its_first_moment(tmp_path, monkeypatch):
    out = tmp_path / "run"
    from rnnkit.train import loop

    def killed(self):
        raise KeyboardInterrupt  # as if the process died before the first step

    monkeypatch.setattr(loop.Trainer, "fit", killed)
    assert rnnkit.cli.main(train_argv(tmp_path, out, "--max-steps", "3")) == 130
    monkeypatch.undo()
    assert json.loads((out / "checkpoint" / "trainer.json").read_text())["step"] == 0
    assert isinstance(load_run(out), LMRun)  # the step-0 weights load
    assert rnnkit.cli.main(["lm", "train", "--out", str(out), "--resume", "--no-progress"]) == 0


def test_advice_after_max_steps_works_when_followed(trained, capsys):
    argv = ["lm", "train", "--out", str(trained), "--resume", "--no-progress"]
    assert rnnkit.cli.main(argv) == 2  # the run stopped at --max-steps 4: resuming alone would stop at once
    line = error_line(capsys)
    assert "--max-steps 4" in line and "larger --max-steps" in line
    assert rnnkit.cli.main([*argv, "--max-steps", "5"]) == 0
    assert json.loads((trained / "checkpoint" / "trainer.json").read_text())["step"] == 5


def test_a_run_of_another_task_is_named(tmp_path, capsys):
    music = music_run(tmp_path)
    write_corpus(tmp_path / "text.txt")
    assert rnnkit.cli.main(["lm", "eval", str(music), "--data", str(tmp_path / "text.txt")]) == 2
    assert f"is a music run, not a lm run: use rnnkit music eval {music}" in error_line(capsys)
    assert rnnkit.cli.main(["lm", "train", "--out", str(music), "--resume", "--no-progress"]) == 2
    assert "use rnnkit music train --resume --out" in error_line(capsys)


def test_the_registry_opens_a_run_of_any_task(trained, tmp_path):
    assert isinstance(registry.load_run(trained), LMRun)
    assert isinstance(registry.load_run(music_run(tmp_path)), MusicRun)
    config = json.loads((trained / "config.json").read_text())
    del config["task"], config["rnnkit"]  # a run from before config.json named its task
    (trained / "config.json").write_text(json.dumps(config))
    assert registry.task_of(trained).name == "lm" and isinstance(registry.load_run(trained), LMRun)


@pytest.mark.parametrize("content", ["[]", "null", '{"train": 5}', '{"task": "lm", "train": {}, "data": 3}'])
def test_a_config_json_of_the_wrong_shape_is_one_line(trained, capsys, content):
    (trained / "config.json").write_text(content)
    assert rnnkit.cli.main(["lm", "sample", str(trained), "--length", "3"]) == 2
    assert "config.json" in error_line(capsys)


def test_weights_of_another_run_are_not_called_corrupted(trained, tmp_path, capsys):
    other = tmp_path / "other"
    assert rnnkit.cli.main(train_argv(tmp_path, other, "--max-steps", "1", "--hidden", "10")) == 0
    (trained / "best.safetensors").write_bytes((other / "best.safetensors").read_bytes())
    assert rnnkit.cli.main(["lm", "sample", str(trained), "--length", "3"]) == 2
    line = error_line(capsys)
    assert "does not fit" in line and "corrupted" not in line


@pytest.mark.parametrize(
    "change",
    [
        {"step": "x"},
        {"step": -1},
        {"best": "nan"},
        {"world": 0},
        {"optimizer": {"param_groups": "x"}},
        {"optimizer": {"param_groups": [], "state": {}}},
        {"carry": 3},
    ],
)
def test_a_damaged_trainer_state_is_one_line_and_changes_nothing(trained, capsys, change):
    path = trained / "checkpoint" / "trainer.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    before = snapshot(trained)
    assert rnnkit.cli.main(["lm", "train", "--out", str(trained), "--resume", "--max-steps", "9", "--no-progress"]) == 2
    assert "--force" in error_line(capsys)
    assert snapshot(trained) == before


def test_resume_with_a_config_file_is_refused_not_ignored(trained, tmp_path, capsys):
    (tmp_path / "c.toml").write_text("[train]\nepochs = 9\n")
    argv = ["lm", "train", "--out", str(trained), "--resume", "--config", str(tmp_path / "c.toml"), "--no-progress"]
    assert rnnkit.cli.main(argv) == 2
    assert "drop --config" in error_line(capsys)


def test_temporaries_of_a_killed_safetensors_write_are_rnnkits_and_are_removed(trained, tmp_path):
    (trained / ".tmpAbC123").write_bytes(b"half a weights file")  # safetensors' own temporary, killed midway
    (trained / "checkpoint.tmp").mkdir()
    (trained / "checkpoint.tmp" / ".tmpXyZ789").write_bytes(b"half")
    assert run_folder.foreign_entries(trained) == []
    argv = ["lm", "train", "--out", str(trained), "--resume", "--max-steps", "5", "--no-progress"]
    assert rnnkit.cli.main(argv) == 0
    assert not (trained / ".tmpAbC123").exists() and not (trained / "checkpoint.tmp").exists()
