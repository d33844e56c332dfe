"""Generated flag values for every command: exit 0 or one clean error line, and a failure changes nothing.

The flags of ``lm train``, ``music train``, ``classify train`` and ``tag train`` are read off the config
dataclasses, so a new option is fuzzed as soon as it exists. Values are numbers as strings (``nan``, ``inf``,
``-1``, ``0``, ``1e308``, huge integers), junk (``""``, ``abc``, unicode digits), wrong choices, and hostile
files for the file options. Sizes that allocate (``--hidden``, ``--embed``, ``--layers``, ``--mlp``,
``--char-hidden``, ...: SIZE_CAPS) stay small here, so that a success costs nothing; huge ones are
:func:`test_huge_sizes_are_refused_before_allocating`'s, under a memory cap.

Each training example targets one of: a fresh folder, a copy of a trained run without ``--force`` or
``--resume`` (always refused), the copy with ``--force``, the copy with ``--resume``. A failure before the
training line (``... process(es) -> RUN``) must leave the copy byte for byte as it was (the lock file
aside) or, for a fresh folder, leave no folder; a failure after it may have replaced the run (that is
what --force and --resume are for) but must leave a run that loads. No staging folder may stay behind.

Training is bounded: ``--max-steps 2 --epochs 2`` (a generated --max-steps is at most 50).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnkit.data.music import pitches_to_roll, write_midi
from rnnkit.tasks import classify_run, lm_run, music_run, registry, tag_run

# -- the flags, read off the config dataclasses ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str  # the field: max_steps
    kind: type  # int, float, str or bool
    choices: tuple | None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _kind(hint) -> type:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def flags_of(spec) -> list[Flag]:
    found = []
    for cls in spec.sections.values():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            choices = f.metadata.get("choices") or ()
            found.append(Flag(f.name, _kind(hints[f.name]), tuple(c for c in choices if c is not None) or None))
    return found


LM_FLAGS, MUSIC_FLAGS = flags_of(lm_run.SPEC), flags_of(music_run.SPEC)
CLASSIFY_FLAGS, TAG_FLAGS = flags_of(classify_run.SPEC), flags_of(tag_run.SPEC)
FILE_FLAGS = {"train", "valid"}  # the data files: hostile files are generated for them
#: what a success may allocate; --max-vocab, --max-length, --eval-batch-size, --min-label-count, --min-freq
#: allocate nothing by their value (tiny data bounds the vocabulary, the texts and the batches): fuzzed in full
SIZE_CAPS = {"hidden": 64, "embed": 64, "layers": 3, "attention_size": 64, "mlp": 64, "char_embed": 16}
SIZE_CAPS |= {"char_hidden": 16, "window": 5}
BOUNDS = {"max_steps"}  # training's bound: never huge

# -- values ---------------------------------------------------------------------------------------------------

INT_JUNK = ["", " ", "abc", "nan", "inf", "1.5", "1e3", "0x10", "+5", " 7", "1_000", "-0", "٣", "\x00", "--1"]
INT_EDGE = ["0", "-1", "1", "2", str(2**31), str(2**63), str(2**64), str(10**30), "-" + str(10**30)]
FLOAT_SPECIAL = [
    *("nan", "-nan", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e400", "1e-320", "3.5e38", "1e38"),
    *("-1", "0", "-0.0", "0.5", "1", "2", "abc", "", "1,5", "0x1p3", "1e", "٣.5"),
]
STR_JUNK = ["", " ", "None", "none", "null", "LSTM", " lstm", "char ", "\x00", "-", "../../etc"]


def int_values(name: str) -> st.SearchStrategy[str]:
    junk = st.sampled_from(INT_JUNK)
    if name in SIZE_CAPS:  # int() reads "1_000": a thousand layers train, slowly; not junk for a size
        size_junk = [j for j in INT_JUNK if j != "1_000"]
        return st.one_of(st.integers(-2, SIZE_CAPS[name]).map(str), st.sampled_from(size_junk))
    if name in BOUNDS:
        return st.one_of(st.integers(-3, 50).map(str), junk)
    return st.one_of(st.integers(-3, 40).map(str), junk, st.sampled_from(INT_EDGE), st.integers().map(str))


def float_values() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(FLOAT_SPECIAL), st.floats(-2, 2).map(repr), st.floats(allow_nan=True).map(repr))


def str_values(flag: Flag) -> st.SearchStrategy[str]:
    valid = st.sampled_from(flag.choices) if flag.choices else st.nothing()
    return st.one_of(valid, st.sampled_from(STR_JUNK), st.text(max_size=8))


def values(flag: Flag) -> st.SearchStrategy[tuple[str, str | None]]:
    """(flag, value) pairs; a file flag's value is "@" and a key of the ``hostile`` fixture; None: no value."""
    if flag.kind is bool:
        return st.sampled_from([(flag.flag, None), ("--no-" + flag.flag[2:], None)])
    if flag.name in FILE_FLAGS:
        return st.tuples(st.just(flag.flag), data_keys)
    strategies = {int: int_values(flag.name), float: float_values()}
    return st.tuples(st.just(flag.flag), strategies[flag.kind] if flag.kind in strategies else str_values(flag))


