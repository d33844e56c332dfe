"""Long generation streams its output, keeps what it made on Ctrl-C, and checks its output path first."""

import json
import warnings

import pytest

import rnnkit.cli
from rnnkit.data.music import read_midi
from rnnkit.tasks import music_run, sampling
from rnnkit.tasks.lm_run import load_run
from tests.train.test_run_folder import train_argv


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    assert rnnkit.cli.main(train_argv(tmp, tmp / "run", "--max-steps", "40", "--lr", "0.02")) == 0
    return tmp / "run"


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("music")
    (tmp / "rolls.json").write_text(json.dumps([[[60, 64, 67], [62, 65], [60, 64, 67]] * 3] * 6))
    argv = ["music", "train", "--train", str(tmp / "rolls.json"), "--out", str(tmp / "run"), "--hidden", "6"]
    assert rnnkit.cli.main([*argv, "--batch-size", "2", "--max-steps", "2", "--no-progress"]) == 0
    return tmp / "run"


def interrupt_after(monkeypatch, module, name, calls):
    real, seen = getattr(module, name), [0]

    def counting(*args, **kwargs):
        seen[0] += 1
        if seen[0] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)


def test_lm_sample_ctrl_c_keeps_the_tokens_made_so_far(lm, capsys, monkeypatch):
    full = load_run(lm).sample("ab", length=40, seed=3)
    interrupt_after(monkeypatch, sampling, "sample_next", 10)
    assert rnnkit.cli.main(["lm", "sample", str(lm), "--prime", "ab", "--length", "40", "--seed", "3"]) == 130
    out = capsys.readouterr()
    printed = out.out.removesuffix("\n")
    assert len(printed) == 12 and full.startswith(printed)  # the prime and the 10 tokens drawn before Ctrl-C
    assert "interrupted after 10 tokens" in out.err


def test_lm_sample_json_on_ctrl_c_says_interrupted(lm, capsys, monkeypatch):
    interrupt_after(monkeypatch, sampling, "sample_next", 4)
    assert rnnkit.cli.main(["lm", "sample", str(lm), "--length", "40", "--json"]) == 130
    result = json.loads(capsys.readouterr().out)
    assert result["interrupted"] is True and len(result["text"]) == 4


def test_lm_sample_streams_the_same_text_as_sample(lm, capsys):
    assert rnnkit.cli.main(["lm", "sample", str(lm), "--prime", "a", "--length", "30", "--seed", "5"]) == 0
    assert capsys.readouterr().out == load_run(lm).sample("a", length=30, seed=5) + "\n"


def test_music_generate_ctrl_c_writes_the_steps_made(music, tmp_path, capsys, monkeypatch):
    real = music_run.MusicRun.stream

    def interrupted(self, *args, **kwargs):
        for i, step in enumerate(real(self, *args, **kwargs)):
            if i == 7:
                raise KeyboardInterrupt
            yield step

    monkeypatch.setattr(music_run.MusicRun, "stream", interrupted)
    out = tmp_path / "part.mid"
    argv = ["music", "generate", str(music), "--seed-chord", "60,64,67", "--steps", "1000", "--out", str(out)]
    assert rnnkit.cli.main(argv) == 130
    assert "interrupted after 7 of 1000 steps" in capsys.readouterr().err
    assert len(read_midi(out)) <= 8  # the seed and the 7 steps (a MIDI file ends at its last note)


@pytest.mark.parametrize("target", ["missing/x.mid", ".", "x.txt"])
def test_music_generate_checks_its_output_before_any_work(music, tmp_path, capsys, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(music_run, "load_run", lambda *a, **k: pytest.fail("the model was loaded"))
    argv = ["music", "generate", str(music), "--seed-chord", "60", "--steps", "4", "--out", target]
    assert rnnkit.cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("rnnkit: error:") == 1 and "Traceback" not in err
