"""Piano rolls: JSON reading and its errors, MIDI round trips (mido), transposition, padded batches."""

import json
import struct
from pathlib import Path

import mido
import pytest
import torch

from rnnkit.data import music
from rnnkit.data.music import (
    KEYS,
    EpochBatches,
    chord_roll,
    padded_batches,
    pitches_to_roll,
    read_midi,
    read_rolls,
    roll_to_pitches,
    transposable,
    transpose,
    write_midi,
)
from rnnkit.errors import RnnkitError

JSB = Path(__file__).resolve().parents[3] / "shared" / "data" / "jsb_chorales"


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_pitches_map_to_columns_pitch_minus_21():
    roll = pitches_to_roll([[21, 60, 108], []])
    assert roll.shape == (2, KEYS)
    assert torch.nonzero(roll).tolist() == [[0, 0], [0, 39], [0, 87]]
    assert roll_to_pitches(roll) == [[21, 60, 108], []]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([[[60], [64]], [[60], [62], [12]]], "pitch 12 out of the 88-key range 21..108 at sequence 1, step 2 of "),
        ([[[60], [109]]], "pitch 109 out of the 88-key range 21..108 at sequence 0, step 1 of "),
        ([[[60], ["C4"]]], "expected an integer MIDI pitch, got 'C4' at sequence 0, step 1 of "),
        ([[[60], 64]], "expected a list of pitches, got int at sequence 0, step 1 of "),
        ([[[60]]], "sequence 0 of"),
        ([5], "expected a list of steps, got int at sequence 0 of "),
        ({"train": []}, "expected a non-empty JSON list of sequences, got dict"),
    ],
)
def test_bad_json_rolls_are_one_line_errors_naming_file_sequence_and_step(tmp_path, data, message):
    path = write_json(tmp_path / "bad.json", data)
    with pytest.raises(RnnkitError) as err:
        read_rolls(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_unreadable_json(tmp_path):
    (tmp_path / "x.json").write_text("[[[60]")
    with pytest.raises(RnnkitError, match=r"x\.json: line 1, column 7: not JSON .*: give a JSON list of piano-roll"):
        read_rolls(tmp_path / "x.json")
    with pytest.raises(RnnkitError, match="no such file"):
        read_rolls(tmp_path / "missing.json")


def test_midi_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    roll = (torch.rand(40, KEYS) < 0.05).float()
    roll[0, 0] = roll[-1, -1] = 1.0  # the lowest and highest keys, on the first and the last step
    roll[5:9, 30] = 1.0  # a held note
    write_midi(roll, tmp_path / "r.mid")
    assert torch.equal(read_midi(tmp_path / "r.mid"), roll)
    midi = mido.MidiFile(str(tmp_path / "r.mid"))
    assert midi.ticks_per_beat == 480
    assert sum(m.type == "note_on" for m in midi.tracks[0]) == sum(
        int(roll[0, k]) + int(((roll[1:, k] - roll[:-1, k]) > 0).sum()) for k in range(KEYS)
    )


def test_midi_rests_survive_and_other_resolutions_read(tmp_path):
    roll = pitches_to_roll([[], [60, 64], [], [], [67], [], []])  # rests first, inside and last
    write_midi(roll, tmp_path / "a.mid", ticks_per_step=96)
    assert roll_to_pitches(read_midi(tmp_path / "a.mid")) == [[], [60, 64], [], [], [67], [], []]
    halves = roll_to_pitches(read_midi(tmp_path / "a.mid", steps_per_beat=2))
    assert halves == [[]] * 2 + [[60, 64]] * 2 + [[]] * 4 + [[67]] * 2 + [[]] * 4


def midi_file(path, notes, ticks=480):
    track = mido.MidiTrack()
    for kind, note, time in notes:
        track.append(mido.Message(kind, note=note, velocity=0 if kind == "note_off" else 90, time=time))
    mido.MidiFile(ticks_per_beat=ticks, tracks=[track]).save(str(path))
    return path


def test_midi_seed_out_of_range_is_a_one_line_error(tmp_path):
    path = midi_file(tmp_path / "low.mid", [("note_on", 60, 0), ("note_off", 60, 480), ("note_on", 12, 480)])
    with pytest.raises(RnnkitError, match=r"pitch 12 out of the 88-key range 21..108 at step 2 of .*low.mid"):
        read_midi(path)


def test_midi_note_on_with_velocity_zero_ends_a_note_and_times_are_rounded(tmp_path):
    track = mido.MidiTrack(
        [
            mido.Message("note_on", note=62, velocity=80, time=10),  # 10 ticks late: still step 0
            mido.Message("note_on", note=62, velocity=0, time=950),  # off at tick 960: 2 steps
        ]
    )
    mido.MidiFile(ticks_per_beat=480, tracks=[track]).save(str(tmp_path / "v.mid"))
    assert roll_to_pitches(read_midi(tmp_path / "v.mid")) == [[62], [62]]


def test_a_note_shorter_than_a_step_still_sounds_for_one(tmp_path):
    path = midi_file(tmp_path / "short.mid", [("note_on", 60, 480), ("note_off", 60, 60)])  # 1/8 of a beat
    assert roll_to_pitches(read_midi(path)) == [[], [60]]


def test_not_a_midi_file(tmp_path):
    (tmp_path / "x.mid").write_bytes(b"not midi at all")
    with pytest.raises(RnnkitError, match=r"x\.mid is not a MIDI file \(it starts with b'not ', not b'MThd'\)"):
        read_midi(tmp_path / "x.mid")


def test_write_midi_checks_the_shape(tmp_path):
    with pytest.raises(RnnkitError, match=r"expected a piano roll of shape \(T, 88\), got \(3, 12\)"):
        write_midi(torch.zeros(3, 12), tmp_path / "x.mid")


def test_chord_seed():
    assert roll_to_pitches(chord_roll([60, 64, 67])) == [[60, 64, 67]]
    with pytest.raises(RnnkitError, match=r"pitch 200 out of the 88-key range 21\.\.108 at note 2 of the chord"):
        chord_roll([60, 200])


def test_transposition_stays_on_the_keyboard():
    roll = pitches_to_roll([[23, 60], [105]])  # 2 keys of room below, 3 above
    assert transposable(roll, 5) == range(-2, 4)
    assert roll_to_pitches(transpose(roll, 3)) == [[26, 63], [108]]
    assert roll_to_pitches(transpose(roll, -2)) == [[21, 58], [103]]
    with pytest.raises(RnnkitError, match="off the 88-key range"):
        transpose(roll, 4)


def test_padded_batches_pad_with_zeros_and_give_lengths():
    rolls = [torch.ones(n, KEYS) for n in (3, 6, 2, 5)]
    batches = padded_batches(rolls, 2)
    assert [b[1].tolist() for b in batches] == [[6, 5], [3, 2]]
    x, _ = batches[1]
    assert x.shape == (3, 2, KEYS) and x[2, 1].sum() == 0 and x[1, 1].sum() == KEYS


def test_epoch_batches_depend_only_on_seed_and_epoch_and_transpose_within_range():
    torch.manual_seed(0)
    rolls = [(torch.rand(n, KEYS) < 0.1).float() for n in (4, 7, 5, 9, 3)]
    rolls[0][:, 0] = 1.0  # this one cannot go down
    a, b = EpochBatches(rolls, 2, seed=3, max_shift=4), EpochBatches(rolls, 2, seed=3, max_shift=4)
    for e in range(3):
        assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a.for_epoch(e), b.for_epoch(e), strict=True))
    assert not all(torch.equal(x, y) for (x, _), (y, _) in zip(a.for_epoch(0), a.for_epoch(1), strict=True))
    notes = sum(float(x.sum()) for x, _ in a.for_epoch(2))
    assert notes == sum(float(r.sum()) for r in rolls)  # no note falls off the keyboard
    with pytest.raises(RnnkitError, match="--transpose must be at least 0"):
        EpochBatches(rolls, 2, max_shift=-1)


