"""Piano rolls: JSON note lists and MIDI files in and out, transposition, and padded batches.

A piano roll is a (T, 88) float tensor of 0s and 1s: row t is time step t, column k is MIDI pitch
``21 + k`` (A0 .. C8, the 88 keys of a piano), 1 where the key sounds. The JSON format is the one of
../shared/data/jsb_chorales: a list of sequences, each a list of steps, each a list of active pitches.
MIDI files are read and written with mido, one step per quarter note by default; a key held over
several steps becomes one note, so a held and a repeated note are the same roll (as in the JSB data).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from pathlib import Path

import mido
import numpy as np
import torch
from mido.midifiles.meta import KeySignatureError
from torch import Tensor

from rnnkit.data.batching import bucket_batches, pad_batch, shard_rows
from rnnkit.data.text import read_bytes, read_json, short_repr
from rnnkit.errors import RnnkitError
from rnnkit.io import first_line, write_atomically

LOWEST, HIGHEST = 21, 108  # MIDI pitches of the piano's lowest and highest keys
KEYS = HIGHEST - LOWEST + 1  # 88
MAX_JSON_BYTES = 256 * 2**20  # a JSON piano-roll file larger than this is refused before parsing
MAX_STEPS = 2_000_000  # steps of one JSON file in all (700 MB of rolls); MuseData's training set has 250k
MAX_MIDI_BYTES = 8 * 2**20  # mido parses byte by byte in Python: a larger MIDI file would take minutes
MAX_MIDI_STEPS = 100_000  # a MIDI seed longer than this (14 hours at 120 bpm) has absurd times
MAX_DELTA = 0x0FFFFFFF  # the largest delta time a MIDI variable-length quantity holds (4 bytes)
MIDI_ERRORS = (  # what mido raises on a bad file (a KeySignatureError is none of the others)
    OSError,
    EOFError,
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    ArithmeticError,
    struct.error,
    KeySignatureError,
)
ROLLS = "a JSON list of piano-roll sequences"


def pitches_to_roll(steps: Sequence[Sequence[int]], *, sequence: int | None = None, source: str = "") -> Tensor:
    """A list of steps, each a list of MIDI pitches, as a (T, 88) roll; errors name the sequence and source.

    >>> pitches_to_roll([[60, 64, 67], []]).sum(1)
    tensor([3., 0.])
    """
    roll = torch.zeros(len(steps), KEYS)
    for t, step in enumerate(steps):
        if not isinstance(step, list | tuple):
            where = _where(sequence, t, source)
            raise RnnkitError(f"expected a list of pitches, got {type(step).__name__} at {where}")
        for pitch in step:
            if isinstance(pitch, bool) or not isinstance(pitch, int) or not LOWEST <= pitch <= HIGHEST:
                check_pitch(pitch, _where(sequence, t, source))
            roll[t, pitch - LOWEST] = 1.0
    return roll


def _where(sequence: int | None, step: int, source: str) -> str:
    return ("" if sequence is None else f"sequence {sequence}, ") + f"step {step}" + (f" of {source}" if source else "")


def roll_to_pitches(roll: Tensor) -> list[list[int]]:
    """The inverse of :func:`pitches_to_roll`: each step's active pitches, ascending."""
    return [[LOWEST + k for k in torch.nonzero(row > 0.5).flatten().tolist()] for row in roll]


def check_pitch(pitch: object, where: str) -> None:
    if isinstance(pitch, bool) or not isinstance(pitch, int):
        raise RnnkitError(f"expected an integer MIDI pitch, got {short_repr(pitch)} at {where}")
    if not LOWEST <= pitch <= HIGHEST:
        raise RnnkitError(f"pitch {short_repr(pitch)} out of the 88-key range {LOWEST}..{HIGHEST} at {where}")


