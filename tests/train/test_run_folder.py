"""The run folder: its files, the metrics log, atomic checkpoints, corrupted files, and what --resume and
--force allow."""

import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnkit.cli
from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm_run import load_run
from rnnkit.train import checkpoint as ckpt


def write_corpus(path: Path, n: int = 244, seed: int = 1) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(rng.choice("abcde fg\n") for _ in range(n)), encoding="utf-8")
    return path


def train_argv(tmp: Path, out: Path, *extra: str, valid: bool = False) -> list[str]:
    """12 steps per epoch."""
    argv = ["lm", "train", "--train", str(write_corpus(tmp / "train.txt")), "--level", "char", "--out", str(out)]
    if valid:
        argv += ["--valid", str(write_corpus(tmp / "valid.txt", n=60, seed=2)), "--eval-batch-size", "2"]
    argv += ["--hidden", "8", "--layers", "1", "--batch-size", "4", "--bptt", "5", "--no-progress"]
    return argv + list(extra)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]
    assert last.startswith("rnnkit: error: ") and "Traceback" not in err
    return last


def test_run_folder_layout_and_metrics_log(tmp_path):
    out = tmp_path / "run"
    argv = train_argv(tmp_path, out, "--epochs", "2", "--log-every", "4", "--clip-norm", "1000", valid=True)
    assert rnnkit.cli.main(argv) == 0

    assert sorted(p.name for p in out.iterdir()) == [
        ".lock",
        "best.safetensors",
        "checkpoint",
        "config.json",
        "metrics.jsonl",
        "vocab.json",
    ]
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == [
        "model.safetensors",
        "trainer.json",
        "trainer.safetensors",
    ]
    config = json.loads((out / "config.json").read_text())
    assert set(config) == {"task", "rnnkit", "files", "data", "model", "train"} and config["task"] == "lm"
    assert config["files"] == ["vocab.json"]
    assert config["model"]["hidden"] == 8 and config["train"]["bptt"] == 5 and config["data"]["level"] == "char"
    vocab = json.loads((out / "vocab.json").read_text())
    assert vocab["format"] == "rnnkit-vocab" and vocab["tokens"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert set(vocab["tokens"][4:]) == set("abcde fg\n")
    meta = json.loads((out / "checkpoint" / "trainer.json").read_text())
    assert (meta["step"], meta["epoch"], meta["position"], meta["world"]) == (24, 2, 0, 1)
    weights = load_file(str(out / "checkpoint" / "model.safetensors"))
    assert weights["embedding.weight"].shape == (13, 8) and weights["decoder.weight"].shape == (13, 8)

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    epochs = [r for r in records if "valid_loss" in r]
    assert len(records) == len(steps) + len(epochs) == 8
    assert [r["step"] for r in records] == [4, 8, 12, 12, 16, 20, 24, 24]
    assert [r["step"] for r in epochs] == [12, 24] and [r["epoch"] for r in epochs] == [1, 2]
    for r in steps:
        assert {"step", "epoch", "loss", "lr", "tok_s", "clipped_frac", "grad_norm", "skipped", "bpc"} <= set(r)
        assert r["lr"] == 0.002 and r["tok_s"] > 0 and r["clipped_frac"] == 0.0 and r["skipped"] == 0
        assert r["bpc"] == pytest.approx(r["loss"] / math.log(2), rel=1e-5)
        assert 0 < r["loss"] < 4
    for r in epochs:
        assert {"valid_loss", "valid_ppl", "valid_bpc", "lr"} <= set(r)
        assert r["valid_ppl"] == pytest.approx(math.exp(r["valid_loss"]), rel=1e-5)
    assert epochs[1]["valid_loss"] < steps[0]["loss"]  # it learned something


def test_crash_between_the_renames_leaves_a_loadable_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert rnnkit.cli.main(train_argv(tmp_path, out, "--max-steps", "5")) == 0
    first = snapshot(out / "checkpoint")

    real_rename = Path.rename

    def rename(self, target):
        if self.name == "checkpoint.tmp":  # the old checkpoint was already moved to checkpoint.old
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="No space left"):
        rnnkit.cli.main(["--debug", "lm", "train", "--out", str(out), "--resume", "--max-steps", "9", "--no-progress"])
    monkeypatch.setattr(Path, "rename", real_rename)

    assert not (out / "checkpoint").exists() and (out / "checkpoint.old").is_dir()
    assert ckpt.checkpoint_dir(out) == out / "checkpoint.old"
    assert snapshot(out / "checkpoint.old") == first  # the step-5 checkpoint, intact
    run = load_run(out, weights="last")
    saved = load_file(str(out / "checkpoint.old" / "model.safetensors"))
    assert all(torch.equal(p, saved[k]) for k, p in run.model.state_dict().items())

    # the run resumes from it and ends where an uninterrupted run ends
    assert rnnkit.cli.main(["lm", "train", "--out", str(out), "--resume", "--max-steps", "9", "--no-progress"]) == 0
    assert json.loads((out / "checkpoint" / "trainer.json").read_text())["step"] == 9
    assert not (out / "checkpoint.old").exists()
    straight = tmp_path / "straight"
    assert rnnkit.cli.main(train_argv(tmp_path, straight, "--max-steps", "9")) == 0
    a = load_file(str(out / "checkpoint" / "model.safetensors"))
    b = load_file(str(straight / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def trained(tmp_path):
    out = tmp_path / "run"
    assert rnnkit.cli.main(train_argv(tmp_path, out, "--max-steps", "4", "--log-every", "1")) == 0
    return out


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("model.safetensors", b"this is not a safetensors file"),
        ("model.safetensors", "truncated"),
        ("trainer.safetensors", "truncated"),
        ("trainer.json", "truncated"),
    ],
)
def test_corrupted_checkpoint_file_is_a_one_line_error_naming_it(trained, capsys, name, content):
    path = trained / "checkpoint" / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "truncated" else content)

    with pytest.raises(RnnkitError) as info:
        ckpt.load_checkpoint(trained, load_run(trained).model)
    message = str(info.value)
    assert str(path) in message and "corrupted" in message and "\n" not in message

    assert rnnkit.cli.main(["lm", "train", "--out", str(trained), "--resume", "--no-progress"]) == 2
    line = error_line(capsys)
    assert str(path) in line and "corrupted" in line


