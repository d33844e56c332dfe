"""``rnnkit music train|eval|generate`` end to end on tiny generated piano rolls, resume, and errors."""

import json
import random

import pytest
import torch
from safetensors.torch import load_file

import rnnkit.cli
from rnnkit.data.music import pitches_to_roll, read_midi, roll_to_pitches, write_midi

TRAIN_FLAGS = ["--cell", "gru", "--hidden", "12", "--batch-size", "3", "--lr", "0.01", "--no-progress"]


def chorales(n: int, seed: int) -> list:
    """Four-voice 'chorales' walking up and down a C major triad, of 5 to 12 steps."""
    rng = random.Random(seed)
    triads = [[48, 60, 64, 67], [53, 60, 65, 69], [55, 59, 62, 67]]
    return [[rng.choice(triads) for _ in range(rng.randint(5, 12))] for _ in range(n)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("music")
    (tmp / "train.json").write_text(json.dumps(chorales(24, 1)))
    (tmp / "valid.json").write_text(json.dumps(chorales(6, 2)))
    return tmp


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "jsb"
    argv = ["music", "train", "--train", data / "train.json", "--valid", data / "valid.json", "--out", out]
    assert rnnkit.cli.main([str(a) for a in [*argv, *TRAIN_FLAGS, "--epochs", "4", "--transpose", "2"]]) == 0
    return out


def test_train_writes_a_run_folder_and_learns(run):
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["cell"] == "gru" and config["data"]["transpose"] == 2
    assert (run / "best.safetensors").is_file() and (run / "checkpoint" / "model.safetensors").is_file()
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    nll = [r["valid_nll"] for r in epochs if "valid_nll" in r]
    assert len(nll) == 4 and min(nll) < nll[0] < 88 * 0.7


def test_eval_prints_nll_per_step(run, data, cli):
    code, out, _ = cli("music", "eval", run, "--data", data / "valid.json", "--json")
    result = json.loads(out)
    assert code == 0 and result["sequences"] == 6
    assert result["steps"] == sum(len(s) - 1 for s in chorales(6, 2))
    best = min(json.loads(line).get("valid_nll", 1e9) for line in (run / "metrics.jsonl").read_text().splitlines())
    assert result["nll"] == pytest.approx(best, rel=1e-5)
    code, out, _ = cli("music", "eval", run, "--data", data / "valid.json", "--batch-size", "1")
    assert code == 0 and f"NLL per time step {result['nll']:.4f}" in out


def test_generate_from_a_chord_and_from_a_midi_file(run, tmp_path, cli):
    code, out, err = cli(
        "music", "generate", run, "--seed-chord", "48,60,64,67", "--steps", "8",
        "--out", tmp_path / "a.mid", "--json",
    )  # fmt: skip
    assert code == 0, err
    steps = json.loads(out)["steps"]
    assert len(steps) == 9 and steps[0] == [48, 60, 64, 67]
    assert roll_to_pitches(read_midi(tmp_path / "a.mid")) == steps
    write_midi(pitches_to_roll([[60, 64], [62, 65]]), tmp_path / "seed.mid")
    argv = ["music", "generate", run, "--seed-midi", tmp_path / "seed.mid", "--steps", "3"]
    code, out, _ = cli(*argv, "--temperature", "0", "--out", tmp_path / "b.mid", "--json")
    assert code == 0 and json.loads(out)["steps"][:2] == [[60, 64], [62, 65]]
    again = cli(*argv, "--temperature", "0", "--out", tmp_path / "c.mid", "--json")[1]
    assert json.loads(again) == json.loads(out)


def test_resume_continues_exactly(data, tmp_path, cli):
    base = ["music", "train", "--train", data / "train.json", "--valid", data / "valid.json", *TRAIN_FLAGS]
    base += ["--epochs", "3", "--transpose", "3", "--dropout", "0.2"]
    assert cli(*base, "--out", tmp_path / "whole")[0] == 0
    code, _, err = cli(*base, "--out", tmp_path / "parts", "--max-steps", "11")  # stops inside epoch 2
    assert code == 0 and "continue with rnnkit music train --out" in err
    resume = ["music", "train", "--out", tmp_path / "parts", "--resume", "--max-steps", "1000"]
    code, _, err = cli(*resume)
    assert code == 0 and "finished (done) after 24 steps" in err
    whole, parts = (load_file(str(tmp_path / r / "checkpoint" / "model.safetensors")) for r in ("whole", "parts"))
    assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--seed-chord", "60,x"], "--seed-chord expects comma-separated MIDI pitches"),
        (["generate", "--seed-chord", "60,12"], "pitch 12 out of the 88-key range 21..108 at note 2 of the chord"),
        (["generate", "--seed-chord", "60", "--steps", "-1"], "--steps must lie in [0, 1,000,000]"),
        (["generate", "--seed-chord", "60", "--temperature", "-1"], "--temperature must be at least 0"),
        (["eval", "--data", "missing.json"], "missing.json: no such file"),
    ],
)
def test_bad_options_are_one_line_errors(run, tmp_path, cli, argv, message):
    argv = ["music", argv[0], run, *argv[1:]]
    if argv[1] == "generate":
        argv += ["--out", tmp_path / "x.mid"]
    code, _, err = cli(*argv)
    assert code == 2 and err.strip().startswith("rnnkit: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_training_errors(data, tmp_path, cli):
    (tmp_path / "bad.json").write_text(json.dumps([[[60], [64]], [[60], [7]]]))
    code, _, err = cli("music", "train", "--train", tmp_path / "bad.json", "--out", tmp_path / "r")
    assert code == 2 and f"pitch 7 out of the 88-key range 21..108 at sequence 1, step 1 of {tmp_path}" in err
    code, _, err = cli("music", "eval", tmp_path / "nowhere", "--data", data / "valid.json")
    assert code == 2 and "no such run folder; train one with: rnnkit music train" in err


def test_help_shows_examples(capsys):
    for verb in ("train", "eval", "generate"):
        with pytest.raises(SystemExit):
            rnnkit.cli.main(["music", verb, "--help"])
        assert "example" in capsys.readouterr().out