def flag_lists(flags: list[Flag]) -> st.SearchStrategy[list[tuple[str, str | None]]]:
    """One or two generated flags (distinct)."""
    one = st.sampled_from(flags).flatmap(values)
    return st.lists(one, min_size=1, max_size=2, unique_by=lambda pair: pair[0].removeprefix("--no-"))


def flatten(pairs, hostile: dict[str, Path]) -> list[str]:
    """The command line of (flag, value) pairs, with "@KEY" values replaced by the hostile file's path."""
    argv = []
    for flag, value in pairs:
        argv.append(flag)
        if value is not None:
            argv.append(str(hostile[value[1:]]) if value.startswith("@") and value[1:] in hostile else value)
    return argv


# -- hostile files --------------------------------------------------------------------------------------------

HOSTILE = {
    "empty": b"",
    "whitespace": b" \n\t\n",
    "one-char": b"a",
    "binary": bytes(range(256)),
    "nul": b"abc\x00def\n",
    "latin1": "caf\xe9 na\xefve\n".encode("latin-1"),
    "utf16": "abc def\n".encode("utf-16"),
    "bom": b"\xef\xbb\xbfabc de\nfg\n",
    "crlf": b"abc de\r\nfg a\r\n" * 20,
    "long-line": b"ab" * 3000,
    "json-list": b"[1, 2, 3]",
    "json-deep": b"[" * 5000 + b"]" * 5000,  # deeper than Python's recursion limit, small enough to evaluate
    "rolls-empty": b"[]",
    "rolls-junk": b'[[["60"], [true]], {"a": 1}]',
    "rolls-off-keyboard": b"[[[12, 200], [60]]]",
    "rolls-short": b"[[[60]]]",
    "rolls-ok": json.dumps([[[60, 64], [62, 65], [64, 67]]] * 3).encode(),
    "tsv-one-label": b"pos\tgood film\npos\ta good plot\n",
    "tsv-ragged": b"pos\tgood film\nneg the film\n\tno label\n",
    "conll-ragged": b"fly O\nfrom\nboston B-from x\n",
    "conll-bad-tags": b"fly X-from\nto I-to\nboston B-\n\nnew I-\n",
    "jsonl-junk": b'{"text": 1, "labels": null}\n{"tokens": ["a"], "tags": []}\n[]\n',
    "jsonl-ok": b'{"tokens": ["fly", "to", "boston"], "tags": ["O", "O", "B-to"], "text": "good", "labels": ["pos"]}\n',
}
#: the keys of the ``hostile`` fixture: HOSTILE's files and a few more, made by the fixture
REAL_DATA = ["lm-train", "lm-valid", "music-train", "classify-train", "tag-train"]
DATA_KEYS = sorted([*HOSTILE, "missing", "midi", "folder", "devnull", *REAL_DATA])
data_keys = st.sampled_from(DATA_KEYS).map(lambda key: "@" + key)


