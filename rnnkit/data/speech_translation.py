"""A German-to-English spoken corpus made here: German phrases spoken by espeak-ng's German voices, each row with
its English translation (``rnnkit speech make-corpus --german``).

The phrases are the default English corpus's kinds in German: digit strings (``"eins eins vier"`` -> ``"one one
four"``), dates (``"der dritte märz"`` -> ``"march third"``: the order changes), times and alarms
(``"ruf mich um acht uhr an"`` -> ``"call me at eight"``: the verb's particle comes last in German) and short
commands (``"mach das licht aus"`` -> ``"turn the light off"``). Digit strings, dates and times are drawn with the
seed and never shared between splits; the commands are a closed set in every split, spoken there by other
voices. Valid and test are spoken by German voice variants, speeds and pitches that training never has.

>>> pairs = german_corpus_text(0)
>>> sorted(pairs), pairs["train"][0][0].split()[0] in _DIGITS_DE
(['test', 'train', 'valid'], True)
>>> translate_date("dritte", "märz")
('der dritte märz', 'march third')
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rnnkit.data.speech import CorpusSplit, PathLike, make_corpus, normalise_text
from rnnkit.io import write_atomically

_DIGITS_DE = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
_DIGITS_EN = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_MONTHS_DE = (
    "januar", "februar", "märz", "april", "mai", "juni", "juli", "august", "september", "oktober", "november",
    "dezember",
)  # fmt: skip
_MONTHS_EN = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december",
)  # fmt: skip
_ORDINALS_DE = (
    "erste", "zweite", "dritte", "vierte", "fünfte", "sechste", "siebte", "achte", "neunte", "zehnte", "elfte",
    "zwölfte", "dreizehnte", "vierzehnte", "fünfzehnte", "sechzehnte", "siebzehnte", "achtzehnte", "neunzehnte",
    "zwanzigste", "einundzwanzigste", "zweiundzwanzigste", "dreiundzwanzigste", "vierundzwanzigste",
    "fünfundzwanzigste", "sechsundzwanzigste", "siebenundzwanzigste", "achtundzwanzigste", "neunundzwanzigste",
    "dreißigste", "einunddreißigste",
)  # fmt: skip
_ORDINALS_EN = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
    "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth",
    "twentieth", "twenty first", "twenty second", "twenty third", "twenty fourth", "twenty fifth", "twenty sixth",
    "twenty seventh", "twenty eighth", "twenty ninth", "thirtieth", "thirty first",
)  # fmt: skip
_HOURS_DE = ("zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn", "elf", "zwölf")
_HOURS_EN = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_TIMES = (  # (German with {h} for the hour, English)
    ("ruf mich um {h} uhr an", "call me at {h}"),
    ("stell einen wecker für {h} uhr", "set an alarm for {h}"),
    ("weck mich um {h} uhr", "wake me at {h}"),
    ("es ist {h} uhr", "it is {h} o'clock"),
)
_COMMANDS = (
    ("mach das licht an", "turn the light on"), ("mach das licht aus", "turn the light off"),
    ("mach alle lichter aus", "turn all the lights off"), ("öffne die tür", "open the door"),
    ("schließ die tür", "close the door"), ("spiel musik", "play music"), ("pause", "pause"),
    ("spiel das nächste lied", "play the next song"), ("ruf mama an", "call mom"), ("lauter", "louder"),
    ("leiser", "softer"), ("weiter", "next"), ("zurück", "back"), ("ja", "yes"), ("nein", "no"),
    ("nein nein", "no no"), ("nein nein nein", "no no no"), ("stopp", "stop"), ("guten morgen", "good morning"),
    ("gute nacht", "good night"), ("bis bald", "see you soon"), ("bis morgen", "see you tomorrow"),
    ("eine tasse kaffee", "a cup of coffee"), ("mehr kaffee", "more coffee"), ("kein kaffee mehr", "no more coffee"),
    ("kaffee mit milch", "coffee with milk"), ("schreib einen brief", "write a letter"),
    ("lies den brief", "read the letter"), ("ein brief für dich", "a letter for you"),
    ("stell einen wecker", "set an alarm"), ("lösch den wecker", "cancel the alarm"),
    ("wie spät ist es", "what time is it"), ("ich brauche hilfe", "i need help"),
    ("schau auf den mond", "look at the moon"), ("der mond ist voll", "the moon is full"), ("hallo", "hello"),
    ("danke", "thank you"), ("bitte", "please"), ("die tür ist grün", "the door is green"),
    ("ein grüner apfel", "a green apple"),
)  # fmt: skip
# digit strings, dates, times per split (4 time templates x 11 hours make 44 times in all)
_COUNTS = {"train": (300, 120, 24), "valid": (30, 15, 6), "test": (30, 15, 6)}

GERMAN_SPLITS: dict[str, CorpusSplit] = {
    "train": CorpusSplit(
        voices=("de", "de+m1", "de+m3", "de+f2", "de+f4", "de+klatt", "de+m4", "de+f1"),
        speeds=(130, 150, 175, 200),
        pitches=(35, 50, 65),
        snrs=(None, 30.0, 20.0),
        per_line=2,
    ),
    "valid": CorpusSplit(voices=("de+m5", "de+f5"), speeds=(140, 190), pitches=(45, 60), snrs=(None, 20.0), per_line=2),
    "test": CorpusSplit(
        voices=("de+f3", "de+m7", "de+m6"), speeds=(160, 185), pitches=(40, 55), snrs=(None, 20.0), per_line=2
    ),
}
"""How the German corpus's splits are spoken: test and valid voices (variants) never speak in training."""


