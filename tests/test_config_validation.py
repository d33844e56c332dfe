"""Every number is checked where it enters: flags, config files, config.json and Python construction alike.

The checks live in one place (the config dataclasses' field metadata, rnnkit.config.check_value): type,
finiteness and range. A bad value is one line naming the flag, or the file, table and key; a setting that
cannot fit in memory is refused before anything is allocated (rnnkit.resources).
"""

import dataclasses
import math
import random
import re
import typing
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnkit.cli
from rnnkit import resources
from rnnkit.compat import make_layer
from rnnkit.config import MAX_SEED, build, flag
from rnnkit.diagnose import ProbeConfig, cell_gradient_flow, flow_bytes, lm_gradient_flow
from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm import LanguageModel, LMConfig
from rnnkit.tasks.music import MusicConfig, MusicModel
from rnnkit.tasks.sampling import check_sampling
from rnnkit.train.config import TrainConfig

TINY = ["--hidden", "8", "--layers", "1", "--batch-size", "4", "--bptt", "5", "--no-progress", "--max-steps", "2"]


@pytest.fixture(autouse=True)
def _restore_formatwarning(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it


def write_corpus(path: Path, n: int = 244, seed: int = 1) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(rng.choice("abcde fg\n") for _ in range(n)), encoding="utf-8")
    return path


def refused(capsys, argv: list[str]) -> str:
    """Run the command; it must exit 2 with one ``rnnkit: error:`` line last and no traceback."""
    assert rnnkit.cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]
    assert last.startswith("rnnkit: error: ") and "Traceback" not in err, err
    return last


def lm_train(tmp: Path, *extra: str) -> list[str]:
    train = write_corpus(tmp / "t.txt")
    return ["lm", "train", "--train", str(train), "--level", "char", "--out", str(tmp / "run"), *TINY, *extra]


def kind_of(cls: type, name: str) -> tuple[type, bool]:
    """(int or float, whether None is allowed) of a numeric field."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return (args[0], True) if args else (hint, False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny char-level LM run folder (about a second)."""
    tmp = tmp_path_factory.mktemp("validation")
    assert rnnkit.cli.main(lm_train(tmp)) == 0
    return tmp / "run"


# -- flags ------------------------------------------------------------------------------------------------------

BAD_FLAGS = [
    (["--lr", "nan"], "--lr must lie in (0, 1e+06], got nan"),
    (["--lr", "inf"], "--lr must lie in (0, 1e+06], got inf"),
    (["--lr", "-1"], "--lr must lie in (0, 1e+06], got -1.0"),
    (["--clip-norm", "nan"], "--clip-norm must be positive and finite, got nan"),
    (["--clip-value", "nan"], "--clip-value must be positive and finite, got nan"),
    (["--lr-decay", "-1"], "--lr-decay must lie in (0, 1], got -1.0"),
    (["--max-minutes", "-1"], "--max-minutes must be positive and finite, got -1.0"),
    (["--early-stop", "0"], "--early-stop must be at least 1, got 0"),
    (["--init-range", "-1"], "--init-range must be positive and finite, got -1.0"),
    (["--momentum", "1.5"], "--momentum must lie in [0, 1), got 1.5"),
    (["--seed", "-1"], "--seed must lie in [0, 2**63 - 1], got -1"),
    (["--weight-decay", "inf"], "--weight-decay must be at least 0 and finite, got inf"),
    (["--plateau-factor", "1"], "--plateau-factor must lie in (0, 1), got 1.0"),
    (["--dropout", "nan"], "--dropout must lie in [0, 1), got nan"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_numbers_on_the_command_line_are_one_line_naming_the_flag(tmp_path, capsys, flags, message):
    assert refused(capsys, lm_train(tmp_path, *flags)) == f"rnnkit: error: {message}"
    assert not (tmp_path / "run").exists()


def test_music_flags_are_checked_alike(tmp_path, capsys):
    base = ["music", "train", "--train", str(tmp_path / "none.json"), "--out", str(tmp_path / "run")]
    assert refused(capsys, [*base, "--weight-drop", "nan"]).endswith("--weight-drop must lie in [0, 1), got nan")
    assert refused(capsys, [*base, "--max-minutes", "0"]).endswith("--max-minutes must be positive and finite, got 0.0")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--radius", "nan"], "--radius must be positive and finite, got nan"),
        (["--seed", "-1"], "--seed must lie in [0, 2**63 - 1], got -1"),
        (["--batch", "0"], "--batch must be at least 1, got 0"),
    ],
)
def test_diagnose_flags_are_checked_alike(tmp_path, capsys, flags, message):
    argv = ["diagnose", "--cell", "rnn", *flags, "--out", str(tmp_path / "f.png")]
    assert refused(capsys, argv) == f"rnnkit: error: {message}"


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_the_python_api_raises_the_same_line(flags, message):
    name, text = flags[0][2:].replace("-", "_"), flags[1]
    cls = LMConfig if name in {f.name for f in dataclasses.fields(LMConfig)} else TrainConfig
    value = int(text) if kind_of(cls, name)[0] is int else float(text)
    with pytest.raises(RnnkitError, match=f"^{re.escape(message)}$"):
        cls(**{name: value})