class Files(dict):
    def __repr__(self) -> str:  # short, in Hypothesis's falsifying examples
        return "hostile"


@pytest.fixture(scope="session")
def hostile(tmp_path_factory, lm_data, music_data, classify_data, tag_data) -> dict[str, Path]:
    """HOSTILE's files on disk, plus the real data files ("lm-train", "tag-train", ...)."""
    tmp = tmp_path_factory.mktemp("hostile")
    paths = {name: tmp / name for name in HOSTILE}
    for name, data in HOSTILE.items():
        paths[name].write_bytes(data)
    paths |= {"missing": tmp / "missing", "midi": tmp / "seed.mid", "folder": tmp / "folder"}
    paths["folder"].mkdir()
    write_midi(pitches_to_roll([[60, 64], [62, 65]]), paths["midi"])
    paths |= {"devnull": Path(os.devnull), "lm-train": lm_data.train, "lm-valid": lm_data.valid}
    real = {"music-train": music_data.train, "classify-train": classify_data.train, "tag-train": tag_data.train}
    return Files(paths, **real)


# -- the checks -----------------------------------------------------------------------------------------------

TIMEOUT = 20  # seconds an example's command may take (a tiny run takes well under one)
STARTED = " process(es) -> "  # the line training prints once the run is installed (or resumed)


def check_training(h, argv, out: Path, target: str, before: dict, code: int, err: str) -> None:
    line = h.assert_clean_outcome(code, err, argv)
    assert not h.staging_leftovers(out), f"staging folders left behind: {h.staging_leftovers(out)}\nargv: {argv}"
    if target == "existing":  # a run is never overwritten without --resume or --force
        assert code != 0, f"trained over a run without --resume or --force: {argv}"
    if code == 0:
        if "--print-config" not in argv:
            registry.load_run(out, weights="last")  # the run it made or continued loads
        elif target == "fresh":
            assert not out.exists(), f"--print-config created {out}"
        return
    if STARTED not in err:  # refused before anything was meant to change
        if target == "fresh":
            assert not out.exists(), f"a failed start left {sorted(os.listdir(out))} in {out}\nargv: {argv}\n{line}"
        else:
            h.assert_unchanged(before, out, argv, err)
    else:  # failed while training: the run it installed or continued must still load
        try:
            registry.load_run(out, weights="last")
        except Exception as error:
            raise AssertionError(f"training failed ({line}) and left a run that does not load: {error}") from None


def train_case(h, run: Path, data, task: str, target: str, pairs, work: Path, hostile) -> tuple[list, Path, dict]:
    out = work / "run"
    if target != "fresh":
        h.copy_run(run, out)
    if target == "resume":  # two steps beyond the step the trained run stopped at
        steps = str(h.RUN_STEPS[task] + 2)
        argv = [task, "train", "--out", str(out), "--resume", "--no-progress", "--max-steps", steps]
    else:
        base = getattr(h, f"{task}_train_argv")
        argv = base(data, out, "--max-steps", "2", "--epochs", "2") + (["--force"] if target == "force" else [])
    return argv + flatten(pairs, hostile), out, h.snapshot(out)


def check_train_case(h, run: Path, data, task: str, target: str, pairs, work: Path, hostile) -> None:
    """Train with generated flags into ``target`` and check the outcome (see :func:`check_training`)."""
    argv, out, before = train_case(h, run, data, task, target, pairs, work, hostile)
    code, _, err = h.run_cli(argv, timeout=TIMEOUT)
    check_training(h, argv, out, target, before, code, err)


TARGETS = st.sampled_from(["fresh", "force", "fresh", "force", "resume", "existing"])  # mostly where flags matter


@given(target=TARGETS, pairs=flag_lists(LM_FLAGS), print_config=st.booleans())
def test_lm_train_flags(helpers, lm_run, lm_data, hostile, scratch, target, pairs, print_config):
    h = helpers
    argv, out, before = train_case(h, lm_run, lm_data, "lm", target, pairs, scratch(), hostile)
    argv += ["--print-config"] if print_config and target != "existing" else []
    code, _, err = h.run_cli(argv, timeout=TIMEOUT)
    check_training(h, argv, out, target, before, code, err)
    if print_config and code == 0 and target != "existing":  # --print-config writes nothing
        assert h.snapshot(out) == before


