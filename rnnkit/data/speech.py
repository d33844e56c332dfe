"""Speech data for CTC: synthetic corpora spoken by espeak-ng, audio loading and manifests.

Audio inside rnnkit is float32 mono at :data:`SAMPLE_RATE` (16 kHz), samples in [-1, 1]. :func:`load_audio` reads
any file libsndfile reads (WAV, FLAC, OGG, MP3), downmixes stereo by the mean of the channels and resamples
other rates; a file that is not audio, or a WAV cut short, stops with one line naming it.

A corpus is a folder with a JSON-lines manifest and its WAV files (16-bit PCM, 16 kHz, mono) under ``wav/``::

    {"path": "wav/train-00000-000.wav", "text": "one one two", "voice": "en-us+m3", "speed": 150,
     "pitch": 50, "snr": 20.0, "duration": 1.2345}

one object per line. ``path`` is relative to the manifest's folder (or absolute), ``text`` the transcript;
``voice`` (an espeak-ng voice, ``+variant`` optional), ``speed`` (words a minute), ``pitch`` (0-99), ``snr``
(dB of added white noise; null for clean audio) and ``duration`` (seconds) are optional when reading, as is
``translation`` (the transcript in another language: speech translation corpora).
:func:`make_corpus` writes such a folder, deterministically: the same lines, options and seed give
byte-identical WAV files and manifest. :func:`default_corpus_text` and :data:`DEFAULT_SPLITS` describe the
default corpus; its test split is spoken by voices, at speeds and pitches, that training never hears.

>>> normalise_text("  No  NO\\tno ")
'no no no'
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.data.text import read_text, short_repr
from rnnkit.errors import RnnkitError
from rnnkit.io import first_line, write_atomically

PathLike = str | os.PathLike[str]

SAMPLE_RATE = 16000
"""The sample rate (Hz) of all audio rnnkit loads, writes and featurises."""

ESPEAK_INSTALL = (
    "espeak-ng is not installed: sudo apt-get install espeak-ng (Debian/Ubuntu), sudo dnf install espeak-ng "
    "(Fedora) or brew install espeak-ng (macOS), then run the command again"
)
SPEED_RANGE = (80, 450)  # espeak-ng's words a minute: it clamps slower speeds to 80
PITCH_RANGE = (0, 99)
_VOICE = re.compile(r"[A-Za-z0-9_.-]+(\+[A-Za-z0-9_.-]+)?")
_ESPEAK_TIMEOUT_S = 120
_PEAK = 0.99  # a noisy utterance louder than this is scaled down (not clipped, which would change its SNR)


@dataclass(frozen=True)
class CorpusSplit:
    """How one split of a corpus is spoken: :func:`make_corpus`'s options."""

    voices: tuple[str, ...]
    speeds: tuple[int, ...]
    pitches: tuple[int, ...]
    snrs: tuple[float | None, ...]
    per_line: int | None


# Train: four accents (US, British, RP, Caribbean) and the variants m1-m4, f1, f2, f4 and klatt. Valid and test
# each hold out an accent (New York; Scotland) and variants (m5, f5; f3, m6, m7) that no other split uses, and
# speeds and pitches between training's, so they measure generalisation to new speakers, not extrapolation.
# British is "en", not "en-gb": espeak-ng drops the variant of the language alias en-gb (see check_voice).
DEFAULT_SPLITS: dict[str, CorpusSplit] = {
    "train": CorpusSplit(
        voices=(
            "en-us",
            "en-us+m3",
            "en-us+f2",
            "en-us+klatt",
            "en-029+m1",
            "en-029+f2",
            "en",
            "en+m2",
            "en+f4",
            "en-gb-x-rp+m4",
            "en-gb-x-rp+f1",
        ),
        speeds=(130, 150, 175, 200),
        pitches=(35, 50, 65),
        snrs=(None, 30.0, 20.0, 10.0),
        per_line=4,
    ),
    "valid": CorpusSplit(
        voices=("en-us-nyc", "en-us+m5", "en+f5"),
        speeds=(140, 190),
        pitches=(45, 60),
        snrs=(None, 15.0),
        per_line=2,
    ),
    "test": CorpusSplit(
        voices=("en-us+f3", "en+m7", "en-gb-scotland", "en-gb-scotland+f3", "en-029+m6"),
        speeds=(160, 185),
        pitches=(40, 55),
        snrs=(None, 15.0),
        per_line=2,
    ),
}
"""The voices, speeds, pitches, SNRs and utterances per line of the default corpus's train, valid and test."""