def test_corrupted_weights_are_an_error_when_loading_a_run(trained, capsys):
    (trained / "checkpoint" / "model.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(RnnkitError, match=r"model\.safetensors is corrupted"):
        load_run(trained, weights="last")
    (trained / "best.safetensors").write_bytes(b"garbage")
    assert rnnkit.cli.main(["lm", "sample", str(trained), "--length", "5"]) == 2
    assert f"{trained / 'best.safetensors'} is corrupted" in error_line(capsys)


def test_trainer_json_with_the_wrong_content_is_a_clear_error(trained, capsys):
    """Valid JSON that is not a trainer state (e.g. another tool's file, or an older format) is corrupt too."""
    (trained / "checkpoint" / "trainer.json").write_text("{}\n")
    assert rnnkit.cli.main(["lm", "train", "--out", str(trained), "--resume", "--no-progress"]) == 2
    assert "trainer.json" in error_line(capsys)


def test_another_run_is_not_overwritten_without_resume_or_force(trained, tmp_path, capsys):
    before = snapshot(trained)
    assert rnnkit.cli.main(train_argv(tmp_path, trained, "--max-steps", "2", "--hidden", "10")) == 2
    line = error_line(capsys)
    assert "--resume" in line and "--force" in line and str(trained) in line
    assert snapshot(trained) == before


def test_force_overwrites_the_run(trained, tmp_path):
    assert len((trained / "metrics.jsonl").read_text().splitlines()) == 4
    argv = train_argv(tmp_path, trained, "--max-steps", "2", "--hidden", "10", "--log-every", "1", "--force")
    assert rnnkit.cli.main(argv) == 0
    assert json.loads((trained / "config.json").read_text())["model"]["hidden"] == 10
    assert json.loads((trained / "checkpoint" / "trainer.json").read_text())["step"] == 2
    assert load_file(str(trained / "best.safetensors"))["embedding.weight"].shape[1] == 10
    steps = [json.loads(line)["step"] for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # the old run's four lines are gone


def test_resume_and_force_together_are_refused(trained, capsys):
    argv = ["lm", "train", "--out", str(trained), "--resume", "--force", "--no-progress"]
    assert rnnkit.cli.main(argv) == 2
    assert "--resume" in error_line(capsys)


@pytest.mark.parametrize("exists", [True, False])
def test_resume_without_a_run_fails_clearly(tmp_path, capsys, exists):
    folder = tmp_path / "empty"
    if exists:
        folder.mkdir()
    assert rnnkit.cli.main(["lm", "train", "--out", str(folder), "--resume", "--no-progress"]) == 2
    line = error_line(capsys)
    assert str(folder) in line and "run folder" in line
    if exists:
        assert list(folder.iterdir()) == []
    else:
        assert not folder.exists()


def test_resume_with_a_checkpointless_run_fails_clearly(trained, capsys):
    for name in ("model.safetensors", "trainer.safetensors", "trainer.json"):
        (trained / "checkpoint" / name).unlink()
    assert rnnkit.cli.main(["lm", "train", "--out", str(trained), "--resume", "--no-progress"]) == 2
    line = error_line(capsys)
    assert "no complete checkpoint" in line and "--force" in line


def test_resume_refuses_changed_model_and_data_options(trained, tmp_path, capsys):
    before = snapshot(trained)
    base = ["lm", "train", "--out", str(trained), "--resume", "--no-progress"]
    assert rnnkit.cli.main([*base, "--hidden", "16"]) == 2
    assert "drop --hidden" in error_line(capsys)
    assert rnnkit.cli.main([*base, "--level", "word"]) == 2
    assert "drop --level" in error_line(capsys)
    assert snapshot(trained) == before


def test_resume_accepts_the_same_model_options_and_changed_train_options(trained, capsys):
    argv = ["lm", "train", "--out", str(trained), "--resume", "--hidden", "8", "--max-steps", "7", "--no-progress"]
    assert rnnkit.cli.main(argv) == 0
    assert "reached --max-steps 7" in capsys.readouterr().err
    assert json.loads((trained / "checkpoint" / "trainer.json").read_text())["step"] == 7
    steps = [json.loads(line)["step"] for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6, 7]


def test_resume_saves_changed_train_options_in_the_runs_config(trained, capsys):
    before = json.loads((trained / "config.json").read_text())
    argv = ["lm", "train", "--out", str(trained), "--resume", "--max-steps", "7", "--lr", "0.5", "--no-progress"]
    assert rnnkit.cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "[train] lr" in err and "-> 0.5" in err and "[train] max_steps" in err
    after = json.loads((trained / "config.json").read_text())
    assert after["train"] == before["train"] | {"lr": 0.5, "max_steps": 7}
    assert {k: v for k, v in after.items() if k != "train"} == {k: v for k, v in before.items() if k != "train"}
    # a later --resume without the flags continues with them
    assert rnnkit.cli.main(["lm", "train", "--out", str(trained), "--resume", "--max-steps", "8", "--no-progress"]) == 0
    assert "[train] lr" not in capsys.readouterr().err
    assert json.loads((trained / "config.json").read_text())["train"]["lr"] == 0.5


def test_loading_and_resuming_never_unpickle(trained, monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling while loading a run")

    for module, name in [(torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")]:
        monkeypatch.setattr(module, name, refuse)
    run = load_run(trained)
    assert run.model.embedding.weight.shape == (13, 8)
    argv = ["lm", "train", "--out", str(trained), "--resume", "--max-steps", "6", "--no-progress"]
    assert rnnkit.cli.main(argv) == 0
    assert json.loads((trained / "checkpoint" / "trainer.json").read_text())["step"] == 6