@given(target=TARGETS, pairs=flag_lists(MUSIC_FLAGS))
def test_music_train_flags(helpers, music_run, music_data, hostile, scratch, target, pairs):
    check_train_case(helpers, music_run, music_data, "music", target, pairs, scratch(), hostile)


@given(target=TARGETS, pairs=flag_lists(CLASSIFY_FLAGS))
def test_classify_train_flags(helpers, classify_run, classify_data, hostile, scratch, target, pairs):
    check_train_case(helpers, classify_run, classify_data, "classify", target, pairs, scratch(), hostile)


@given(target=TARGETS, pairs=flag_lists(TAG_FLAGS))
def test_tag_train_flags(helpers, tag_run, tag_data, hostile, scratch, target, pairs):
    check_train_case(helpers, tag_run, tag_data, "tag", target, pairs, scratch(), hostile)


# -- the commands that read a run: eval, sample, score, generate, predict -------------------------------------

surrogates = st.binary(max_size=6).map(os.fsdecode)  # undecodable argv bytes, as Python passes them on
texts = st.one_of(st.text(max_size=30), st.text("abcdefg \n", max_size=30), surrogates)
small_ints = st.one_of(st.integers(-3, 300).map(str), st.sampled_from(INT_JUNK), st.sampled_from(INT_EDGE[:4]))
any_ints = st.one_of(small_ints, st.sampled_from(INT_EDGE), st.integers().map(str))


def optional(flag: str, strategy) -> st.SearchStrategy[list]:
    return st.one_of(st.just([]), strategy.map(lambda v: [(flag, v)]))


def switch(flag: str) -> st.SearchStrategy[list]:
    return st.sampled_from([[], [(flag, None)]])


def combined(*parts) -> st.SearchStrategy[list]:
    return st.tuples(*parts).map(lambda lists: [pair for part in lists for pair in part])


LM_READERS = st.one_of(
    combined(
        st.just([("eval", None)]),
        data_keys.map(lambda key: [("--data", key)]),
        optional("--batch-size", any_ints),
        optional("--encoding-errors", st.one_of(st.sampled_from(["strict", "replace", "ignore"]), st.text(max_size=5))),
        switch("--json"),
    ),
    combined(
        st.just([("sample", None)]),
        optional("--prime", texts),
        optional("--length", small_ints),
        optional("--temperature", float_values()),
        optional("--top-k", any_ints),
        optional("--top-p", float_values()),
        switch("--allow-unk"),
        optional("--seed", any_ints),
        switch("--json"),
    ),
    combined(
        st.just([("score", None)]),
        st.lists(texts, min_size=1, max_size=3).map(lambda ss: [(s, None) for s in ss]),
        switch("--json"),
    ),
)


@given(parts=LM_READERS)
def test_lm_eval_sample_score_flags(helpers, lm_run, hostile, scratch, parts):
    """A reading command never changes the run, whatever it is given, and ends cleanly."""
    h = helpers
    run = h.copy_run(lm_run, scratch() / "run")
    (verb, _), *rest = parts
    if verb == "score":  # "--" so that a generated sentence is never read as an option
        flags = [p for p in rest if p[0] == "--json"]
        argv = ["lm", "score", str(run), *(f for f, _ in flags), "--", *(s for s, v in rest if s != "--json")]
    else:
        argv = ["lm", verb, str(run), *flatten(rest, hostile)]
    before = h.snapshot(run)
    code, out, err = h.run_cli(argv, timeout=TIMEOUT)
    h.assert_clean_outcome(code, err, argv)
    h.assert_unchanged(before, run, argv, err)
    if code == 0 and "--json" in argv:
        json.loads(out.splitlines()[-1] if verb != "score" else out)