@dataclass
class Utterance:
    """One manifest row: the audio file (absolute), its transcript and how it was made, where known."""

    path: Path
    text: str
    voice: str | None = None
    speed: float | None = None
    pitch: float | None = None
    snr: float | None = None
    duration: float | None = None
    translation: str | None = None  # the transcript in another language (speech translation corpora)
    line: int | None = None  # the manifest line, for errors that name it


# ---------------------------------------- espeak-ng


def espeak_path() -> str:
    """The espeak-ng executable; RnnkitError saying how to install it where it is not on the PATH."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise RnnkitError(ESPEAK_INSTALL)
    return path


def speak(text: str, *, voice: str = "en-us", speed: int = 175, pitch: int = 50) -> np.ndarray:
    """``text`` spoken by espeak-ng: float32 mono at 16 kHz (empty for blank text).

    Args:
        text: what to say (passed on standard input, so no character is read as an option).
        voice: an espeak-ng voice with an optional variant: ``"en-us"``, ``"en-us+f3"``, ``"en+m7"``
            (``espeak-ng --voices=en`` and ``espeak-ng --voices=variant`` list them).
        speed: words a minute, 80 to 450.
        pitch: 0 to 99.

    Raises:
        RnnkitError: espeak-ng is missing, an argument is out of range, or espeak-ng fails (an unknown voice).
    """
    _check_speech_args(voice, speed, pitch)
    if not text.strip():
        return np.zeros(0, dtype=np.float32)  # espeak-ng writes no file at all for blank text
    command = [espeak_path(), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdin"]
    with tempfile.TemporaryDirectory(prefix="rnnkit-espeak-") as folder:
        wav = Path(folder) / "speech.wav"
        try:
            done = subprocess.run(
                [*command, "-w", str(wav)], input=text.encode("utf-8"), capture_output=True, timeout=_ESPEAK_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise RnnkitError(f"espeak-ng took over {_ESPEAK_TIMEOUT_S} s to say {short_repr(text)}") from None
        if done.returncode != 0 or not wav.exists():
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {done.returncode}"]
            raise RnnkitError(
                f"espeak-ng failed with voice {voice!r} ({reason[-1]}): list the voices with "
                "`espeak-ng --voices=en` and the +variants with `espeak-ng --voices=variant`"
            )
        return load_audio(wav)  # espeak-ng writes 22,050 Hz; load_audio resamples


def check_voice(voice: str) -> None:
    """Check that espeak-ng has ``voice`` and, for ``base+variant``, that it applies the variant.

    espeak-ng fails on an unknown base voice but silently ignores an unknown variant (``en-us+F3``: names are
    case-sensitive) and any variant of a language alias such as ``en-gb`` (``en+f3`` is British with one).
    """
    base, plus, _ = voice.partition("+")
    heard = speak("a", voice=voice)
    if plus and np.array_equal(heard, speak("a", voice=base)):
        raise RnnkitError(
            f"espeak-ng ignores the variant of voice {voice!r}: check the name with `espeak-ng --voices=variant`, "
            "and put it after a voice, not a language alias (en+f3, not en-gb+f3)"
        )


def _check_speech_args(voice: str, speed: int, pitch: int) -> None:
    if not isinstance(voice, str) or not _VOICE.fullmatch(voice):
        raise RnnkitError(f"voice {short_repr(voice)} is not an espeak-ng voice name: give e.g. en-us or en-us+f3")
    for name, value, (low, high) in (("speed", speed, SPEED_RANGE), ("pitch", pitch, PITCH_RANGE)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RnnkitError(f"{name} {short_repr(value)} is out of range: give an integer from {low} to {high}")


# ---------------------------------------- noise


def add_noise(audio: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """``audio`` plus white Gaussian noise at exactly ``snr_db`` dB below its mean power, as float32.

    The noise is scaled so that its power over the utterance is exactly the signal's power / 10^(snr/10).
    ``snr_db`` None (or +inf) means clean: the audio comes back unchanged. So does a silent (all-zero) or
    empty audio: it has no power for the noise to be relative to. Deterministic given the generator's state.

    >>> x = np.sin(np.arange(1000, dtype=np.float32))
    >>> noisy = add_noise(x, 10.0, np.random.default_rng(0))
    >>> round(10 * math.log10(np.mean(x.astype(float) ** 2) / np.mean((noisy - x).astype(float) ** 2)), 2)
    10.0
    """
    snr = check_snr(snr_db)
    x = np.asarray(audio, dtype=np.float32)
    power = float(np.mean(x.astype(np.float64) ** 2)) if x.size else 0.0
    if snr is None or power == 0.0:
        return x.copy()
    noise = rng.standard_normal(x.shape)
    noise *= math.sqrt(power / 10 ** (snr / 10) / np.mean(noise**2))
    return (x + noise).astype(np.float32)


def check_snr(snr_db: float | None) -> float | None:
    """An SNR in dB as a float, or None for clean audio (None or +inf); RnnkitError for anything else."""
    if snr_db is None or (isinstance(snr_db, int | float) and snr_db == math.inf):
        return None
    if isinstance(snr_db, bool) or not isinstance(snr_db, int | float) or not math.isfinite(snr_db):
        raise RnnkitError(f"SNR {short_repr(snr_db)} is not a number of decibels: give e.g. 20 (or none for clean)")
    return float(snr_db)


# ---------------------------------------- corpora


def normalise_text(text: str) -> str:
    """Lowercase, whitespace runs as one space, no leading or trailing space: how corpus transcripts are kept."""
    return " ".join(text.lower().split())


def make_corpus(
    lines: Iterable[str],
    out_dir: PathLike,
    *,
    voices: Sequence[str],
    speeds: Sequence[int] = (175,),
    pitches: Sequence[int] = (50,),
    snrs: Sequence[float | None] = (None,),
    seed: int = 0,
    per_line: int | None = None,
    split_name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Speak each line with espeak-ng and write the WAV files and the manifest of a corpus.

    Args:
        lines: the transcripts; each is normalised (:func:`normalise_text`), blank ones are skipped.
        out_dir: the corpus folder (created); WAVs go to ``out_dir/wav/``.
        voices, speeds, pitches, snrs: the choices to combine (an SNR of None is clean audio).
        seed: fixes the combinations drawn and the noise: the same arguments give byte-identical files.
        per_line: how many distinct (voice, speed, pitch, snr) combinations, drawn at random, each line gets;
            None: every combination.
        split_name: names the manifest ``out_dir/<split_name>.jsonl`` (else ``manifest.jsonl``) and starts the
            WAV names, so several splits can share one folder.
        progress: called as ``progress(done, total)`` after each utterance (WAV file) written.

    Returns:
        The manifest's path. WAVs are ``wav/[<split_name>-]<line index>-<combination index>.wav``.
    """
    combos = _combinations(voices, speeds, pitches, snrs, per_line)
    _check_names(seed, split_name)
    espeak_path()
    for voice in dict.fromkeys(voices):
        check_voice(voice)  # an unknown voice fails now, not an hour in
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    prefix = f"{split_name}-" if split_name else ""
    salt = zlib.crc32(prefix.encode("utf-8"))  # splits made with one seed draw different noise
    plan = []  # (line index, text, its combinations, the generator that drew them and then draws their noise)
    for index, text in enumerate(normalise_text(line) for line in lines):
        if text:
            rng = np.random.default_rng([seed, salt, index])
            chosen = combos if per_line is None else [combos[i] for i in sorted(_draw(rng, len(combos), per_line))]
            plan.append((index, text, chosen, rng))
    total, rows = sum(len(chosen) for _, _, chosen, _ in plan), []
    for index, text, chosen, rng in plan:
        for k, combo in enumerate(chosen):
            rows.append(_utterance_file(out, f"wav/{prefix}{index:05d}-{k:03d}.wav", text, combo, rng))
            if progress is not None:
                progress(len(rows), total)
    manifest = out / f"{split_name or 'manifest'}.jsonl"
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return write_atomically(manifest, lambda tmp: tmp.write_text(body, encoding="utf-8", newline="\n"))


