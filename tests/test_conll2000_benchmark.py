"""benchmarks/tag_conll2000.py's validation split: CoNLL-2000 has none, so the end of train.txt is held out."""

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "conll2000" / "train.txt"


@pytest.fixture
def bench(benchmarks):
    return benchmarks("tag_conll2000")


def sentence(i):
    return f"w{i} NN B-NP\nran VBD B-VP\n"


def test_the_last_sentences_validate_and_a_rerun_rewrites_nothing(bench, tmp_path):
    source = tmp_path / "train.txt"
    source.write_text("\n".join(sentence(i) for i in range(5)) + "\n")
    train, valid = bench.split(source, 2, tmp_path / "split")
    assert train.read_text() == "\n".join(sentence(i) for i in range(3))
    assert valid.read_text() == "\n".join(sentence(i) for i in (3, 4))
    stamps = train.stat().st_mtime_ns, valid.stat().st_mtime_ns
    bench.split(source, 2, tmp_path / "split")
    assert (train.stat().st_mtime_ns, valid.stat().st_mtime_ns) == stamps
    for bad in (0, 5):
        with pytest.raises(ValueError, match=r"--valid-sentences must lie in 1\.\.4, got "):
            bench.split(source, bad, tmp_path / "split")
    with pytest.raises(ValueError, match="no such file"):
        bench.split(tmp_path / "none.txt", 2, tmp_path / "split")


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data/conll2000 is not here")
def test_the_split_of_the_real_file_keeps_every_sentence(bench, tmp_path):
    train, valid = bench.split(DATA, 1000, tmp_path)
    assert (sentences(train), sentences(valid)) == (7936, 1000)
    assert tokens(train) + tokens(valid) == 211_727  # SOURCE.md's count


def sentences(path):
    return sum(1 for s in path.read_text().split("\n\n") if s.strip())


def tokens(path):
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def test_a_taggers_result_is_written_with_its_summary(bench, tmp_path, capsys):
    """common.write_tagger_result, which tag_conll2000.py and tag_conll2003.py end with."""
    metrics = {"f1": 0.9, "precision": 0.8, "recall": 1.0, "token_accuracy": 0.95, "per_type": {"NP": {"f1": 0.9}}}
    sys.modules["common"].write_tagger_result("x", {"metrics": metrics, "train_minutes": 1.5}, {"config": "c"})
    written = json.loads((tmp_path / "tag_x.json").read_text())
    summary = {"f1": 0.9, "precision": 0.8, "recall": 1.0, "token_accuracy": 0.95, "per_type_f1": {"NP": 0.9}}
    assert written["valid"] == summary and written["setting"]["config"] == "c" and written["train_minutes"] == 1.5
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == summary | {"minutes": 1.5}