def read_rolls(path: str | Path, *, min_length: int = 2) -> list[Tensor]:
    """The piano rolls of a JSON file (a list of sequences of steps of pitches), each (T, 88).

    A sequence needs ``min_length`` steps: a model of the next step has nothing to predict in one step.
    Errors are one line naming the file, the sequence and the step; a file over ``MAX_JSON_BYTES`` or with
    more than ``MAX_STEPS`` steps in all is refused before the rolls are built.
    """
    path = Path(path)
    data = read_json(path, what=ROLLS, max_bytes=MAX_JSON_BYTES)
    if not isinstance(data, list) or not data:
        got = "an empty list" if data == [] else type(data).__name__
        raise RnnkitError(f"{path}: expected a non-empty JSON list of sequences, got {got}")
    total = 0
    for i, seq in enumerate(data):
        if not isinstance(seq, list):
            raise RnnkitError(f"expected a list of steps, got {type(seq).__name__} at sequence {i} of {path}")
        if len(seq) < min_length:
            raise RnnkitError(f"sequence {i} of {path} has {len(seq)} step(s); at least {min_length} are needed")
        total += len(seq)
        if total > MAX_STEPS:
            raise RnnkitError(
                f"{path}: sequence {i} brings the steps to {total:,}, more than the {MAX_STEPS:,} "
                "rnnkit reads from one file: split the file"
            )
    return [pitches_to_roll(seq, sequence=i, source=str(path)) for i, seq in enumerate(data)]


def write_midi(
    roll: Tensor, path: str | Path, *, ticks_per_step: int = 480, velocity: int = 80, tempo: int = 120
) -> None:
    """Write a (T, 88) roll as a one-track standard MIDI file: a key on over steps [a, b) is one note.

    ``ticks_per_step`` (1..32767) equals the file's ticks per beat, so one step is one quarter note at ``tempo``
    bpm (4..1000); ``velocity`` is 1..127. The file is written atomically; errors are one line.
    """
    roll = _check_roll(roll, "write_midi")
    _check_midi_options(roll, ticks_per_step, velocity, tempo)
    active = np.pad(roll.numpy() > 0.5, ((1, 1), (0, 0)))  # silent steps before and after close every note
    change = np.diff(active.astype(np.int8), axis=0)  # (T + 1, 88): +1 note on, -1 note off at that step
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0)])
    last = 0
    for t, row in enumerate(change):
        for k in np.nonzero(row < 0)[0].tolist() + np.nonzero(row > 0)[0].tolist():  # offs before ons
            kind = "note_on" if row[k] > 0 else "note_off"
            track.append(mido.Message(kind, note=LOWEST + k, velocity=velocity, time=(t - last) * ticks_per_step))
            last = t
    track.append(mido.MetaMessage("end_of_track", time=(len(roll) - last) * ticks_per_step))  # keeps final rests
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_step, tracks=[track])
    path = Path(path)
    if not path.parent.is_dir():
        raise RnnkitError(f"{path.parent}: no such folder to write the MIDI file in")
    try:
        write_atomically(path, lambda tmp: midi.save(str(tmp)))
    except OSError as err:
        raise RnnkitError(f"{path}: cannot write the MIDI file ({err.strerror or first_line(err)})") from None