def translate_date(day: str, month: str) -> tuple[str, str]:
    """A German date and its English: ``der <ordinal> <month>`` -> ``<month> <ordinal>``."""
    return f"der {day} {month}", f"{_MONTHS_EN[_MONTHS_DE.index(month)]} {_ORDINALS_EN[_ORDINALS_DE.index(day)]}"


def german_corpus_text(seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """The (German, English) pairs of the corpus's ``train``, ``valid`` and ``test`` splits."""
    rng = np.random.default_rng([seed, 49])
    draws = {"digits": _digits, "dates": _date, "times": _time}
    pools = {}
    for k, (name, draw) in enumerate(draws.items()):
        total = sum(c[k] for c in _COUNTS.values())
        seen: dict[str, str] = {}
        while len(seen) < total:
            german, english = draw(rng)
            seen.setdefault(german, english)
        pools[name] = list(seen.items())
    splits = {}
    for name, counts in _COUNTS.items():
        splits[name] = [pair for k, kind in enumerate(draws) for pair in pools[kind][: counts[k]]] + list(_COMMANDS)
        pools = {kind: pools[kind][counts[k] :] for k, kind in enumerate(draws)}
    return splits


def make_german_corpus(
    out_dir: PathLike, *, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> dict[str, Path]:
    """Write the German-to-English corpus (:func:`german_corpus_text` spoken as :data:`GERMAN_SPLITS` says) to
    ``out_dir``: ``train.jsonl``, ``valid.jsonl``, ``test.jsonl`` (rows with ``translation``) and ``wav/``."""
    manifests = {}
    for name, pairs in german_corpus_text(seed).items():
        split = GERMAN_SPLITS[name]
        path = make_corpus([de for de, _ in pairs], out_dir, seed=seed, split_name=name, progress=progress,
                           **asdict(split))  # fmt: skip
        english = {normalise_text(de): en for de, en in pairs}
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        body = "".join(json.dumps(r | {"translation": english[r["text"]]}, ensure_ascii=False) + "\n" for r in rows)
        manifests[name] = write_atomically(path, lambda tmp, body=body: tmp.write_text(body, encoding="utf-8"))
    return manifests


def _digits(rng: np.random.Generator) -> tuple[str, str]:
    picks = [int(rng.integers(10))]
    for _ in range(int(rng.integers(1, 5))):
        picks.append(picks[-1] if rng.random() < 0.3 else int(rng.integers(10)))
    return " ".join(_DIGITS_DE[i] for i in picks), " ".join(_DIGITS_EN[i] for i in picks)


def _date(rng: np.random.Generator) -> tuple[str, str]:
    return translate_date(_ORDINALS_DE[rng.integers(len(_ORDINALS_DE))], _MONTHS_DE[rng.integers(12)])


def _time(rng: np.random.Generator) -> tuple[str, str]:
    german, english = _TIMES[rng.integers(len(_TIMES))]
    hour = int(rng.integers(len(_HOURS_DE)))
    return german.format(h=_HOURS_DE[hour]), english.format(h=_HOURS_EN[hour])