@pytest.mark.skipif(not JSB.is_dir(), reason="../shared/data/jsb_chorales is not here")
def test_jsb_chorales_as_documented():
    train, valid = read_rolls(JSB / "train.json"), read_rolls(JSB / "valid.json")
    assert (len(train), sum(len(r) for r in train)) == (229, 13807)
    assert (len(valid), sum(len(r) for r in valid)) == (76, 4602)
    assert int(sum(r.sum() for r in train)) == 53824


def one_line_error(call, path):
    with pytest.raises(RnnkitError) as info:
        call(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            [[[60], [64]], [[60], [62], [200, 17]]],
            "pitch 200 out of the 88-key range 21..108 at sequence 1, step 2 of ",
        ),
        ([[[60], [60.0]]], "expected an integer MIDI pitch, got 60.0 at sequence 0, step 1 of "),
        ([[[60], [float("nan")]]], "expected an integer MIDI pitch, got nan at sequence 0, step 1 of "),
        ([[[60], [True]]], "expected an integer MIDI pitch, got True at sequence 0, step 1 of "),
        ([[[60], [None]]], "expected an integer MIDI pitch, got None at sequence 0, step 1 of "),
        ([[[60], [[[[60]]]]]], "expected an integer MIDI pitch, got a list of 1 item at sequence 0, step 1 of "),
        ([[[60], ["x" * 1000]]], "expected an integer MIDI pitch, got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' at "),
        ([[[60], None]], "expected a list of pitches, got NoneType at sequence 0, step 1 of "),
        ([[[60], [62]], {"steps": []}], "expected a list of steps, got dict at sequence 1 of "),
        ([], "expected a non-empty JSON list of sequences, got an empty list"),
        (None, "expected a non-empty JSON list of sequences, got NoneType"),
        ("[[60]]", "expected a non-empty JSON list of sequences, got str"),
    ],
)
def test_hostile_json_rolls_name_the_file_sequence_and_step(tmp_path, data, message):
    assert message in one_line_error(read_rolls, write_json(tmp_path / "rolls.json", data))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "rolls.json is empty: give a JSON list of piano-roll sequences"),
        (b"[[[60], [6\xff]]]", "rolls.json: byte 0xff at offset 10 (line 1) is not UTF-8: give a JSON list of piano-"),
        ("[[[60]]]".encode("utf-16"), "rolls.json looks like UTF-16 (byte-order mark FF FE, little-endian)"),
        (b"[" * 5000, "rolls.json: line 1, column 101: JSON nested more than 100 levels deep"),
        (b"[[[60], [64]],\n [[60] [64]]]", "rolls.json: line 2, column 8: not JSON (Expecting ',' delimiter)"),
    ],
)
def test_unreadable_json_rolls(tmp_path, content, message):
    (tmp_path / "rolls.json").write_bytes(content)
    assert message in one_line_error(read_rolls, tmp_path / "rolls.json")


