"""The tutorials' case for CTC's blank, end to end on a small trained model (espeak-ng): in word units, "one" and
"one one" (and "no" and "no no no") come out different with the blank; the same model without it (its repeats
merged, as a blank-less model must be trained) writes "one" for "one one" and "no" for "no no no"."""

import json
import shutil

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (Debian: apt-get install espeak-ng)"
)

FLAGS = ["--units", "word", "--hidden", "32", "--layers", "1", "--channels", "32", "--n-mels", "20"]
FLAGS += ["--no-spec-augment", "--dropout", "0", "--epochs", "80", "--batch-size", "4", "--lr", "0.005"]
FLAGS += ["--no-progress", "--seed", "0"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, train_cli):
    tmp = tmp_path_factory.mktemp("blank")
    (tmp / "lines.txt").write_text("one\none one\nno\nno no no\ngo\n")
    train_cli("speech", "make-corpus", "--text", tmp / "lines.txt", "--voices", "en-us,en+f4", "--speeds", "150,190",
              "--out", tmp / "corpus", "--seed", "1")  # fmt: skip
    return tmp / "corpus" / "manifest.jsonl"


@pytest.fixture(scope="module", params=["--blank", "--no-blank"])
def transcripts(request, corpus, tmp_path_factory, train_cli):
    out = tmp_path_factory.mktemp("ctc") / "run"
    train_cli("ctc", "train", "--train", corpus, "--out", out, request.param, *FLAGS)
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    return request.param, out, {r["text"]: r["path"] for r in rows}  # one recording of each transcript


def test_the_blank_tells_one_from_one_one(transcripts, corpus, cli):
    blank, run, paths = transcripts
    heard = {}
    for text, path in paths.items():
        code, out, _ = cli("ctc", "transcribe", run, corpus.parent / path)
        assert code == 0
        heard[text] = out.strip()
    if blank == "--blank":
        assert heard == {t: t for t in paths}  # every one right, "one one" and "no no no" included
    else:  # a run of one word is one word: the repeats are lost, whatever was said
        assert heard["one one"] == "one" and heard["no no no"] == "no"
    code, out, _ = cli("ctc", "eval", run, "--data", corpus, "--json")
    wer = json.loads(out)["wer"]
    assert code == 0 and (wer == 0 if blank == "--blank" else wer > 0.2)


def test_word_units_error_names_the_unknown_word(transcripts, corpus, tmp_path, cli):
    _, run, paths = transcripts
    wav = str(corpus.parent / paths["one"])
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": wav, "text": "one two"}) + "\n")
    code, _, err = cli("ctc", "eval", run, "--data", tmp_path / "m.jsonl")
    assert code == 2 and "'two' is not in the run's vocabulary (go no one)" in err