def eval_parts(own: str) -> st.SearchStrategy[list]:
    """``eval --data FILE``: a hostile file, or as often the run's own training data (so that it can succeed)."""
    data = st.one_of(data_keys, st.just("@" + own)).map(lambda key: [("--data", key)])
    return combined(st.just([("eval", None)]), data, optional("--batch-size", any_ints), switch("--json"))


chords = st.one_of(
    st.lists(st.integers(15, 115), min_size=1, max_size=5).map(lambda ps: ",".join(map(str, ps))),
    st.sampled_from(["", ",", "60,,64", "60 ,64", "1e2", "60.0", "-60", str(2**64), "60," * 200 + "60", "٦٠"]),
    st.text(",0123456789 -", max_size=12),
)
#: where a generated output file (music's --out, classify's --attention-png) goes: see :func:`out_files`
out_keys = st.sampled_from(["new", "run-folder", "no-parent", "existing-file", "other-suffix"])
MUSIC_READERS = st.one_of(
    eval_parts("music-train"),
    combined(
        st.just([("generate", None)]),
        st.one_of(chords.map(lambda c: [("--seed-chord", c)]), data_keys.map(lambda key: [("--seed-midi", key)])),
        optional("--steps", st.one_of(st.integers(-3, 64).map(str), st.sampled_from(INT_JUNK))),
        optional("--temperature", float_values()),
        optional("--seed", any_ints),
        out_keys.map(lambda o: [("--out", o)]),
        switch("--json"),
    ),
)

# what predict reads: a file ("@KEY" of the hostile fixture) or stdin (bytes; with "-" or no file argument)
INPUT = "<input>"
WORDS = ["good", "film", "the", "fly", "from", "boston", "new", "york", "<unk>", "<pad>", "é", "\x00", "\x1b[31m"]
typed = st.lists(st.sampled_from([*WORDS, " ", "  ", "\t", "\n", "\r\n", "\n\n"]), max_size=24).map("".join)
piped = st.one_of(typed.map(str.encode), st.text(max_size=30).map(str.encode), st.binary(max_size=16))
inputs = st.one_of(data_keys, st.tuples(st.sampled_from([None, "-"]), piped)).map(lambda source: [(INPUT, source)])
CLASSIFY_READERS = st.one_of(
    eval_parts("classify-train"),
    combined(
        st.just([("predict", None)]),
        inputs,
        optional("--batch-size", any_ints),
        switch("--json"),
        switch("--show-attention"),
        optional("--attention-png", out_keys),
    ),
)
TAG_READERS = st.one_of(
    eval_parts("tag-train"), combined(st.just([("predict", None)]), inputs, switch("--json"), switch("--scores"))
)
OUT_FLAGS = {"--out", "--attention-png"}


def out_files(work: Path, run: Path, suffix: str) -> dict[str, Path]:
    """The targets of a generated output flag; "existing-file" holds b"keep", the others do not exist."""
    (work / f"old{suffix}").write_bytes(b"keep")
    outs = {"new": work / f"new{suffix}", "run-folder": run, "no-parent": work / "nope" / f"new{suffix}"}
    return outs | {"existing-file": work / f"old{suffix}", "other-suffix": work / "new.other"}


def check_reader(h, task: str, trained: Path, parts, hostile, work: Path) -> None:
    """``rnnkit TASK VERB RUN ...`` on a copy of ``trained`` never changes the run and ends cleanly; a failure
    leaves an existing output file as it was and creates none; a --json success prints JSON lines."""
    run = h.copy_run(trained, work / "run")
    suffix = {"music": ".mid", "classify": ".png"}.get(task, ".out")
    outs = out_files(work, run, suffix)
    (verb, _), *rest = parts
    source = next((v for f, v in rest if f == INPUT), None)
    rest = [(f, str(outs[v]) if f in OUT_FLAGS else v) for f, v in rest if f != INPUT]
    stdin, positional = b"", []  # eval, or predict reading a file: nothing is piped in
    if isinstance(source, str):
        positional = [str(hostile[source[1:]])]
    elif source is not None:
        dash, stdin = source
        positional = [dash] if dash else []
    argv = [task, verb, str(run), *positional, *flatten(rest, hostile)]
    before = h.snapshot(run)
    code, out, err = h.run_cli(argv, timeout=TIMEOUT, stdin=stdin)
    h.assert_clean_outcome(code, err, argv)
    h.assert_unchanged(before, run, argv, err)
    if code != 0:
        assert (work / f"old{suffix}").read_bytes() == b"keep", f"a failed {verb} overwrote its output file"
        assert not list(work.glob("**/new.*")), f"a failed {verb} left an output file"
    elif "--json" in argv:
        for line in out.splitlines():
            json.loads(line)
    assert not [p for p in work.iterdir() if p.name.endswith(".tmp")], "a temporary file was left behind"


