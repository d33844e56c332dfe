"""What the generated tests found, each as a minimal reproduction, kept as regression tests.

All of them were fixed while these tests were written (commits 1c440e6 "Fuzz findings fixed" and 7d3b7ed
"More fuzz findings fixed"). A new finding gets its reproduction here marked with :func:`finding`
(``xfail(strict=True)``): it fails while the finding stands and turns the suite red once it is fixed (an
unexpected pass), so that whoever fixes it removes the mark.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pytest
from safetensors.torch import load_file, save_file


def finding(reason: str):
    """The mark of a reproduction whose finding is still open."""
    return pytest.mark.xfail(strict=True, reason=f"finding: {reason}")


# -- numbers beyond float32 reach torch ------------------------------------------------------------------------


def test_init_range_beyond_float32_is_a_clean_error(helpers, lm_data, tmp_path):
    """Found: --init-range 1e308 passed the range check; torch's uniform_ raised RuntimeError (exit 1)."""
    argv = helpers.lm_train_argv(lm_data, tmp_path / "run", "--max-steps", "2", "--init-range", "1e308")
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_failure(code, err, argv)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("task", "flag", "value"),
    [
        ("lm", "--clip-value", "1e308"),
        ("music", "--clip-value", "3.5e38"),
        ("lm", "--weight-decay", "1e308"),
        ("music", "--lr", "1e38"),  # below float32's largest, but Adam's step size lr / (1 - 0.9) is not
    ],
)
def test_train_options_beyond_float32_are_clean_errors(helpers, lm_data, music_data, tmp_path, task, flag, value):
    """A value that is finite in Python but not in float32 is refused (or works). Found: torch's RuntimeError
    'value cannot be converted to type float without overflow' (exit 1), after --force had replaced the run."""
    out = tmp_path / "run"
    base = helpers.lm_train_argv(lm_data, out) if task == "lm" else helpers.music_train_argv(music_data, out)
    argv = [*base, "--max-steps", "2", "--epochs", "2", flag, value]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_outcome(code, err, argv, usage_ok=False)


