"""Piano rolls: JSON note lists and MIDI files in and out, transposition, and padded batches.

A piano roll is a (T, 88) float tensor of 0s and 1s: row t is time step t, column k is MIDI pitch
``21 + k`` (A0 .. C8, the 88 keys of a piano), 1 where the key sounds. The JSON format is the one of
../shared/data/jsb_chorales: a list of sequences, each a list of steps, each a list of active pitches.
MIDI files are read and written with mido, one step per quarter note by default; a key held over
several steps becomes one note, so a held and a repeated note are the same roll (as in the JSB data).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import mido
import numpy as np
import torch
from torch import Tensor

from rnnkit.data.batching import bucket_batches, pad_batch
from rnnkit.errors import RnnkitError
from rnnkit.io import write_atomically

LOWEST, HIGHEST = 21, 108  # MIDI pitches of the piano's lowest and highest keys
KEYS = HIGHEST - LOWEST + 1  # 88


def pitches_to_roll(steps: Sequence[Sequence[int]], *, sequence: int | None = None, source: str = "") -> Tensor:
    """A list of steps, each a list of MIDI pitches, as a (T, 88) roll; errors name the sequence and source.

    >>> pitches_to_roll([[60, 64, 67], []]).sum(1)
    tensor([3., 0.])
    """
    roll = torch.zeros(len(steps), KEYS)
    for t, step in enumerate(steps):
        where = (
            ("" if sequence is None else f"sequence {sequence}, ") + f"step {t}" + (f" of {source}" if source else "")
        )
        if not isinstance(step, list | tuple):
            raise RnnkitError(f"expected a list of pitches, got {type(step).__name__} at {where}")
        for pitch in step:
            check_pitch(pitch, where)
            roll[t, pitch - LOWEST] = 1.0
    return roll


def roll_to_pitches(roll: Tensor) -> list[list[int]]:
    """The inverse of :func:`pitches_to_roll`: each step's active pitches, ascending."""
    return [[LOWEST + k for k in torch.nonzero(row > 0.5).flatten().tolist()] for row in roll]


def check_pitch(pitch: object, where: str) -> None:
    if isinstance(pitch, bool) or not isinstance(pitch, int):
        raise RnnkitError(f"expected an integer MIDI pitch, got {pitch!r} at {where}")
    if not LOWEST <= pitch <= HIGHEST:
        raise RnnkitError(f"pitch {pitch} out of the 88-key range {LOWEST}..{HIGHEST} at {where}")


def read_rolls(path: str | Path, *, min_length: int = 2) -> list[Tensor]:
    """The piano rolls of a JSON file (a list of sequences of steps of pitches), each (T, 88).

    A sequence needs ``min_length`` steps: a model of the next step has nothing to predict in one step.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RnnkitError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RnnkitError(f"{path}: not a JSON list of piano-roll sequences ({err})") from None
    if not isinstance(data, list) or not data:
        raise RnnkitError(f"{path}: expected a non-empty JSON list of sequences, got {type(data).__name__}")
    rolls = []
    for i, seq in enumerate(data):
        if not isinstance(seq, list):
            raise RnnkitError(f"expected a list of steps, got {type(seq).__name__} at sequence {i} of {path}")
        if len(seq) < min_length:
            raise RnnkitError(f"sequence {i} of {path} has {len(seq)} step(s); at least {min_length} are needed")
        rolls.append(pitches_to_roll(seq, sequence=i, source=str(path)))
    return rolls


def write_midi(
    roll: Tensor, path: str | Path, *, ticks_per_step: int = 480, velocity: int = 80, tempo: int = 120
) -> None:
    """Write a (T, 88) roll as a one-track standard MIDI file: a key on over steps [a, b) is one note.

    ``ticks_per_step`` equals the file's ticks per beat, so one step is one quarter note at ``tempo`` bpm.
    """
    roll = _check_roll(roll, "write_midi")
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
    write_atomically(path, lambda tmp: midi.save(str(tmp)))


def read_midi(path: str | Path, *, steps_per_beat: int = 1) -> Tensor:
    """A MIDI file as a (T, 88) roll, ``steps_per_beat`` steps per quarter note; note times are rounded.

    Every track and channel is read (drums included). A key sounds at step t when a note covers it; the
    roll lasts until the last note ends or the end of the file, whichever is later (so final rests stay).
    """
    path = Path(path)
    try:
        midi = mido.MidiFile(str(path))
    except FileNotFoundError:
        raise RnnkitError(f"{path}: no such file") from None
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise RnnkitError(f"{path}: not a standard MIDI file ({err})") from None
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
    notes += [(key[1], t0, round(tick / step)) for key, t0 in start.items()]  # notes never switched off
    notes = [(pitch, t0, max(t1, t0 + 1)) for pitch, t0, t1 in notes]  # a note shorter than a step sounds once
    roll = torch.zeros(max([round(tick / step), *(end for _, _, end in notes)]), KEYS)
    for pitch, t0, t1 in notes:
        roll[t0:t1, pitch - LOWEST] = 1.0
    return roll


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
) -> list[tuple[Tensor, Tensor]]:
    """Piano rolls in padded batches of similar length: ``(x, lengths)``, x (T, B, 88) zero-padded, lengths (B,).

    With ``shuffle`` the order depends on ``(seed, epoch)``; with ``max_shift > 0`` each roll is transposed
    by a random shift in [-max_shift, max_shift] that keeps it on the keyboard (seeded the same way).

    >>> x, lengths = padded_batches([torch.ones(3, 88), torch.ones(5, 88)], 2)[0]
    >>> tuple(x.shape), lengths.tolist()
    ((5, 2, 88), [5, 3])
    """
    if max_shift < 0:
        raise RnnkitError(f"--transpose must be at least 0, got {max_shift}")
    order = bucket_batches([len(r) for r in rolls], batch_size, shuffle=shuffle, seed=seed, epoch=epoch)
    if max_shift:
        rng = np.random.default_rng([seed, epoch, 1])
        rolls = [transpose(r, int(rng.choice(transposable(r, max_shift)))) for r in rolls]
    return [pad_batch([rolls[i] for i in batch], 0) for batch in order]


class EpochBatches:
    """Training batches that change every epoch: ``for_epoch(e)`` (what the trainer calls) is
    :func:`padded_batches` shuffled and transposed with ``(seed, e)``, so resuming mid-epoch is exact."""

    def __init__(self, rolls: Sequence[Tensor], batch_size: int, *, seed: int = 0, max_shift: int = 0) -> None:
        self.rolls, self.batch_size, self.seed, self.max_shift = list(rolls), batch_size, seed, max_shift
        padded_batches(self.rolls[:1], 1, max_shift=max_shift)  # check the arguments now

    def for_epoch(self, epoch: int) -> list[tuple[Tensor, Tensor]]:
        return padded_batches(
            self.rolls, self.batch_size, shuffle=True, seed=self.seed, epoch=epoch, max_shift=self.max_shift
        )


def _check_roll(roll: Tensor, name: str) -> Tensor:
    roll = torch.as_tensor(roll)
    if roll.dim() != 2 or roll.shape[1] != KEYS:
        raise RnnkitError(f"{name} expected a piano roll of shape (T, {KEYS}), got {tuple(roll.shape)}")
    return roll.detach().cpu().float()