def test_types_are_checked_in_python_too():
    with pytest.raises(RnnkitError, match=r"^--lr must be float, got True$"):
        TrainConfig(lr=True)
    with pytest.raises(RnnkitError, match=r"^--epochs must be int, got 2\.5$"):
        TrainConfig(epochs=2.5)
    with pytest.raises(RnnkitError, match=r"^--hidden must be int, got '8'$"):
        LMConfig(hidden="8")
    with pytest.raises(RnnkitError, match=r"^--init must be one of uniform, .*, got 'he'$"):
        LMConfig(init="he")
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)  # an int is a fine float
    with pytest.raises(
        RnnkitError, match=r"^--seed must lie in \[0, 2\*\*63 - 1\], got an integer of about 61 digits$"
    ):
        TrainConfig(seed=10**60)  # the message stays one short line


def test_other_configs_check_their_numbers():
    with pytest.raises(RnnkitError, match=r"^--weight-drop must lie in \[0, 1\), got nan$"):
        MusicConfig(weight_drop=math.nan)
    with pytest.raises(RnnkitError, match=r"^--hidden must lie in \[1, 1048576\], got 0$"):
        MusicConfig(hidden=0)
    with pytest.raises(RnnkitError, match=r"^--radius must be positive and finite, got inf$"):
        ProbeConfig(radius=math.inf)
    with pytest.raises(RnnkitError, match=r"^--steps must be at least 1, got 0$"):
        ProbeConfig(steps=0)


# -- config files -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("table.toml", "model = 5\n", "[model] must be a table of options, got int"),
        ("nan.toml", '[data]\nlevel = "char"\n[train]\nlr = nan\n', "[train]: option 'lr' must lie in (0, 1e+06]"),
        ("inf.toml", '[data]\nlevel = "char"\n[model]\ninit_range = -inf\n', "[model]: option 'init_range' must be"),
        (
            "str.json",
            '{"data": {"level": "char"}, "train": {"lr": "x"}}',
            "[train]: option 'lr' must be float, got 'x'",
        ),
    ],
)
def test_bad_config_files_name_the_file_table_and_key(tmp_path, capsys, name, text, message):
    config = tmp_path / name
    config.write_text(text)
    line = refused(capsys, ["lm", "train", "--out", str(tmp_path / "run"), "--config", str(config)])
    assert line.startswith(f"rnnkit: error: {config}") and message in line