def test_resume_with_an_lr_beyond_float32_is_a_clean_error(helpers, lm_run, tmp_path):
    """Found: RuntimeError (float overflow) in Adam's addcdiv_ at the first resumed step (exit 1)."""
    run = helpers.copy_run(lm_run, tmp_path / "run")
    argv = ["lm", "train", "--out", str(run), "--resume", "--max-steps", "16", "--no-progress", "--lr", "1e308"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_outcome(code, err, argv, usage_ok=False)


def test_sampling_at_a_denormal_temperature_is_clean(helpers, lm_run):
    """Found: torch.multinomial's RuntimeError "probability tensor contains either inf, nan or element < 0"."""
    argv = ["lm", "sample", str(lm_run), "--length", "5", "--temperature", "1e-320"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_outcome(code, err, argv, usage_ok=False)


def test_sampling_at_a_tiny_top_p_is_clean(helpers, lm_run):
    """Found: the same multinomial RuntimeError: a tiny top-p masked every token."""
    argv = ["lm", "sample", str(lm_run), "--length", "5", "--top-p", "1.790763462437852e-125"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_outcome(code, err, argv, usage_ok=False)


# -- resume with another optimizer -----------------------------------------------------------------------------


def test_resume_with_another_optimizer_is_refused_or_works(helpers, lm_run, tmp_path):
    """Found: Adam's param_groups were loaded into SGD: KeyError 'momentum' at the first step (exit 1)."""
    run = helpers.copy_run(lm_run, tmp_path / "run")
    before = helpers.snapshot(run)
    argv = ["lm", "train", "--out", str(run), "--resume", "--max-steps", "16", "--no-progress", "--optimizer", "sgd"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_outcome(code, err, argv, usage_ok=False)
    if code != 0:
        helpers.assert_unchanged(before, run, argv, err)


# huge sizes and amounts of work (--hidden 2**31 or 2**63, music generate --steps 10**9) are
# test_flags_fuzz.py's HUGE and HUGE_WORK cases


# -- config files ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "content"),
    [
        (".toml", b"x = " + b"[" * 100000 + b"]" * 100000),
        (".json", b"[" * 100000 + b"]" * 100000),
    ],
    ids=["toml", "json"],
)
def test_a_deeply_nested_config_file_is_a_clean_error(helpers, lm_data, tmp_path, suffix, content):
    """Found: RecursionError from tomllib / json (exit 1)."""
    config = tmp_path / f"deep{suffix}"
    config.write_bytes(content)
    argv = helpers.lm_train_argv(lm_data, tmp_path / "run", "--max-steps", "2", "--config", str(config))
    code, _, err = helpers.run_cli(argv)
    line = helpers.assert_clean_failure(code, err, argv)
    assert str(config) in line


# -- what --force deletes --------------------------------------------------------------------------------------


# --force deleting a user's file inside checkpoint/ (fixed) is test_config_files_fuzz.py's
# test_force_never_deletes_a_foreign_file[checkpoint]


def test_a_foreign_file_with_a_line_break_in_its_name_is_named_on_one_line(helpers, lm_run, lm_data, tmp_path):
    """Found: the refusal printed the name raw, so the one error line became two."""
    run = helpers.copy_run(lm_run, tmp_path / "run")
    (run / "notes\nold.txt").write_text("mine\n")
    argv = helpers.lm_train_argv(lm_data, run, "--max-steps", "2", "--force")
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_failure(code, err, argv)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed")
def test_force_tensorboard_without_the_package_keeps_the_old_run(helpers, lm_run, lm_data, tmp_path):
    """Found: the old run was swapped out for a step-0 run before MetricsLog refused --tensorboard."""
    run = helpers.copy_run(lm_run, tmp_path / "run")
    before = helpers.snapshot(run)
    argv = helpers.lm_train_argv(lm_data, run, "--max-steps", "2", "--force", "--tensorboard")
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_failure(code, err, argv)
    helpers.assert_unchanged(before, run, argv, err)


# -- damaged run folders ---------------------------------------------------------------------------------------


def test_resume_with_a_damaged_optimizer_state_is_a_clean_error(helpers, lm_run, tmp_path):
    """Found: param_groups without 'betas' passed the trainer-state check: KeyError in Adam's step (exit 1)."""
    run = helpers.copy_run(lm_run, tmp_path / "run")
    path = run / "checkpoint" / "trainer.json"
    meta = json.loads(path.read_text())
    del meta["optimizer"]["param_groups"][0]["betas"]  # what one flipped byte in the key does
    path.write_text(json.dumps(meta, indent=2) + "\n")
    before = helpers.snapshot(run)
    argv = ["lm", "train", "--out", str(run), "--resume", "--max-steps", "16", "--no-progress"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_failure(code, err, argv)
    helpers.assert_unchanged(before, run, argv, err)


def test_resume_with_a_trainer_state_missing_best_is_a_clean_error(helpers, lm_run, tmp_path):
    """Found: a missing 'best' passed the check as null: KeyError 'best' in Trainer.resume (exit 1)."""
    run = helpers.copy_run(lm_run, tmp_path / "run")
    path = run / "checkpoint" / "trainer.json"
    meta = json.loads(path.read_text())
    del meta["best"]
    path.write_text(json.dumps(meta, indent=2) + "\n")
    before = helpers.snapshot(run)
    argv = ["lm", "train", "--out", str(run), "--resume", "--max-steps", "16", "--no-progress"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_failure(code, err, argv)
    helpers.assert_unchanged(before, run, argv, err)


@pytest.mark.parametrize("seconds", ["an hour", -1.0, True])
def test_resume_with_a_damaged_training_time_is_a_clean_error(helpers, lm_run, tmp_path, seconds):
    """The training time a checkpoint keeps (for curves against wall time) is checked like every other field."""
    run = helpers.copy_run(lm_run, tmp_path / "run")
    path = run / "checkpoint" / "trainer.json"
    meta = json.loads(path.read_text())
    meta["seconds"] = seconds
    path.write_text(json.dumps(meta, indent=2) + "\n")
    before = helpers.snapshot(run)
    argv = ["lm", "train", "--out", str(run), "--resume", "--max-steps", "16", "--no-progress"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_failure(code, err, argv)
    assert "'seconds' must be a non-negative number" in err
    helpers.assert_unchanged(before, run, argv, err)


def test_resume_never_writes_through_a_symlinked_run_file(helpers, lm_run, tmp_path):
    """Found: --resume rewrote metrics.jsonl through the link: config.json overwritten, the run lost (exit 0)."""
    run = helpers.copy_run(lm_run, tmp_path / "run")
    (run / "metrics.jsonl").unlink()
    os.symlink("config.json", run / "metrics.jsonl")
    config = json.loads((run / "config.json").read_text())
    argv = ["lm", "train", "--out", str(run), "--resume", "--max-steps", "16", "--no-progress"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_outcome(code, err, argv, usage_ok=False)
    # config.json is the run's config still: only the changed [train] flag recorded (as every --resume does)
    after = json.loads((run / "config.json").read_text())
    assert after == config | {"train": config["train"] | {"max_steps": 16}}, f"config.json overwritten (exit {code})"


@pytest.mark.parametrize("line", ["null", "[1, 2]", '{"step": "12"}'])
def test_resume_with_a_damaged_metrics_line_is_a_clean_outcome(helpers, lm_run, tmp_path, line):
    """Found: AttributeError / TypeError in MetricsLog's _step_of (exit 1)."""
    run = helpers.copy_run(lm_run, tmp_path / "run")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([line, *lines[1:]]) + "\n")
    argv = ["lm", "train", "--out", str(run), "--resume", "--max-steps", "16", "--no-progress"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_outcome(code, err, argv, usage_ok=False)


def test_resume_with_an_optimizer_tensor_missing_is_a_clean_error(helpers, lm_run, tmp_path):
    """What one flipped byte in a tensor name of trainer.safetensors' header does. Found (on a music run):
    KeyError 'exp_avg' in Adam's step (exit 1)."""
    run = helpers.copy_run(lm_run, tmp_path / "run")
    path = run / "checkpoint" / "trainer.safetensors"
    tensors = load_file(str(path))
    tensors["optimizer.0.exp_avf"] = tensors.pop("optimizer.0.exp_avg")
    save_file(tensors, str(path))
    before = helpers.snapshot(run)
    argv = ["lm", "train", "--out", str(run), "--resume", "--max-steps", "16", "--no-progress"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_failure(code, err, argv)
    helpers.assert_unchanged(before, run, argv, err)


def test_resume_with_another_runs_optimizer_tensors_is_a_clean_error(helpers, lm_run, music_run, tmp_path):
    """Found: optimizer state tensors of another model's shapes were loaded unchecked: RuntimeError (size
    mismatch) in Adam's step (exit 1)."""
    run = helpers.copy_run(music_run, tmp_path / "run")
    shutil.copyfile(lm_run / "checkpoint" / "trainer.safetensors", run / "checkpoint" / "trainer.safetensors")
    before = helpers.snapshot(run)
    argv = ["music", "train", "--out", str(run), "--resume", "--max-steps", "12", "--no-progress"]
    code, _, err = helpers.run_cli(argv)
    helpers.assert_clean_failure(code, err, argv)
    helpers.assert_unchanged(before, run, argv, err)