def test_json_rolls_work_is_bounded(tmp_path, monkeypatch):
    path = write_json(tmp_path / "long.json", [[[60]] * 6, [[]] * 8])
    monkeypatch.setattr(music, "MAX_STEPS", 10)
    assert "sequence 1 brings the steps to 14, more than the 10 rnnkit reads from one file: split the file" in (
        one_line_error(read_rolls, path)
    )
    monkeypatch.setattr(music, "MAX_JSON_BYTES", 20)
    assert "bytes, more than the 20 rnnkit reads as a JSON list of piano-roll sequences" in one_line_error(
        read_rolls, path
    )


def midi_bytes(tmp_path, steps=((60,), (), (64, 67))):
    write_midi(pitches_to_roll([list(s) for s in steps]), tmp_path / "ok.mid")
    return (tmp_path / "ok.mid").read_bytes()


def header(size=6, kind=0, ntracks=1, division=480):
    return b"MThd" + struct.pack(">LHHH", size, kind, ntracks, division)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda good: b"", "is not a MIDI file (it starts with b'', not b'MThd'): give a standard MIDI file"),
        (lambda good: b"RIFF" + good, "is not a MIDI file (it starts with b'RIFF', not b'MThd')"),
        (lambda good: good[:10], "ends at offset 10, inside the 14-byte MIDI header: the file is truncated"),
        (lambda good: header(size=2) + good[14:], "its header is 2 bytes long (offset 4), not 6: give a standard MIDI"),
        (lambda good: header(kind=7) + good[14:], "its format is 7 (offset 8), not 0, 1 or 2"),
        (lambda good: header(ntracks=0), "it has no tracks (offset 10): give a standard MIDI file with notes"),
        (lambda good: header(division=0) + good[14:], "its ticks per beat is 0 (offset 12)"),
        (lambda good: header(division=0xE728) + good[14:], "it counts time in SMPTE frames (offset 12)"),
        (lambda good: header(ntracks=2) + good[14:], "before track 2 of the 2 its header promises: the file is trunc"),
        (lambda good: good[:-3], "inside track 1 (offset 14, 36 bytes long): the file is truncated"),
        (
            lambda good: good[:14] + b"MTrx" + good[18:],
            "track 1 at offset 14 starts with b'MTrx', not b'MTrk': corrupt",
        ),
        (
            lambda good: good[:22] + b"\x00\xf4" + good[24:],
            "corrupt MIDI data near offset 24 (undefined status byte 0xf4)",
        ),
        (
            lambda good: header() + b"MTrk\x00\x00\x00\x0a\x00\xff\x59\x02\x07\xa1\x00\xff\x2f\x00",
            "corrupt MIDI data near offset 28 (Could not decode key with 7 sharps and mode 161)",
        ),
    ],
)
def test_hostile_midi_files_name_the_file_and_offset(tmp_path, make, message):
    good = midi_bytes(tmp_path)
    assert len(good) == 14 + 8 + 36  # the sizes the messages above count on
    (tmp_path / "bad.mid").write_bytes(make(good))
    assert message in one_line_error(read_midi, tmp_path / "bad.mid")


