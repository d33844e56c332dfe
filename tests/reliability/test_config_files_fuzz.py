"""Generated config files and corrupted run folders: exit 0 or one clean error line, and nothing lost.

Config files (``--config``): random TOML and JSON documents, from well-formed tables with values of the
wrong type, unknown keys, NaN and huge numbers, to non-tables, deep nesting and undecodable bytes. The size
flags are always given on the command line (flags override the file), so a success trains a tiny model.

Corrupted run folders: a copy of a trained run with one mutation (a file deleted, truncated, bytes flipped,
a JSON file replaced by a random JSON value or edited at a random place, two files swapped, config.json
from the other task's run, a file from the other run, a foreign file, a file made a folder or a link),
then one command on it: eval, sample/generate, score, ``train --resume`` or ``train --force``. Each ends
in success or a clean failure; a reading command never changes the run; a failed training command (one
that failed before its training line) leaves every file byte for byte as it was; and a file rnnkit did
not write is never deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnkit.tasks import lm_run, music_run, registry
from rnnkit.train.run_folder import RUN_FILES, task_files

TIMEOUT = 20
STARTED = " process(es) -> "

# -- config documents -----------------------------------------------------------------------------------------

SECTIONS = {"lm": lm_run.SPEC.sections, "music": music_run.SPEC.sections}
FIELDS = sorted({f.name for spec in SECTIONS.values() for cls in spec.values() for f in dataclasses.fields(cls)})
CHOICES = ["char", "word", "lstm", "gru", "scrn", "adam", "sgd", "adamw", "strict", "replace", "uniform", "orthogonal"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 64),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2, 2),
    st.text(max_size=8),
    st.sampled_from(CHOICES),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
tables = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), json_values, max_size=5)
documents = st.dictionaries(
    st.one_of(st.sampled_from(["data", "model", "train", "task", "rnnkit"]), st.text(max_size=6)),
    st.one_of(tables, tables, json_values),
    max_size=4,
)
RAW_FILES = {  # by name, so that a falsifying example prints short
    "empty": b"",
    "undecodable": b"\xff\xfe\x00garbage",
    "bom": b"\xef\xbb\xbf{}",
    "deep-json": b"[" * 100000 + b"]" * 100000,
    "deep-toml": b"x = " + b"[" * 100000 + b"]" * 100000,
    "json-1e999": b'{"train": {"lr": 1e999}}',
    "json-nan": b'{"train": {"lr": NaN, "clip_norm": -Infinity}}',
    "json-duplicate": b'{"train": {"epochs": 1}, "train": {"epochs": "x"}}',
    "toml-duplicate": b"[train]\nlr = nan\n[train]\nepochs = 2\n",
    "toml-huge-int": b"[model]\nhidden = 99999999999999999999999\n",
    "toml-subtable": b"[model.cell]\nx = 1\n",
    "toml-4000-digits": b"[train]\nseed = " + b"9" * 4000 + b"\n",
    "string": b'"just a string"',
    "null": b"null",
    "list": b"[1, 2]",
}


class Unrepresentable(Exception):
    pass


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\' or not ch.isprintable() or 0xD800 <= ord(ch) <= 0xDFFF:
            if 0xD800 <= ord(ch) <= 0xDFFF:
                raise Unrepresentable("a lone surrogate")
            out.append(f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value) -> str:
    if value is None:
        raise Unrepresentable("TOML has no null")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(document: dict) -> str:
    """A TOML text of ``document`` (None values are left out: TOML has no null)."""
    lines = []
    for key, value in document.items():
        if not isinstance(value, dict):
            with contextlib.suppress(Unrepresentable):
                lines.append(f"{toml_string(key)} = {toml_value(value)}")
    for key, value in document.items():
        if isinstance(value, dict):
            lines.append(f"[{toml_string(key)}]")
            for k, v in value.items():
                with contextlib.suppress(Unrepresentable):
                    lines.append(f"{toml_string(k)} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


config_files = st.one_of(
    st.tuples(st.just("toml"), documents.map(lambda d: to_toml(d).encode("utf-8", "surrogatepass"))),
    st.tuples(st.just("json"), documents.map(lambda d: json.dumps(d).encode())),
    st.tuples(st.just("json"), json_values.map(lambda v: json.dumps(v).encode())),
    st.tuples(st.sampled_from(["toml", "json"]), st.sampled_from(sorted(RAW_FILES))),
    st.tuples(st.sampled_from(["toml", "json"]), st.binary(max_size=40)),
)

SIZE_FLAGS = {"lm": ["--hidden", "8", "--layers", "1", "--embed", "8"], "music": ["--hidden", "12", "--layers", "1"]}


@given(task=st.sampled_from(["lm", "music"]), file=config_files, print_config=st.booleans())
def test_config_files(helpers, lm_data, music_data, scratch, task, file, print_config):
    h = helpers
    work = scratch()
    suffix, content = file
    config = work / f"config.{suffix}"
    config.write_bytes(RAW_FILES[content] if isinstance(content, str) else content)
    out = work / "run"
    base = h.lm_train_argv(lm_data, out) if task == "lm" else h.music_train_argv(music_data, out)
    argv = [*base, "--config", str(config), *SIZE_FLAGS[task], "--max-steps", "2", "--epochs", "2"]
    argv += ["--print-config"] if print_config else []
    code, _, err = h.run_cli(argv, timeout=TIMEOUT)
    line = h.assert_clean_outcome(code, err, argv, usage_ok=False)
    assert not h.staging_leftovers(out)
    if print_config or (code != 0 and STARTED not in err):
        assert not out.exists(), f"{argv}: left {out} ({line})"
    else:
        registry.load_run(out, weights="last")


# -- corrupted run folders ------------------------------------------------------------------------------------


class _Delete:
    def __repr__(self) -> str:  # as a falsifying example shows it
        return "DELETE"


DELETE = _Delete()
indices = st.integers(0, 10**6)
file_names = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=10)

mutations = st.one_of(
    st.tuples(st.just("delete"), indices),
    st.tuples(st.just("truncate"), indices, st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("flip"), indices, st.lists(st.tuples(indices, st.integers(1, 255)), min_size=1, max_size=4)),
    st.tuples(st.just("json-value"), st.sampled_from(["config.json", "vocab.json", "trainer.json"]), json_values),
    st.tuples(
        st.just("json-edit"),
        st.sampled_from(["config.json", "vocab.json", "trainer.json", "metrics.jsonl"]),
        st.lists(indices, min_size=1, max_size=4),
        st.one_of(st.just(DELETE), json_values),
    ),
    st.tuples(st.just("swap"), indices, indices),
    st.tuples(st.just("other-task-config")),
    st.tuples(st.just("other-run-file"), indices),
    st.tuples(st.just("foreign"), st.sampled_from(["", "checkpoint"]), file_names),
    st.tuples(st.just("file-to-folder"), indices),
    st.tuples(st.just("symlink"), indices, st.sampled_from(["/dev/null", "missing-target", "config.json"])),
)


def run_files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and p.name != ".lock")


def json_path(name: str) -> str:
    return "checkpoint/trainer.json" if name == "trainer.json" else name


def edit(document, path: list[int], value):
    """``document`` with the value at a path of indices (taken modulo each level's size) replaced or deleted."""
    if not path or not isinstance(document, dict | list) or not document:
        return document if value is DELETE else value
    keys = list(document) if isinstance(document, dict) else list(range(len(document)))
    key = keys[path[0] % len(keys)]
    if len(path) == 1 or not isinstance(document[key], dict | list) or not document[key]:
        if value is DELETE:
            del document[key]
        else:
            document[key] = value
    else:
        document[key] = edit(document[key], path[1:], value)
    return document


def mutate(run: Path, other: Path, mutation: tuple) -> str | None:
    """Apply ``mutation`` to the run folder ``run``; returns the name of a foreign file it added, if any."""
    kind, *args = mutation
    files = run_files(run)
    pick = lambda i: run / files[i % len(files)]  # noqa: E731
    if kind == "delete":
        pick(args[0]).unlink()
    elif kind == "truncate":
        path = pick(args[0])
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * args[1])])
    elif kind == "flip":
        path = pick(args[0])
        data = bytearray(path.read_bytes())
        for offset, mask in args[1]:
            if data:
                data[offset % len(data)] ^= mask
        path.write_bytes(bytes(data))
    elif kind == "json-value":
        path = run / json_path(args[0])
        path.write_text(json.dumps(args[1]), encoding="utf-8")
    elif kind == "json-edit":
        path = run / json_path(args[0])
        if not path.exists():
            return None
        if path.suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            if lines:
                i = args[1][0] % len(lines)
                if args[2] is DELETE and len(args[1]) == 1:
                    del lines[i]
                else:
                    lines[i] = json.dumps(edit(json.loads(lines[i]), args[1][1:], args[2]))
                path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        else:
            path.write_text(json.dumps(edit(json.loads(path.read_text()), args[1], args[2]), indent=2) + "\n")
    elif kind == "swap":
        a, b = pick(args[0]), pick(args[1])
        data_a, data_b = a.read_bytes(), b.read_bytes()
        a.write_bytes(data_b)
        b.write_bytes(data_a)
    elif kind == "other-task-config":
        shutil.copyfile(other / "config.json", run / "config.json")
    elif kind == "other-run-file":
        theirs = run_files(other)
        name = theirs[args[0] % len(theirs)]
        (run / name).parent.mkdir(exist_ok=True)
        shutil.copyfile(other / name, run / name)
    elif kind == "foreign":
        folder, name = args
        if name in (".", "..") or name.endswith(".tmp") or (not folder and name in RUN_FILES | task_files(run)):
            return None  # rnnkit's own names
        path = run / folder / name
        if path.exists():
            return None
        path.write_bytes(b"the user's own file\n")
        return str(Path(folder) / name)
    elif kind == "file-to-folder":
        path = pick(args[0])
        path.unlink()
        path.mkdir()
        (path / "inside").write_text("x")
    elif kind == "symlink":
        path = pick(args[0])
        path.unlink()
        os.symlink(args[1], path)
    return None


