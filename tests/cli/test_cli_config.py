"""Config resolution: defaults < config file (TOML or JSON) < flags; errors name the key and the file;
--print-config; the seed decides the weights."""

import json
import random
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnkit.cli
from rnnkit.config import build, read_config_file
from rnnkit.errors import RnnkitError
from rnnkit.train.config import TrainConfig


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it


def write_corpus(path: Path, n: int = 244, seed: int = 1) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(rng.choice("abcde fg\n") for _ in range(n)), encoding="utf-8")
    return path


def printed_config(capsys, *argv: str) -> dict:
    assert rnnkit.cli.main(["lm", "train", *argv, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("rnnkit: error: ")
    return err.strip()


TOML = """
[data]
level = "word"
min_freq = 2

[model]
cell = "gru"
hidden = 32
dropout = 0.25

[train]
lr = 0.5
batch_size = 7
optimizer = "sgd"
"""


def test_flags_override_the_file_which_overrides_the_defaults(tmp_path, capsys):
    config = tmp_path / "small.toml"
    config.write_text(TOML)
    out = tmp_path / "run"
    cfg = printed_config(capsys, "--out", str(out), "--config", str(config), "--lr", "0.1", "--hidden", "12")
    assert set(cfg) == {"data", "model", "train"}
    assert cfg["train"]["lr"] == 0.1 and cfg["model"]["hidden"] == 12  # flags
    assert cfg["train"]["batch_size"] == 7 and cfg["train"]["optimizer"] == "sgd"  # file
    assert cfg["model"]["cell"] == "gru" and cfg["model"]["dropout"] == 0.25 and cfg["data"]["min_freq"] == 2
    assert cfg["train"]["bptt"] == 64 and cfg["model"]["layers"] == 2 and cfg["train"]["clip_norm"] == 5.0  # defaults
    assert cfg["train"]["max_steps"] is None and cfg["data"]["train"] is None
    assert not out.exists()  # --print-config only prints


def test_bool_flags_override_the_file(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[data]\nlevel = "char"\n[model]\ntie_weights = true\nvariational = true\n')
    cfg = printed_config(capsys, "--out", str(tmp_path / "r"), "--config", str(config), "--no-tie-weights")
    assert cfg["model"]["tie_weights"] is False and cfg["model"]["variational"] is True


def test_json_config_file(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"data": {"level": "char"}, "train": {"clip_norm": None, "epochs": 3, "lr": 1}}))
    cfg = printed_config(capsys, "--out", str(tmp_path / "r"), "--config", str(config))
    assert cfg["train"]["clip_norm"] is None and cfg["train"]["epochs"] == 3
    assert cfg["train"]["lr"] == 1.0 and isinstance(cfg["train"]["lr"], float)  # an int is a fine float


def test_the_shipped_configs_resolve(capsys):
    root = Path(__file__).resolve().parents[2]
    cfg = printed_config(capsys, "--out", "unused", "--config", str(root / "configs/lm/ptb_small.toml"))
    assert (cfg["model"]["hidden"], cfg["train"]["lr"], cfg["train"]["optimizer"]) == (200, 20.0, "sgd")
    cfg = printed_config(capsys, "--out", "unused", "--config", str(root / "configs/lm/ptb_small_tied.toml"))
    assert cfg["model"]["tie_weights"] is True


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("unknown.toml", '[data]\nlevel = "char"\n[train]\nlearning_rate = 0.1\n', ["'learning_rate'", "TrainConfig"]),
        ("table.toml", '[data]\nlevel = "char"\n[optim]\nlr = 0.1\n', ["optim", "[train]"]),
        ("type.toml", '[data]\nlevel = "char"\n[train]\nbatch_size = "big"\n', ["'batch_size'", "int", "'big'"]),
        ("bool.toml", '[data]\nlevel = "char"\n[train]\nepochs = true\n', ["'epochs'", "int"]),
        ("null.json", '{"data": {"level": "char"}, "model": {"hidden": null}}', ["'hidden'", "int"]),
        ("choice.toml", '[data]\nlevel = "char"\n[model]\ncell = "transformer"\n', ["'cell'", "transformer"]),
        ("broken.toml", "[data\nlevel = 1\n", ["not valid TOML"]),
        ("broken.json", '{"data": ', ["not valid JSON"]),
        ("list.json", "[1, 2]", ["table of options"]),
    ],
)
def test_bad_config_files_are_one_line_errors_naming_key_and_file(tmp_path, capsys, name, text, expected):
    config = tmp_path / name
    config.write_text(text)
    assert rnnkit.cli.main(["lm", "train", "--out", str(tmp_path / "r"), "--config", str(config)]) == 2
    line = error_line(capsys)
    assert str(config) in line or "option 'cell'" in line  # a bad choice names the option
    for part in expected:
        assert part in line
    assert not (tmp_path / "r").exists()