def test_midi_work_is_bounded(tmp_path, monkeypatch):
    far = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0x0FFFFFFF)])  # 74 hours at 1 tick/beat
    mido.MidiFile(ticks_per_beat=1, tracks=[far]).save(str(tmp_path / "far.mid"))
    message = one_line_error(read_midi, tmp_path / "far.mid")
    assert "lasts 268,435,455 ticks, 268,435,455 steps at 1 ticks per beat, more than the 100,000 steps" in message
    monkeypatch.setattr(music, "MAX_MIDI_BYTES", 40)
    (tmp_path / "big.mid").write_bytes(midi_bytes(tmp_path))
    assert "is 58 bytes, more than the 40 rnnkit reads as a MIDI file: give a smaller file" in one_line_error(
        read_midi, tmp_path / "big.mid"
    )


def test_midi_arguments_are_checked(tmp_path):
    roll = pitches_to_roll([[60], [64]])
    for kwargs, message in [
        ({"ticks_per_step": 0}, "ticks_per_step must be an integer in 1..32767, got 0"),
        ({"ticks_per_step": 40000}, "ticks_per_step must be an integer in 1..32767, got 40000"),
        ({"velocity": 0}, "velocity must be an integer in 1..127, got 0"),
        ({"tempo": 0}, "tempo must be 4..1000 beats per minute, got 0"),
    ]:
        with pytest.raises(RnnkitError, match=f"^write_midi: {message}$"):
            write_midi(roll, tmp_path / "x.mid", **kwargs)
    with pytest.raises(RnnkitError, match=r"write_midi: the piano roll holds NaN or infinite values"):
        write_midi(torch.full((2, KEYS), float("nan")), tmp_path / "x.mid")
    with pytest.raises(RnnkitError, match=r"write_midi: 600,000 steps of 480 ticks are more than a MIDI file's"):
        write_midi(torch.zeros(600_000, KEYS), tmp_path / "x.mid")
    with pytest.raises(RnnkitError, match=r"missing: no such folder to write the MIDI file in"):
        write_midi(roll, tmp_path / "missing" / "x.mid")
    with pytest.raises(RnnkitError, match=r"steps_per_beat must be a positive integer, got 0"):
        read_midi(tmp_path / "x.mid", steps_per_beat=0)
    assert not (tmp_path / "x.mid").exists()
