"""Property tests: every file reader returns a valid value or raises one RnnkitError line naming the file.

Arbitrary bytes, arbitrary JSON values and mutations of valid files (truncated, bytes flipped, bytes
inserted) go through read_text, read_rolls, read_midi and Vocabulary.load; no other exception may escape.
"""

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.data import Vocabulary, read_text
from rnnkit.data.music import KEYS, pitches_to_roll, read_midi, read_rolls, roll_to_pitches, write_midi
from rnnkit.errors import RnnkitError

SETTINGS = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"]
SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=40,
)
pitch_lists = st.lists(  # mostly well-formed piano rolls, with pitches a little off the keyboard and some junk
    st.lists(st.lists(st.integers(15, 115) | st.sampled_from([60.0, True, None, "60"]), max_size=4), max_size=6),
    min_size=1,
    max_size=4,
)


def reads_or_one_line_error(read, path):
    """``read(path)``, or None when it raised an RnnkitError of one line naming ``path``."""
    try:
        return read(path)
    except RnnkitError as err:
        message = str(err)
        assert str(path) in message, message
        assert "\n" not in message and "\r" not in message and len(message) < 600, message
        return None


def mutate(data: bytes, cut: int, flips: list[tuple[int, int]], insert: bytes) -> bytes:
    """``data`` truncated to ``cut`` bytes (when shorter), XORed at ``flips``, with ``insert`` at the first flip."""
    out = bytearray(data[: cut or len(data)])
    for offset, mask in flips:
        if out:
            out[offset % len(out)] ^= mask
    at = flips[0][0] % (len(out) + 1) if flips else len(out)
    return bytes(out[:at] + insert + out[at:])


mutations = st.tuples(
    st.integers(0, 400),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4),
    st.binary(max_size=6),
)


@SETTINGS
@given(data=st.binary(max_size=3000))
def test_read_text_on_arbitrary_bytes(tmp_path, data):
    path = tmp_path / "any.txt"
    path.write_bytes(data)
    for errors in ("strict", "replace"):
        text = reads_or_one_line_error(lambda p, e=errors: read_text(p, encoding_errors=e), path)
        assert text is None or (isinstance(text, str) and text.strip() and "\0" not in text)


@SETTINGS
@given(text=st.text(max_size=200), encoding=st.sampled_from(ENCODINGS))
def test_read_text_on_encoded_text(tmp_path, text, encoding):
    path = tmp_path / "enc.txt"
    path.write_bytes(text.encode(encoding))
    got = reads_or_one_line_error(read_text, path)
    expected = (text if encoding == "utf-8-sig" else text.removeprefix("\ufeff")).replace("\r\n", "\n")
    if encoding in ("utf-8", "utf-8-sig") and expected.strip() and "\0" not in text and text[:2] != "PK":
        assert got == expected
    if encoding in ("utf-16", "utf-32"):  # with a byte-order mark: never read as UTF-8 garbage
        assert got is None


@SETTINGS
@given(value=json_values | pitch_lists)
def test_read_rolls_on_arbitrary_json(tmp_path, value):
    path = tmp_path / "rolls.json"
    path.write_text(json.dumps(value))
    rolls = reads_or_one_line_error(read_rolls, path)
    if rolls is not None:  # then it was a list of sequences of >= 2 steps of pitches on the keyboard
        assert len(rolls) == len(value)
        for roll, seq in zip(rolls, value, strict=True):
            assert roll.shape == (len(seq), KEYS)
            assert roll_to_pitches(roll) == [sorted(set(step)) for step in seq]


@SETTINGS
@given(rolls=pitch_lists, mutation=mutations)
def test_read_rolls_on_mutated_files(tmp_path, rolls, mutation):
    path = tmp_path / "rolls.json"
    path.write_bytes(mutate(json.dumps(rolls).encode(), *mutation))
    result = reads_or_one_line_error(read_rolls, path)
    assert result is None or all(r.dim() == 2 and r.shape[1] == KEYS for r in result)


@SETTINGS
@given(
    steps=st.lists(st.lists(st.integers(21, 108), max_size=3), min_size=1, max_size=8),
    ticks=st.sampled_from([1, 96, 480]),
    mutation=mutations,
)
def test_read_midi_on_mutated_files(tmp_path, steps, ticks, mutation):
    path = tmp_path / "song.mid"
    write_midi(pitches_to_roll(steps), path, ticks_per_step=ticks)
    assert torch.equal(read_midi(path), pitches_to_roll(steps))  # the valid file first
    path.write_bytes(mutate(path.read_bytes(), *mutation))
    roll = reads_or_one_line_error(read_midi, path)
    assert roll is None or (roll.dim() == 2 and roll.shape[1] == KEYS)


midi_events = st.lists(  # MIDI track events with plausible status bytes and meta types, and arbitrary data
    st.tuples(st.sampled_from([0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xE0, 0xF0, 0xF2, 0xF4, 0xF7]), st.binary(max_size=3)).map(
        lambda e: bytes([0, e[0]]) + e[1]
    )
    | st.tuples(st.sampled_from([0, 1, 3, 0x20, 0x21, 0x2F, 0x51, 0x54, 0x58, 0x59, 0x7F]), st.binary(max_size=6)).map(
        lambda e: bytes([0, 0xFF, e[0], len(e[1])]) + e[1]
    )
    | st.binary(max_size=4),
    max_size=12,
).map(b"".join)


@SETTINGS
@given(data=st.binary(max_size=300) | midi_events, wrap=st.sampled_from(["none", "header", "track", "track"]))
def test_read_midi_on_arbitrary_bytes(tmp_path, data, wrap):
    path = tmp_path / "any.mid"
    if wrap == "header":
        data = b"MThd\x00\x00\x00\x06" + data
    elif wrap == "track":  # a sane header and one track chunk of the right length around arbitrary events
        data = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk" + len(data).to_bytes(4, "big") + data
    path.write_bytes(data)
    roll = reads_or_one_line_error(read_midi, path)
    assert roll is None or (roll.dim() == 2 and roll.shape[1] == KEYS)


@SETTINGS
@given(field=st.sampled_from(["format", "version", "tokens", "counts", None]), value=json_values)
def test_vocabulary_load_on_arbitrary_json(tmp_path, field, value):
    payload = {"format": "rnnkit-vocab", "version": 1, "tokens": [*SPECIALS, "a"], "counts": [0, 0, 0, 0, 2]}
    if field is None:
        payload = value  # the whole file
    else:
        payload[field] = value
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(payload))
    vocab = reads_or_one_line_error(Vocabulary.load, path)
    assert vocab is None or (list(vocab.tokens[:4]) == SPECIALS and len(vocab.counts) == len(vocab))


@SETTINGS
@given(mutation=mutations, extra=st.lists(st.text(max_size=4), max_size=5))
def test_vocabulary_load_on_mutated_files(tmp_path, mutation, extra):
    path = tmp_path / "vocab.json"
    Vocabulary.build(["the", "cat", *extra]).save(path)
    path.write_bytes(mutate(path.read_bytes(), *mutation))
    vocab = reads_or_one_line_error(Vocabulary.load, path)
    assert vocab is None or list(vocab.tokens[:4]) == SPECIALS


@pytest.mark.parametrize("reader", [read_text, read_rolls, read_midi, Vocabulary.load])
def test_every_reader_names_a_missing_file_and_a_folder(tmp_path, reader):
    for path in (tmp_path / "missing.dat", tmp_path):
        assert reads_or_one_line_error(reader, path) is None
