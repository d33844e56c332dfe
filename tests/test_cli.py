"""The ``rnnkit`` command: error handling, the parser, and ``rnnkit demo``'s wiring.

``rnnkit demo`` trains a 2-layer LSTM language model for 2,400 steps, far past this suite's budget, so its test
replaces the training and the loaded run with fakes and checks what the command asks of them and prints.
The hand-worked Elman and LSTM examples the earlier demo printed are in test_handworked.py.
"""

import subprocess
import sys
import warnings

import pytest

import rnnkit.cli
from rnnkit.cli import demo
from rnnkit.errors import RnnkitError


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    """main() replaces warnings.formatwarning for the process; keep it from leaking into other tests."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)


class FakeRun:
    def __init__(self):
        self.calls = []

    def evaluate(self, path):
        self.calls.append(("evaluate", path))
        return {"bpc": 1.2345}

    def sample(self, prime, *, length, temperature, seed):
        self.calls.append(("sample", prime, length, temperature, seed))
        return f"{prime}sampled at {temperature}"

    def score(self, lines):
        self.calls.append(("score", tuple(lines)))
        n = len(lines)
        return [{"rank": n - i, "logprob": -float(i), "perplexity": 2.0 + i, "text": t} for i, t in enumerate(lines)]


def test_demo_wiring(monkeypatch, capsys, tmp_path):
    seen = {}
    fake = FakeRun()

    def train_lm(cfg, out, *, force=False, resume=False):
        seen.update(cfg=cfg, out=out, force=force)
        return {"step": 7}

    def load_run(out, *, weights):
        seen.update(load=(out, weights))
        return fake

    monkeypatch.setattr(demo, "train_lm", train_lm)
    monkeypatch.setattr(demo, "load_run", load_run)
    out = tmp_path / "run"
    argv = ["demo", "--steps", "7", "--corpus-mb", "0.01", "--seed", "3", "--out", str(out)]
    assert rnnkit.cli.main(argv) == 0
    printed = capsys.readouterr().out

    cfg = seen["cfg"]
    assert seen["out"] == out and seen["force"] is True and seen["load"] == (out, "last")
    assert cfg["train"].max_steps == 7 and cfg["train"].max_minutes is None and cfg["train"].seed == 3
    assert cfg["model"].cell == "lstm" and cfg["data"].level == "char"
    train, valid = tmp_path / "run-corpus" / "corpus.train.txt", tmp_path / "run-corpus" / "corpus.valid.txt"
    assert cfg["data"].train == str(train) and cfg["data"].valid == str(valid)
    assert ("evaluate", str(valid)) in fake.calls
    assert ("sample", "def ", 400, 0.7, 3) in fake.calls and ("sample", "def ", 400, 1.0, 3) in fake.calls

    assert "trained 7 steps; validation: 1.234 bits per character" in printed
    assert "def sampled at 0.7" in printed and "def sampled at 1.0" in printed
    assert [c for c in fake.calls if c[0] == "score"] == [("score", pair) for pair in demo.PAIRS]
    pairs = [line for line in printed.splitlines() if " margin " in line]
    assert len(pairs) == len(demo.PAIRS) and all(line.endswith("margin   1.00  right") for line in pairs)


def test_stdlib_corpus_split(tmp_path):
    train, valid = demo.stdlib_corpus(tmp_path / "c", 0.02)
    a, b = train.read_text(encoding="utf-8"), valid.read_text(encoding="utf-8")
    total = len(a) + len(b)
    assert total >= 20_000
    assert len(b) == total - int(total * 0.95)
    assert "def " in a and "import" in a


def test_errors_are_one_line_with_exit_code_2(capsys, monkeypatch):
    def boom(args):
        raise RnnkitError("something went wrong: do this instead")

    monkeypatch.setattr(demo, "run", boom)
    assert rnnkit.cli.main(["demo"]) == 2
    assert capsys.readouterr().err == "rnnkit: error: something went wrong: do this instead\n"
    with pytest.raises(RnnkitError, match="something went wrong"):
        rnnkit.cli.main(["--debug", "demo"])


def test_interrupt_exits_130(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run", interrupted)
    assert rnnkit.cli.main(["demo"]) == 130
    assert capsys.readouterr().err == "rnnkit: interrupted\n"


@pytest.mark.parametrize("argv", [[], ["nope"], ["demo", "--steps", "soon"]])
def test_bad_command_lines_exit_2_with_usage(capsys, argv):
    with pytest.raises(SystemExit) as info:
        rnnkit.cli.main(argv)
    assert info.value.code == 2
    assert "usage: rnnkit" in capsys.readouterr().err


def test_a_closed_pipe_stops_quietly():
    """`rnnkit tag predict ... | head -1`: when the reader closes the pipe, rnnkit stops with status 141 (128 +
    SIGPIPE) and says nothing, not "rnnkit: error: [Errno 32] Broken pipe" nor a traceback at exit."""
    flood = (
        "import sys, rnnkit.cli as cli\n"
        "def flood(args):\n"
        "    while True:\n"
        "        print('word/O ' * 20)\n"
        "cli.tag.predict = flood\n"
        "sys.exit(cli.main(['tag', 'predict', 'any-run']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", flood], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(100).startswith(b"word/O")
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141 and proc.stderr.read() == b""


def test_an_error_about_a_name_with_line_breaks_stays_one_line(cli):
    for name in ("a\nb", "x\x1e", "tab\there"):
        code, _, err = cli("lm", "eval", name, "--data", name)
        assert code == 2 and err.count("\n") == 1 and len(err.splitlines()) == 1, err
        assert err.startswith("rnnkit: error: ") and repr(name)[1:-1] in err