def _check_names(seed: int, split_name: str | None) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RnnkitError(f"seed {short_repr(seed)}: give a non-negative integer")
    if split_name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", split_name):
        raise RnnkitError(f"split name {short_repr(split_name)}: use letters, digits, '_', '.' and '-' only")


def _combinations(
    voices: Sequence[str], speeds: Sequence[int], pitches: Sequence[int], snrs: Sequence[float | None], per_line
) -> list[tuple[str, int, int, float | None]]:
    for name, values in (("voices", voices), ("speeds", speeds), ("pitches", pitches), ("snrs", snrs)):
        if isinstance(values, str) or not len(values):
            raise RnnkitError(f"{name} is {short_repr(values)}: give a non-empty list")
    for voice, speed, pitch in itertools.product(voices, speeds, pitches):
        _check_speech_args(voice, speed, pitch)
    snrs = [check_snr(snr) for snr in snrs]
    if per_line is not None and (isinstance(per_line, bool) or not isinstance(per_line, int) or per_line < 1):
        raise RnnkitError(f"per_line {short_repr(per_line)}: give a positive integer (or None for every combination)")
    return list(dict.fromkeys(itertools.product(voices, speeds, pitches, snrs)))


def _draw(rng: np.random.Generator, total: int, count: int) -> list[int]:
    return [int(i) for i in rng.choice(total, size=min(count, total), replace=False)]


