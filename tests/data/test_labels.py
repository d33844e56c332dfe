"""Labels: order, round trip, unknown names counted, and damaged files."""

import json

import pytest

from rnnkit.data.labels import Labels
from rnnkit.errors import RnnkitError


def test_build_puts_first_names_first_then_sorts():
    labels = Labels.build(["B-LOC", "O", "I-LOC", "B-LOC"], first=["O"])
    assert labels.names == ("O", "B-LOC", "I-LOC")
    assert labels.encode(["I-LOC", "O"]) == [2, 0] and labels.decode([1, 0]) == ["B-LOC", "O"]


def test_round_trip(tmp_path):
    labels = Labels(["neg", "pos"])
    labels.save(tmp_path / "labels.json")
    assert Labels.load(tmp_path / "labels.json") == labels


def test_unknown_names_are_counted_and_encoding_them_fails():
    labels = Labels(["a", "b"])
    assert labels.unknown(["a", "c", "c", "d"]) == {"c": 2, "d": 1}
    with pytest.raises(RnnkitError, match="unknown label 'c'"):
        labels.encode(["c"])


@pytest.mark.parametrize(
    "payload",
    [[], None, {"format": "x"}, {"format": "rnnkit-labels", "version": 1, "names": "ab"},
     {"format": "rnnkit-labels", "version": 1, "names": ["a", "a"]},
     {"format": "rnnkit-labels", "version": 1, "names": ["a", 3]},
     {"format": "rnnkit-labels", "version": 1, "names": []}],
)  # fmt: skip
def test_damaged_files_are_one_line_naming_the_file(tmp_path, payload):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(RnnkitError) as err:
        Labels.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