def commands(task: str, run: Path, data, work: Path) -> dict[str, list[str]]:
    if task == "lm":
        return {
            "eval": ["lm", "eval", str(run), "--data", str(data.valid)],
            "sample": ["lm", "sample", str(run), "--length", "5"],
            "score": ["lm", "score", str(run), "abc", "fg"],
            "resume": ["lm", "train", "--out", str(run), "--resume", "--max-steps", "16", "--no-progress"],
        }
    return {
        "eval": ["music", "eval", str(run), "--data", str(data.valid)],
        "sample": ["music", "generate", str(run), "--seed-chord", "60,64", "--steps", "3", "--out", f"{work}/x.mid"],
        "resume": ["music", "train", "--out", str(run), "--resume", "--max-steps", "12", "--no-progress"],
    }


VERBS = st.sampled_from(["eval", "sample", "score", "resume", "force", "resume", "force"])


@given(task=st.sampled_from(["lm", "music"]), mutation=mutations, verb=VERBS)
def test_corrupted_run_folders(helpers, lm_run, music_run, lm_data, music_data, scratch, task, mutation, verb):
    h = helpers
    work = scratch()
    source, other, data = (lm_run, music_run, lm_data) if task == "lm" else (music_run, lm_run, music_data)
    run = h.copy_run(source, work / "run")
    foreign = mutate(run, other, mutation)
    foreign_bytes = (run / foreign).read_bytes() if foreign else None
    verbs = commands(task, run, data, work)
    if verb == "force":
        base = h.lm_train_argv if task == "lm" else h.music_train_argv
        argv = base(data, run, "--max-steps", "2", "--force")
    else:
        argv = verbs.get(verb, verbs["eval"])
    before = h.snapshot(run)
    code, _, err = h.run_cli(argv, timeout=TIMEOUT)
    line = h.assert_clean_outcome(code, err, argv, usage_ok=False)
    assert not h.staging_leftovers(run), h.staging_leftovers(run)
    # rnnkit deletes only what it wrote; checkpoint/ is replaced as a whole by design when a training
    # command succeeds (what --force does to a file in it is test_force_never_deletes_a_foreign_file's)
    nested_and_replaced = foreign is not None and "/" in foreign and verb in ("resume", "force") and code == 0
    if foreign is not None and not nested_and_replaced:
        assert (run / foreign).is_file() and (run / foreign).read_bytes() == foreign_bytes, (
            f"{argv} (exit {code}) deleted or changed the user's file {foreign}"
        )
    if verb not in ("resume", "force") or (code != 0 and STARTED not in err):
        h.assert_unchanged(before, run, argv, err)
    elif code == 0:
        registry.load_run(run, weights="last")
    else:
        try:
            registry.load_run(run, weights="last")
        except Exception as error:
            message = f"{argv} failed while training ({line}) and left a run that does not load: {error}"
            raise AssertionError(message) from None


@pytest.mark.parametrize("where", ["", "checkpoint"])
def test_force_never_deletes_a_foreign_file(helpers, lm_run, lm_data, tmp_path, where):
    """``--force`` replaces only a folder of rnnkit's own files: a user's file, at the top or inside
    ``checkpoint/``, is named and kept."""
    h = helpers
    run = h.copy_run(lm_run, tmp_path / "run")
    (run / where / "notes.txt").write_text("mine\n")
    before = h.snapshot(run)
    argv = h.lm_train_argv(lm_data, run, "--max-steps", "2", "--force")
    code, _, err = h.run_cli(argv)
    assert (run / where / "notes.txt").read_text() == "mine\n", f"--force deleted {where}/notes.txt (exit {code})"
    h.assert_clean_failure(code, err, argv)
    h.assert_unchanged(before, run, argv, err)