def test_missing_config_file(tmp_path, capsys):
    missing = tmp_path / "nope.toml"
    assert rnnkit.cli.main(["lm", "train", "--out", str(tmp_path / "r"), "--config", str(missing)]) == 2
    assert f"{missing}: no such config file" in error_line(capsys)


def test_build_checks_the_layers_in_order():
    cfg = build(TrainConfig, ({"lr": 1, "epochs": 4}, "file.toml"), ({"lr": 0.3}, "command line"))
    assert (cfg.lr, cfg.epochs, cfg.bptt) == (0.3, 4, 64)
    with pytest.raises(RnnkitError, match=r"^--epochs must be int, got 2\.5$"):  # a flag's error names the flag
        build(TrainConfig, ({}, "file.toml"), ({"epochs": 2.5}, "command line"))
    with pytest.raises(RnnkitError, match=r"^f \[train\]: option 'epochs' must be at least 1, got 0$"):
        build(TrainConfig, ({"epochs": 0}, "f [train]"))


def test_read_config_file_chooses_the_parser_by_suffix(tmp_path):
    (tmp_path / "a.json").write_text('{"train": {"lr": 2}}')
    (tmp_path / "a.cfg").write_text("[train]\nlr = 2\n")
    assert read_config_file(tmp_path / "a.json") == read_config_file(tmp_path / "a.cfg") == {"train": {"lr": 2}}


def test_invalid_values_from_flags_are_one_line_errors(tmp_path, capsys):
    train = write_corpus(tmp_path / "t.txt")
    base = ["lm", "train", "--train", str(train), "--level", "char", "--out", str(tmp_path / "r")]
    for flags, message in [
        (["--dropout", "1.5"], "--dropout must lie in [0, 1)"),
        (["--lr", "0"], "--lr must lie in (0, 1e+06]"),
        (["--tie-weights", "--cell", "scrn", "--hidden", "8"], "--tie-weights needs the last layer's output size"),
        (["--ar", "-1"], "--ar must be"),
        (["--weight-drop", "0.5", "--cell", "mingru"], "--weight-drop needs a cell with weight_hh"),
        (["--batch-size", "1000"], "too few for batch_size 1000"),
    ]:
        assert rnnkit.cli.main([*base, *flags]) == 2
        assert message in error_line(capsys)
    assert not (tmp_path / "r" / "checkpoint").exists()


def test_level_is_required(tmp_path, capsys):
    argv = ["lm", "train", "--train", str(write_corpus(tmp_path / "t.txt")), "--out", str(tmp_path / "r")]
    assert rnnkit.cli.main(argv) == 2
    assert "--level is required" in error_line(capsys)


def _weights(tmp_path: Path, name: str, seed: int) -> dict[str, torch.Tensor]:
    train = write_corpus(tmp_path / "t.txt")
    out = tmp_path / name
    argv = ["lm", "train", "--train", str(train), "--level", "char", "--out", str(out), "--seed", str(seed)]
    argv += ["--hidden", "8", "--layers", "2", "--dropout", "0.2", "--batch-size", "4", "--bptt", "5"]
    assert rnnkit.cli.main([*argv, "--max-steps", "6", "--no-progress"]) == 0
    return load_file(str(out / "checkpoint" / "model.safetensors"))


def test_same_seed_same_weights_different_seed_different_weights(tmp_path):
    a, b, c = _weights(tmp_path, "a", 5), _weights(tmp_path, "b", 5), _weights(tmp_path, "c", 6)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.equal(a[k], c[k]) for k in a if k != "decoder.bias")
