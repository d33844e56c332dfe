"""``rnnkit diagnose`` end to end: cells at random init, a run folder trained by ``rnnkit lm train``, errors."""

import json
import warnings
from types import SimpleNamespace

import pytest
import torch

import rnnkit.cli
from rnnkit.cli.diagnose import clipping_history

TEXT = "the cat sat on the mat and the dog ran under the log\n" * 12


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny char-level LSTM LM, trained with a clip norm small enough to fire on every step."""
    tmp = tmp_path_factory.mktemp("diagnose")
    (tmp / "text.txt").write_text(TEXT, encoding="utf-8")
    argv = ["lm", "train", "--train", str(tmp / "text.txt"), "--level", "char", "--out", str(tmp / "run")]
    argv += ["--hidden", "12", "--layers", "2", "--batch-size", "4", "--bptt", "10", "--epochs", "1"]
    argv += ["--clip-norm", "0.01", "--log-every", "2", "--no-progress"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert rnnkit.cli.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return tmp


def main(capsys, *argv: str) -> tuple[int, str, str]:
    code = rnnkit.cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cells_table_and_plot(tmp_path, capsys):
    png = tmp_path / "flow.png"
    argv = ["diagnose", "--cell", "rnn", "lstm:forget_bias=3", "irnn:radius=1.05", "--steps", "40"]
    code, out, _ = main(capsys, *argv, "--hidden", "16", "--clip", "1.0", "--out", str(png))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "||dL_T/dh_t|| over T = 40 steps; clip_grad_norm_ at 1"
    assert lines[1].split() == ["model", "t=T", "t=T-10", "t=T/2", "t=1", "ratio", "1/T", "||dL/dθ||", "clip", "factor"]
    ratio = {line.split()[0]: float(line.split()[5]) for line in lines[2:5]}
    assert ratio["rnn"] < 1e-4 < ratio["lstm:forget_bias=3"] and ratio["irnn:radius=1.05"] > 1
    assert lines[-1] == f"plot: {png}"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_json_has_every_norm_and_the_clipped_curve(tmp_path, capsys):
    argv = ["diagnose", "--cell", "irnn:radius=1.1", "--steps", "30", "--hidden", "8", "--clip", "0.5", "--json"]
    code, out, _ = main(capsys, *argv, "--out", str(tmp_path / "f.png"))
    assert code == 0
    (model,) = json.loads(out)["models"]
    assert len(model["norms"]) == 30 and model["clip_factor"] == pytest.approx(0.5 / (model["grad_norm"] + 1e-6))
    assert model["clipped_norms"] == pytest.approx([n * model["clip_factor"] for n in model["norms"]])


def test_run_folder_on_its_text_and_on_random_tokens(run, tmp_path, capsys):
    argv = ["diagnose", "--run", str(run / "run"), "--text", str(run / "text.txt"), "--offset", "5", "--steps", "30"]
    code, out, _ = main(capsys, *argv, "--layer", "0", "--out", str(tmp_path / "run.png"))
    assert code == 0
    assert f"{run / 'run'} (lstm)" in out
    assert "training clipped the gradient (--clip-norm 0.01) on 100.0% of" in out
    code, out, _ = main(capsys, "diagnose", "--run", str(run / "run"), "--json", "--out", str(tmp_path / "r.png"))
    (model,) = json.loads(out)["models"]
    assert len(model["norms"]) == 100 and model["training"]["clipped_frac"] == 1.0
    assert all(n > 0 for n in model["norms"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --cell NAME ... and/or --run DIR"),
        (["--cell", "tanh"], "unknown cell 'tanh' in 'tanh': choose one of rnn, "),
        (["--cell", "lstm:size"], "cell 'lstm:size': expected NAME:key=value,..., got 'size'"),
        (["--cell", "rnn", "--layer", "3"], "--layer 3 is out of range for a stack of 1 layer(s)"),
        (["--cell", "rnn", "--clip", "0"], "--clip must be positive, got 0.0"),
        (["--cell", "rnn", "--steps", "0"], "--steps must be at least 1, got 0"),
        (["--run", "no/such/run"], "no/such/run: no such run folder"),
        (["--cell", "rnn", "--text", "a.txt"], "--text is the input of a --run model: give --run DIR too"),
    ],
)
def test_errors_are_one_line(capsys, argv, message):
    code, _, err = main(capsys, "diagnose", *argv)
    assert code == 2 and "Traceback" not in err
    assert err.strip().startswith(f"rnnkit: error: {message}")


def test_text_too_short_for_the_steps(run, capsys):
    code, _, err = main(
        capsys, "diagnose", "--run", str(run / "run"), "--text", str(run / "text.txt"), "--steps", "5000"
    )
    assert code == 2
    assert err.strip() == (
        f"rnnkit: error: {run / 'text.txt'}: {len(TEXT)} tokens from --offset 0, --steps 5000 needs 5001: "
        "lower --steps or --offset"
    )


def test_clipping_history_weights_each_log_line_by_its_steps(tmp_path):
    lines = [
        {"step": 10, "clipped_frac": 0.5},
        {"step": 20, "clipped_frac": 0.0},
        {"step": 20, "valid_loss": 1.0},
        {"step": 25, "clipped_frac": 1.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 3')  # torn tail
    run = SimpleNamespace(path=tmp_path, train=SimpleNamespace(clip_norm=1.0))
    assert clipping_history(run) == {"clip_norm": 1.0, "logged_steps": 25, "clipped_frac": 0.4}