def _utterance_file(out: Path, name: str, text: str, combo: tuple, rng: np.random.Generator) -> dict[str, Any]:
    voice, speed, pitch, snr = combo
    audio = add_noise(speak(text, voice=voice, speed=speed, pitch=pitch), snr, rng)
    write_wav(out / name, audio)
    duration = round(len(audio) / SAMPLE_RATE, 4)
    return {
        "path": name,
        "text": text,
        "voice": voice,
        "speed": speed,
        "pitch": pitch,
        "snr": snr,
        "duration": duration,
    }


def write_wav(path: PathLike, audio: np.ndarray) -> Path:
    """Write float audio at 16 kHz as a 16-bit PCM mono WAV, atomically; audio louder than 0.99 is scaled down."""
    sf = _soundfile()
    x = np.asarray(audio, dtype=np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > _PEAK:
        x = x * (_PEAK / peak)
    pcm = np.round(x * 32767).astype(np.int16)  # our own rounding: the bytes do not depend on libsndfile's
    return write_atomically(path, lambda tmp: sf.write(tmp, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV"))


# ---------------------------------------- the default corpus

_DIGITS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_ORDINALS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
    "nineteenth", "twentieth", "twenty first", "twenty second", "twenty third", "twenty fourth", "twenty fifth",
    "twenty sixth", "twenty seventh", "twenty eighth", "twenty ninth", "thirtieth", "thirty first",
)  # fmt: skip
# A closed set of commands and phrases over a small vocabulary, heavy in doubled letters (coffee, letter,
# balloon, door, green, moon, all) and repeated words (no no no), where CTC needs a blank between the two.
_PHRASES = (
    "stop", "go", "yes", "no", "no no", "no no no", "yes yes", "stop stop", "go go go", "one one",
    "turn the light on", "turn the light off", "turn the lights on", "turn all the lights off", "open the door",
    "close the door", "lock the door", "play music", "pause the music", "play the next song", "call mom",
    "call me at noon", "louder", "softer", "next", "back", "a cup of coffee", "more coffee", "no more coffee",
    "coffee with milk", "coffee coffee", "write a letter", "read the letter", "a letter for you", "the red balloon",
    "a green balloon", "balloon balloon", "a green apple", "good morning", "good night", "see you soon",
    "look at the moon", "the moon is full", "book a room", "all is well", "sleep well", "keep the change",
    "add three apples", "hello", "hello hello", "too soon", "see you tomorrow", "the door is green",
    "all off", "all on", "set an alarm", "cancel the alarm", "what time is it", "call the office", "need help",
)  # fmt: skip
_DEFAULT_COUNTS = {"train": (200, 60), "valid": (25, 10), "test": (25, 10)}  # digit strings, dates per split


def default_corpus_text(seed: int = 0) -> dict[str, list[str]]:
    """The lines of the default corpus's ``train``, ``valid`` and ``test`` splits (a few hundred in all).

    Digit strings (``"nine oh five"``, with repeats like ``"one one two"``) and dates (``"march third"``,
    ``"the fifth of may"``) are drawn with ``seed`` and never shared between splits; the short commands and
    phrases (a closed set, as a command grammar would be) are in every split, spoken there by other voices.

    >>> splits = default_corpus_text(0)
    >>> sorted(splits), not set(splits["train"]) & set(splits["test"]) - set(_PHRASES)
    (['test', 'train', 'valid'], True)
    """
    rng = np.random.default_rng([seed, 7])
    total_digits = sum(d for d, _ in _DEFAULT_COUNTS.values())
    total_dates = sum(d for _, d in _DEFAULT_COUNTS.values())
    digits, dates = _unique(rng, _digit_string, total_digits), _unique(rng, _date, total_dates)
    splits: dict[str, list[str]] = {}
    for name, (n_digits, n_dates) in _DEFAULT_COUNTS.items():
        splits[name] = digits[:n_digits] + dates[:n_dates] + list(_PHRASES)
        digits, dates = digits[n_digits:], dates[n_dates:]
    return splits


def make_default_corpus(
    out_dir: PathLike, *, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> dict[str, Path]:
    """Write the default corpus (:func:`default_corpus_text` spoken as :data:`DEFAULT_SPLITS` says) to
    ``out_dir``: ``train.jsonl``, ``valid.jsonl``, ``test.jsonl`` and ``wav/``. Returns each split's manifest."""
    texts = default_corpus_text(seed)
    return {
        name: make_corpus(texts[name], out_dir, seed=seed, split_name=name, progress=progress, **asdict(split))
        for name, split in DEFAULT_SPLITS.items()
    }


# The spoken-word corpus (speech autoencoders, spoken-word retrieval): each word of the default corpus alone,
# spoken by the default corpus's voices, so its test split has speakers, speeds and pitches training never hears.
WORD_SPLITS: dict[str, CorpusSplit] = {
    "train": replace(DEFAULT_SPLITS["train"], per_line=8),
    "valid": replace(DEFAULT_SPLITS["valid"], per_line=3),
    "test": replace(DEFAULT_SPLITS["test"], per_line=4),
}


def default_words() -> list[str]:
    """The words of the spoken-word corpus: every word of the default corpus's digits, dates and phrases.

    >>> words = default_words()
    >>> len(words), words[:3], "coffee" in words
    (120, ['a', 'add', 'alarm'], True)
    """
    lines = (*_DIGITS, *_MONTHS, *_ORDINALS, *_PHRASES)
    return sorted({word for line in lines for word in line.split()})


def make_word_corpus(
    out_dir: PathLike, *, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> dict[str, Path]:
    """Write the spoken-word corpus (each of :func:`default_words` spoken as :data:`WORD_SPLITS` says) to
    ``out_dir``: ``train.jsonl``, ``valid.jsonl``, ``test.jsonl`` and ``wav/``. Returns each split's manifest."""
    words = default_words()
    return {
        name: make_corpus(words, out_dir, seed=seed, split_name=name, progress=progress, **asdict(split))
        for name, split in WORD_SPLITS.items()
    }


def _unique(rng: np.random.Generator, draw: Callable[[np.random.Generator], str], count: int) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < count:
        line = draw(rng)
        if line not in _PHRASES:  # a drawn "one one" would otherwise be in a split twice
            seen[line] = None
    return list(seen)


def _digit_string(rng: np.random.Generator) -> str:
    words = [_DIGITS[rng.integers(len(_DIGITS))]]
    for _ in range(int(rng.integers(1, 6))):
        repeat = rng.random() < 0.3  # "one one two": repeated digits are where CTC's blank earns its keep
        words.append(words[-1] if repeat else _DIGITS[rng.integers(len(_DIGITS))])
    return " ".join(words)


def _date(rng: np.random.Generator) -> str:
    month, day = _MONTHS[rng.integers(len(_MONTHS))], _ORDINALS[rng.integers(len(_ORDINALS))]
    return f"{month} {day}" if rng.random() < 0.6 else f"the {day} of {month}"


# ---------------------------------------- manifests and transcripts


def read_manifest(path: PathLike) -> list[Utterance]:
    """The utterances of a JSON-lines manifest (the module docstring has the format), in file order.

    Raises:
        RnnkitError: naming ``manifest:line``: a line that is not a JSON object, a missing or mistyped field,
            or an audio file that does not exist; or the manifest itself is missing, empty or not UTF-8 text.
    """
    path = Path(path)
    utterances = []
    for n, line in enumerate(read_text(path).split("\n"), 1):
        if line.strip():
            utterances.append(_utterance(path, n, line))
    return utterances


def _utterance(path: Path, n: int, line: str) -> Utterance:
    where = f"{path}:{n}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise RnnkitError(f"{where}: column {err.colno}: not JSON ({err.msg}): give one JSON object per line") from None
    if not isinstance(row, dict):
        raise RnnkitError(f'{where}: {short_repr(row)} is not a JSON object: give {{"path": ..., "text": ...}}')
    for field in ("path", "text"):
        if not isinstance(row.get(field), str) or (field == "path" and not row[field]):
            raise RnnkitError(f'{where}: "{field}" is missing or not a string: give every row a path and a text')
    for field in ("speed", "pitch", "snr", "duration"):
        value = row.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise RnnkitError(f'{where}: "{field}" is {short_repr(value)}: give a number (or leave it out)')
    for field in ("voice", "translation"):
        if row.get(field) is not None and not isinstance(row[field], str):
            raise RnnkitError(f'{where}: "{field}" is {short_repr(row[field])}: give a string (or leave it out)')
    audio = path.parent / row["path"]  # an absolute "path" replaces the folder
    if not audio.is_file():
        missing = "is a folder, not an audio file" if audio.is_dir() else "does not exist"
        raise RnnkitError(
            f"{where}: audio file {audio} {missing} (paths are relative to the manifest's folder): "
            "fix the path or make the corpus again"
        )
    fields = {k: row.get(k) for k in ("voice", "speed", "pitch", "snr", "duration", "translation")}
    return Utterance(path=audio.absolute(), text=row["text"], line=n, **fields)


def check_alphabet(
    texts: Iterable[str], alphabet: Iterable[str], *, where: PathLike, lines: Sequence[int | None] | None = None
) -> None:
    """Check every character of every transcript is in ``alphabet``.

    Args:
        texts: the transcripts.
        alphabet: the allowed characters (a string or any iterable of them).
        where: the file the transcripts came from, for the message.
        lines: each transcript's line in ``where`` (``Utterance.line``); by default 1, 2, 3, ...

    Raises:
        RnnkitError: ``where:line``, the transcript, the character and its code point, and what to do.

    >>> check_alphabet(["no no", "go"], "gno ", where="m.jsonl")
    >>> check_alphabet(["no", "No"], "gno ", where="m.jsonl")
    Traceback (most recent call last):
    ...
    rnnkit.errors.RnnkitError: m.jsonl:2: the transcript 'No' has 'N' (U+004E), which is not in the alphabet: \
lowercase the transcripts (--lowercase)
    """
    allowed = set(alphabet)
    for i, text in enumerate(texts):
        bad = next((c for c in text if c not in allowed), None)
        if bad is None:
            continue
        line = lines[i] if lines is not None and lines[i] is not None else i + 1
        if bad.lower() in allowed:
            advice = "lowercase the transcripts (--lowercase)"
        else:
            advice = "map or remove that character in the manifest, or add it to the alphabet"
        raise RnnkitError(
            f"{where}:{line}: the transcript {short_repr(text)} has {bad!r} (U+{ord(bad):04X}), "
            f"which is not in the alphabet: {advice}"
        )


# ---------------------------------------- audio files


def load_audio(path: PathLike) -> np.ndarray:
    """The samples of an audio file as float32 mono at 16 kHz (empty for a file with no samples).

    Stereo (any number of channels) is downmixed by the mean; another sample rate is resampled (:func:`resample`).

    Raises:
        RnnkitError: naming the file: missing, a folder, 0 bytes, not audio libsndfile reads, a WAV shorter
            than its header says (truncated), or samples that are NaN or infinite.
    """
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"{path} is a folder: give an audio file" if path.is_dir() else f"{path}: no such file")
    if path.stat().st_size == 0:
        raise RnnkitError(f"{path} is empty (0 bytes), not audio: make or copy the file again")
    _check_wav_complete(path)
    sf = _soundfile()
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except sf.LibsndfileError as err:
        reason = err.error_string.strip().rstrip(".") or first_line(err)
        message = f"{path} is not audio rnnkit can read ({reason}): give a WAV, FLAC, OGG or MP3 file"
        raise RnnkitError(message) from None
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise RnnkitError(f"{path}: cannot read the audio ({first_line(err)})") from None
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise RnnkitError(f"{path} has NaN or infinite samples: make the file again")
    return resample(mono, rate, SAMPLE_RATE)


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` at ``rate`` Hz resampled to ``target`` Hz, float32.

    scipy's polyphase filter (``resample_poly``) with the exact rational ratio (22,050 -> 16,000 Hz is
    320/441): anti-aliased, deterministic, and scipy is already installed with rnnkit, while librosa's
    ``resample`` costs seconds of import (numba) for the same job.

    >>> resample(np.ones(441, dtype=np.float32), 22050).shape
    (320,)
    """
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise RnnkitError(f"sample rate {short_repr(rate)} is not a positive integer number of Hz")
    x = np.asarray(audio, dtype=np.float32)
    if rate == target or x.size == 0:
        return x
    from scipy.signal import resample_poly  # here: importing scipy.signal costs the CLI's start-up ~0.7 s

    g = math.gcd(int(rate), int(target))
    return resample_poly(x, target // g, int(rate) // g).astype(np.float32)


def _check_wav_complete(path: Path) -> None:
    """Raise where a RIFF WAV's data chunk promises more bytes than the file has: libsndfile reads such a
    truncated file without a word, returning the samples that are there."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return
        f.seek(0)
        if f.read(4) != b"RIFF":  # RF64 and RIFX: left to libsndfile
            return
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk, length = f.read(4), int.from_bytes(f.read(4), "little")
            if chunk == b"data":
                have = size - pos - 8
                if length not in (0, 0xFFFFFFFF) and length > have:  # 0, ~0: streamed, length unknown
                    raise RnnkitError(
                        f"{path} is truncated: its header promises {length:,} bytes of audio but only {have:,} "
                        "are there: make or copy the file again"
                    )
                return
            pos += 8 + length + (length & 1)


def _soundfile() -> Any:
    try:
        import soundfile
    except ImportError:
        raise RnnkitError("the soundfile package is not installed: pip install soundfile") from None
    return soundfile