@given(parts=MUSIC_READERS)
def test_music_eval_generate_flags(helpers, music_run, hostile, scratch, parts):
    check_reader(helpers, "music", music_run, parts, hostile, scratch())


@given(parts=CLASSIFY_READERS)
def test_classify_eval_predict_flags(helpers, classify_run, hostile, scratch, parts):
    check_reader(helpers, "classify", classify_run, parts, hostile, scratch())


@given(parts=TAG_READERS)
def test_tag_eval_predict_flags(helpers, tag_run, hostile, scratch, parts):
    check_reader(helpers, "tag", tag_run, parts, hostile, scratch())


# -- huge sizes: a clean refusal, before anything is allocated ------------------------------------------------

HUGE_TIMEOUT = 5  # seconds: a refusal is instant; more is the finding (building or generating for hours)


HUGE = [
    ("lm", "--hidden", str(10**5)),
    ("lm", "--hidden", str(10**7)),
    ("lm", "--hidden", str(2**31)),  # found: a RuntimeError (storage size overflowed) while counting parameters
    ("lm", "--hidden", str(2**63)),  # found: a TypeError (overflow when unpacking long long)
    ("lm", "--embed", str(10**9)),
    ("lm", "--layers", str(10**7)),
    ("music", "--hidden", str(10**7)),
    ("music", "--layers", str(10**6)),
]


@pytest.mark.parametrize(("task", "flag", "value"), HUGE)
def test_huge_sizes_are_refused_before_allocating(
    helpers, lm_run, music_run, lm_data, music_data, tmp_path, task, flag, value
):
    """A model far too big for any machine is a clean error at once, and --force keeps the old run.

    Runs under a 3 GiB address-space cap and a 5 s limit: torch failing to allocate (RuntimeError, a
    traceback) or building layers for minutes is the finding, not a slow test.
    """
    h = helpers
    run = h.copy_run(lm_run if task == "lm" else music_run, tmp_path / "run")
    base = h.lm_train_argv(lm_data, run) if task == "lm" else h.music_train_argv(music_data, run)
    argv = [*base, "--max-steps", "2", "--force", flag, value]
    before = h.snapshot(run)
    code, _, err = h.run_cli(argv, timeout=HUGE_TIMEOUT)
    h.assert_clean_failure(code, err, argv)
    h.assert_unchanged(before, run, argv, err)


HUGE_WORK = [
    ("music", ["generate", "--seed-chord", "60", "--steps", str(10**9)]),  # found: generated for hours
    ("music", ["generate", "--seed-chord", "60", "--steps", str(10**7)]),
    ("lm", ["sample", "--length", str(10**9), "--allow-unk", "--temperature", "1"]),
]


@pytest.mark.parametrize(("task", "argv"), HUGE_WORK)
def test_huge_amounts_of_work_end_or_are_refused(helpers, lm_run, music_run, tmp_path, task, argv):
    """A request for a billion steps is refused (or ends, e.g. at <eos>) in seconds, not hours."""
    h = helpers
    argv = [task, argv[0], str(lm_run if task == "lm" else music_run), *argv[1:]]
    if task == "music":
        argv += ["--out", str(tmp_path / "x.mid")]
    code, _, err = h.run_cli(argv, timeout=HUGE_TIMEOUT)
    h.assert_clean_outcome(code, err, argv, usage_ok=False)