def test_build_refuses_a_section_that_is_not_a_table():
    with pytest.raises(
        RnnkitError, match=r"^run/config\.json \[model\]: expected a table of LMConfig options, got int$"
    ):
        build(LMConfig, (5, "run/config.json [model]"))
    with pytest.raises(
        RnnkitError, match=r"^run/config\.json \[train\]: option 'lr' must lie in \(0, 1e\+06\], got nan"
    ):
        build(TrainConfig, ({"lr": math.nan}, "run/config.json [train]"))


# -- sampling ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [math.nan, math.inf, -0.5])
def test_sampling_temperature_must_be_finite_and_not_negative(temperature):
    with pytest.raises(RnnkitError, match=r"^--temperature must be >= 0 and finite \(0 is greedy\)"):
        check_sampling(temperature, None, None)
    with pytest.raises(RnnkitError, match=r"^--top-p must lie in \(0, 1\], got nan$"):
        check_sampling(1.0, None, math.nan)


def test_sampling_nan_on_the_command_line(trained, capsys):
    line = refused(capsys, ["lm", "sample", str(trained), "--temperature", "nan"])
    assert line == "rnnkit: error: --temperature must be >= 0 and finite (0 is greedy), got nan"


# -- memory -----------------------------------------------------------------------------------------------------


@pytest.fixture
def small_machine(monkeypatch):
    """A machine with 100 MB available, whatever this one has."""
    monkeypatch.setattr(resources, "available_memory", lambda: 100 * 10**6)


def test_available_memory_is_read_and_capped_by_ulimit_v(monkeypatch):
    available = resources.available_memory()
    assert available is None or available > 0
    import resource

    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("no /proc/self/status")
    mapped = next(int(line.split()[1]) * 1024 for line in status.read_text().splitlines() if line.startswith("VmSize:"))
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (mapped + 10**9, resource.RLIM_INFINITY))
    assert 0.9e9 < resources.available_memory() <= 1e9  # what the address-space limit leaves


def test_parameters_are_counted_without_allocating():
    for cell in ("rnn", "gru", "lstm", "scrn", "mingru", "clockwork", "jordan"):
        counted = resources.recurrent_params(cell, 5, 8, layers=2)
        first = make_layer(cell, 5, 8)
        second = make_layer(cell, first.output_size, 8)
        assert counted == sum(p.numel() for m in (first, second) for p in m.parameters()), cell
    assert resources.recurrent_params("lstm", 200_000, 200_000, layers=2) == 2 * 4 * 200_000 * (2 * 200_000 + 2)
    config = LMConfig(hidden=16, layers=1)
    assert resources.count_params(lambda: LanguageModel(50, config)) == sum(
        p.numel() for p in LanguageModel(50, config).parameters()
    )


@pytest.mark.parametrize("cell", ["lstm", "scrn", "mingru"])
def test_configs_count_their_models_parameters(cell):
    for config in (LMConfig(cell=cell, hidden=8, layers=3, embed=5), LMConfig(cell=cell, hidden=8, tie_weights=True)):
        if cell == "scrn" and config.tie_weights:
            continue  # an SCRN's output is wider than its embedding: it cannot tie
        assert config.params(30) == sum(p.numel() for p in LanguageModel(30, config).parameters())
    music = MusicConfig(cell=cell, hidden=8, layers=3)
    assert music.params() == sum(p.numel() for p in MusicModel(music).parameters())
    assert LMConfig(cell=cell, hidden=8, layers=1000).params(30) > 1000 * 8 * 8  # counted at once, not layer by layer


def test_a_model_that_cannot_fit_is_refused_in_one_line(small_machine):
    params = resources.count_params(lambda: MusicModel(MusicConfig(hidden=200_000, layers=2)))  # allocates nothing
    assert params == 4 * 200_000 * (88 + 200_000 + 2) + 4 * 200_000 * (2 * 200_000 + 2) + 88 * (200_000 + 1)
    with pytest.raises(RnnkitError) as info:
        resources.check_model_memory(params, what="a 2-layer lstm of hidden 200000", flag_hint="lower --hidden")
    assert str(info.value) == (
        f"a 2-layer lstm of hidden 200000 ({params:,} parameters) needs about 7.7 TB for its weights, gradients "
        "and optimizer state; this machine has 100 MB available: lower --hidden"
    )
    resources.check_model_memory(1000, what="a tiny model", flag_hint="unused")  # fits