def _check_midi_options(roll: Tensor, ticks_per_step: int, velocity: int, tempo: float) -> None:
    for name, value, low, high in (("ticks_per_step", ticks_per_step, 1, 0x7FFF), ("velocity", velocity, 1, 127)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RnnkitError(f"write_midi: {name} must be an integer in {low}..{high}, got {short_repr(value)}")
    if isinstance(tempo, bool) or not isinstance(tempo, int | float) or not 4 <= tempo <= 1000:
        raise RnnkitError(f"write_midi: tempo must be 4..1000 beats per minute, got {short_repr(tempo)}")
    if not bool(torch.isfinite(roll).all()):
        raise RnnkitError("write_midi: the piano roll holds NaN or infinite values")
    if len(roll) * ticks_per_step > MAX_DELTA:
        raise RnnkitError(
            f"write_midi: {len(roll):,} steps of {ticks_per_step} ticks are more than a MIDI file's "
            f"{MAX_DELTA:,} ticks: write fewer steps or fewer ticks_per_step"
        )


def read_midi(path: str | Path, *, steps_per_beat: int = 1) -> Tensor:
    """A MIDI file as a (T, 88) roll, ``steps_per_beat`` steps per quarter note; note times are rounded.

    Every track and channel is read (drums included). A key sounds at step t when a note covers it; the
    roll lasts until the last note ends or the end of the file, whichever is later (so final rests stay).
    The header and every track's length are checked before mido parses the file; any error is one line
    naming the file (and the offset); a file over ``MAX_MIDI_BYTES`` or ``MAX_MIDI_STEPS`` steps is refused.
    """
    if isinstance(steps_per_beat, bool) or not isinstance(steps_per_beat, int) or steps_per_beat < 1:
        raise RnnkitError(f"steps_per_beat must be a positive integer, got {short_repr(steps_per_beat)}")
    path = Path(path)
    midi = _load_midi(path)
    step = midi.ticks_per_beat / steps_per_beat
    notes, start, tick = [], {}, 0  # (pitch, first step, end step)
    for msg in mido.merge_tracks(midi.tracks):
        tick += msg.time
        if msg.type not in ("note_on", "note_off"):
            continue
        key, t = (msg.channel, msg.note), round(tick / step)
        if msg.type == "note_on" and msg.velocity > 0:
            check_pitch(msg.note, f"step {t} of {path}")
            start.setdefault(key, t)
        elif key in start:
            notes.append((msg.note, start.pop(key), t))
    length = round(tick / step) + 1  # at most one more: a note shorter than a step at the very end
    if length > MAX_MIDI_STEPS:
        raise RnnkitError(
            f"{path} lasts {tick:,} ticks, {length - 1:,} steps at {midi.ticks_per_beat} ticks per beat, more than "
            f"the {MAX_MIDI_STEPS:,} steps rnnkit reads: its times are absurd or it is too long; give a shorter file"
        )
    notes += [(key[1], t0, round(tick / step)) for key, t0 in start.items()]  # notes never switched off
    notes = [(pitch, t0, max(t1, t0 + 1)) for pitch, t0, t1 in notes]  # a note shorter than a step sounds once
    roll = torch.zeros(max([round(tick / step), *(end for _, _, end in notes)]), KEYS)
    for pitch, t0, t1 in notes:
        roll[t0:t1, pitch - LOWEST] = 1.0
    return roll


def _load_midi(path: Path) -> mido.MidiFile:
    """The parsed MIDI file, its header and chunk lengths checked first; mido's errors as one line."""
    data = read_bytes(path, what="a MIDI file", max_bytes=MAX_MIDI_BYTES)
    ntracks = _check_midi_header(path, data)
    _check_midi_chunks(path, data, ntracks)
    buffer = io.BytesIO(data)
    try:
        return mido.MidiFile(file=buffer)
    except MIDI_ERRORS as err:
        raise RnnkitError(
            f"{path}: corrupt MIDI data near offset {buffer.tell()} ({first_line(err)}): give a standard MIDI file"
        ) from None


def _check_midi_header(path: Path, data: bytes) -> int:
    """The number of tracks the header of a standard MIDI file promises; an error unless the header is sane."""
    if not data.startswith(b"MThd"):
        raise RnnkitError(
            f"{path} is not a MIDI file (it starts with {data[:4]!r}, not b'MThd'): give a standard MIDI file"
        )
    if len(data) < 14:
        raise RnnkitError(f"{path} ends at offset {len(data)}, inside the 14-byte MIDI header: the file is truncated")
    size, kind, ntracks, division = struct.unpack(">LHHH", data[4:14])
    if size < 6:
        problem = f"its header is {size} bytes long (offset 4), not 6"
    elif kind > 2:
        problem = f"its format is {kind} (offset 8), not 0, 1 or 2"
    elif ntracks == 0:
        problem = "it has no tracks (offset 10)"
    elif division == 0:
        problem = "its ticks per beat is 0 (offset 12)"
    elif division & 0x8000:
        problem = "it counts time in SMPTE frames (offset 12), which rnnkit does not read, not in ticks per beat"
    else:
        return ntracks
    raise RnnkitError(f"{path}: {problem}: give a standard MIDI file with notes")


def _check_midi_chunks(path: Path, data: bytes, ntracks: int) -> None:
    offset = 8 + struct.unpack(">L", data[4:8])[0]  # after the header chunk
    for k in range(1, ntracks + 1):
        if offset + 8 > len(data):
            raise RnnkitError(
                f"{path} ends at offset {len(data)}, before track {k} of the {ntracks} its header promises: "
                "the file is truncated"
            )
        name, size = struct.unpack(">4sL", data[offset : offset + 8])
        if name != b"MTrk":
            raise RnnkitError(f"{path}: track {k} at offset {offset} starts with {name!r}, not b'MTrk': corrupt file")
        if offset + 8 + size > len(data):
            raise RnnkitError(
                f"{path} ends at offset {len(data)}, inside track {k} (offset {offset}, {size:,} bytes long): "
                "the file is truncated"
            )
        offset += 8 + size


def chord_roll(pitches: Sequence[int], steps: int = 1) -> Tensor:
    """A roll of ``steps`` steps holding one chord (a generation seed), e.g. ``chord_roll([60, 64, 67])``."""
    for i, pitch in enumerate(pitches):
        check_pitch(pitch, f"note {i + 1} of the chord")
    return pitches_to_roll([list(pitches)] * steps)


def transposable(roll: Tensor, max_shift: int) -> range:
    """The shifts k in [-max_shift, max_shift] that keep every note of ``roll`` on the keyboard."""
    keys = torch.nonzero(roll.amax(0) > 0).flatten()
    if len(keys) == 0:
        return range(0, 1)
    low, high = int(keys.min()), int(keys.max())
    return range(max(-max_shift, -low), min(max_shift, KEYS - 1 - high) + 1)


def transpose(roll: Tensor, k: int) -> Tensor:
    """Every pitch moved by ``k`` semitones (k > 0 up); a note pushed off the keyboard is an error."""
    if k not in transposable(roll, abs(k)):
        raise RnnkitError(f"transposing by {k} semitones moves notes off the 88-key range {LOWEST}..{HIGHEST}")
    return torch.roll(roll, k, dims=1)


def padded_batches(
    rolls: Sequence[Tensor],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    max_shift: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> list[tuple[Tensor, Tensor]]:
    """Piano rolls in padded batches of similar length: ``(x, lengths)``, x (T, B, 88) zero-padded, lengths (B,).

    With ``shuffle`` the order depends on ``(seed, epoch)``; with ``max_shift > 0`` each roll is transposed
    by a random shift in [-max_shift, max_shift] that keeps it on the keyboard (seeded the same way). Under
    torchrun, ``shard=(rank, world)`` keeps this process's share of each batch (:func:`shard_rows`).

    >>> x, lengths = padded_batches([torch.ones(3, 88), torch.ones(5, 88)], 2)[0]
    >>> tuple(x.shape), lengths.tolist()
    ((5, 2, 88), [5, 3])
    """
    if max_shift < 0:
        raise RnnkitError(f"--transpose must be at least 0, got {max_shift}")
    order = bucket_batches([len(r) for r in rolls], batch_size, shuffle=shuffle, seed=seed, epoch=epoch)
    order = shard_rows(order, *shard)
    if max_shift:
        rng = np.random.default_rng([seed, epoch, 1])
        rolls = [transpose(r, int(rng.choice(transposable(r, max_shift)))) for r in rolls]
    return [pad_batch([rolls[i] for i in batch], 0) for batch in order]


class EpochBatches:
    """Training batches that change every epoch: ``for_epoch(e)`` (what the trainer calls) is
    :func:`padded_batches` shuffled and transposed with ``(seed, e)``, so resuming mid-epoch is exact."""

    def __init__(
        self, rolls: Sequence[Tensor], batch_size: int, *, seed: int = 0, max_shift: int = 0, shard=(0, 1)
    ) -> None:
        self.rolls, self.batch_size, self.seed, self.max_shift = list(rolls), batch_size, seed, max_shift
        self.shard = tuple(shard)  # (rank, world) of a torchrun run: each process takes its share of every batch
        padded_batches(self.rolls[:1], 1, max_shift=max_shift)  # check the arguments now

    def for_epoch(self, epoch: int) -> list[tuple[Tensor, Tensor]]:
        options = {"seed": self.seed, "epoch": epoch, "max_shift": self.max_shift, "shard": self.shard}
        return padded_batches(self.rolls, self.batch_size, shuffle=True, **options)


def _check_roll(roll: Tensor, name: str) -> Tensor:
    roll = torch.as_tensor(roll)
    if roll.dim() != 2 or roll.shape[1] != KEYS:
        raise RnnkitError(f"{name} expected a piano roll of shape (T, {KEYS}), got {tuple(roll.shape)}")
    return roll.detach().cpu().float()