def test_an_unknown_amount_of_memory_never_refuses(monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda: None)
    resources.check_memory(10**18, "anything", "unused")


def test_diagnose_refuses_what_cannot_fit(small_machine, tmp_path, capsys):
    argv = ["diagnose", "--cell", "rnn", "lstm", "--steps", "100000", "--out", str(tmp_path / "f.png")]
    line = refused(capsys, argv)
    assert line.startswith("rnnkit: error: diagnosing rnn over 100000 steps (batch 8, hidden 64, 1 layer(s)) needs")
    assert line.endswith("this machine has 100 MB available: lower --steps, --batch or --hidden")
    assert not (tmp_path / "f.png").exists()
    with pytest.raises(RnnkitError, match="lower --steps, --batch or --hidden"):
        cell_gradient_flow("lstm", hidden=200_000, steps=2)  # refused before the 3 TB of weights


def test_diagnose_of_a_run_refuses_too_many_steps(small_machine):
    model = LanguageModel(20, LMConfig(hidden=64, layers=1))
    with pytest.raises(RnnkitError, match=r"^diagnosing m over 200000 steps needs about .*: lower --steps$"):
        lm_gradient_flow(model, torch.zeros(200_001, dtype=torch.long), name="m")


def test_the_diagnose_estimate_matches_a_measured_peak():
    # measured (rnnkit/diagnose.py FLOW_VALUES): an LSTM at T = 2000, B = 32, H = 256, 2 layers peaked at 4.0 GB
    estimate = flow_bytes("lstm", 2000, 32, 256, 2, resources.recurrent_params("lstm", 16, 256, 2))
    assert 4.0e9 * 0.7 < estimate < 4.0e9 * 2


# -- every numeric field, generated values ------------------------------------------------------------------------

NUMERIC = [
    (cls, f)
    for cls in (TrainConfig, LMConfig, MusicConfig, ProbeConfig)
    for f in dataclasses.fields(cls)
    if kind_of(cls, f.name)[0] in (int, float)
]

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 0.0, 0.5, 1.0, 1e-300, 1e308, MAX_SEED, MAX_SEED + 1, True, None]),
)


def in_declared_range(value, meta) -> bool:
    if isinstance(value, float) and (value != value or (abs(value) == math.inf and meta.get("finite", True))):
        return False
    low_ok = value > meta["gt"] if "gt" in meta else value >= meta.get("ge", -math.inf)
    high_ok = value < meta["lt"] if "lt" in meta else value <= meta.get("le", math.inf)
    return low_ok and high_ok


@pytest.mark.parametrize(("cls", "field"), NUMERIC, ids=[f"{c.__name__}.{f.name}" for c, f in NUMERIC])
@settings(max_examples=60, deadline=None)
@given(value=VALUES)
def test_every_numeric_field_takes_a_value_in_range_or_names_itself(cls, field, value):
    kind, optional = kind_of(cls, field.name)
    for build_it, name in [
        (lambda: cls(**{field.name: value}), flag(field.name)),
        (lambda: build(cls, ({field.name: value}, "f.toml [s]")), f"f.toml [s]: option {field.name!r}"),
    ]:
        try:
            got = getattr(build_it(), field.name)
        except RnnkitError as err:
            assert str(err).startswith(name + " must ") and "\n" not in str(err)
            continue
        if value is None:
            assert optional and got is None
        else:
            assert type(got) is kind and not isinstance(value, bool) and got == kind(value)
            assert in_declared_range(got, field.metadata)
