"""Config dataclasses to command-line flags, and JSON/TOML config files to dataclasses.

Each component's options are a dataclass next to the component (``TrainConfig`` in train/config.py, the
LM's in tasks/lm.py). This module, about a hundred lines over ``dataclasses.fields``, turns the fields
into argparse flags (``max_steps`` -> ``--max-steps``, help from ``field(metadata={"help": ...})``),
reads a config file, and builds the dataclass with precedence defaults < file < flags.

Every value is checked in one place, :func:`check_value`, against its field: the type (an int is a fine
float; a bool is neither), finiteness (NaN never passes; infinity only where the field says
``finite=False``), the range (``ge``/``gt``/``le``/``lt``) and the ``choices``. :func:`build` calls it
with where the value came from (``--lr``, or ``configs/x.toml [train]: option 'lr'``), and each config's
``__post_init__`` calls :func:`check_fields`, so a config built in Python is checked too (errors name
the flag).
Every error is one :class:`RnnkitError` line.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import numbers
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from rnnkit.errors import RnnkitError

T = TypeVar("T")

#: the largest seed: ``torch.manual_seed`` wraps negative seeds and refuses 2**64 and above
MAX_SEED = 2**63 - 1

#: the source :func:`build`'s callers give for flags; its errors then name the flag (``--lr``)
COMMAND_LINE = "command line"


def option(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    finite: bool = True,
    choices: tuple | None = None,
    **kwargs: Any,
) -> Any:
    """A dataclass field with the help text its flag shows, and what a value of it must satisfy.

    ``ge``/``gt``: the value must be >= / > this; ``le``/``lt``: <= / < this (``None``: no bound).
    ``finite``: a float must not be infinite (NaN is always refused). ``choices``: the allowed values.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     p: float = option(0.5, "a probability", ge=0, lt=1)
    ...     def __post_init__(self):
    ...         check_fields(self)
    >>> C(1.5)
    Traceback (most recent call last):
    rnnkit.errors.RnnkitError: --p must lie in [0, 1), got 1.5
    """
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    meta = {"help": help, "finite": finite, "choices": choices} | {k: v for k, v in bounds.items() if v is not None}
    return dataclasses.field(default=default, metadata=meta | kwargs)


def add_flags(parser: argparse.ArgumentParser | Any, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """One flag per field; flags not given stay absent from the namespace (default=SUPPRESS)."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        base, _ = _base_type(hints[f.name])
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if base is bool:
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, **kw)
        else:
            choices = f.metadata.get("choices")
            parser.add_argument(flag(f.name), type=base, metavar=f.name.upper(), choices=choices, **kw)


def build(cls: type[T], *layers: tuple[Any, str]) -> T:
    """``cls(**merged)`` where later ``(values, source)`` layers override earlier ones; checks every value.

    ``source`` is :data:`COMMAND_LINE`, and errors name the flag (``--lr must be positive and finite, got
    nan``), or a file and its table, and errors name both and the key (``c.toml [train]: option 'lr' ...``).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    merged: dict[str, Any] = {}
    for values, source in layers:
        if not isinstance(values, dict):
            raise RnnkitError(f"{source}: expected a table of {cls.__name__} options, got {type(values).__name__}")
        for key, value in values.items():
            if key not in fields:
                known = ", ".join(sorted(fields))
                raise RnnkitError(f"{source}: unknown option {key!r} for {cls.__name__}; known: {known}")
            where = flag(key) if source == COMMAND_LINE else f"{source}: option {key!r}"
            merged[key] = check_value(fields[key], hints[key], value, where)
    return cls(**merged)


def check_fields(obj: Any) -> None:
    """Check (and coerce: int -> float) every field of a config dataclass; errors name the flag."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        setattr(obj, f.name, check_value(f, hints[f.name], getattr(obj, f.name), flag(f.name)))


def check_value(f: dataclasses.Field, hint: Any, value: Any, where: str) -> Any:
    """``value`` as field ``f`` (annotated ``hint``) takes it, or a one-line RnnkitError starting with ``where``."""
    base, optional = _base_type(hint)
    if value is None and optional:
        return None
    value = _coerce(value, base, f"{where} must be {base.__name__}{' or null' if optional else ''}, got {_show(value)}")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise RnnkitError(f"{where} must be one of {', '.join(map(str, choices))}, got {_show(value)}")
    if base in (int, float) and not _in_range(value, f.metadata):
        raise RnnkitError(f"{where} must {describe_range(f.metadata, base)}, got {_show(value)}")
    if base is float and math.isfinite(value) and abs(value) > FLOAT32_MAX:  # torch computes in float32
        raise RnnkitError(f"{where} must be at most {FLOAT32_MAX:.3g} in size (float32), got {_show(value)}")
    return value


#: the widest layer an option may ask for: far above any real model, and far below what overflows torch's
#: size arithmetic (a typo like --hidden 2000000000 is refused by name rather than by an allocator trace)
MAX_WIDTH = 2**20

#: the largest float32: a larger finite option would overflow inside torch's kernels
FLOAT32_MAX = 3.4028234663852886e38


def describe_range(meta: typing.Mapping[str, Any], base: type = float) -> str:
    """What a value must satisfy, in words: ``lie in [0, 1)``, ``be positive and finite``, ``be at least 1``."""
    low = ("gt", meta["gt"]) if "gt" in meta else ("ge", meta["ge"]) if "ge" in meta else None
    high = ("lt", meta["lt"]) if "lt" in meta else ("le", meta["le"]) if "le" in meta else None
    if low and high:
        return (
            f"lie in {'(' if low[0] == 'gt' else '['}{_num(low[1])}, {_num(high[1])}{')' if high[0] == 'lt' else ']'}"
        )
    finite = base is float and meta.get("finite", True)
    if low:
        text = "be positive" if low == ("gt", 0) else f"be {'above' if low[0] == 'gt' else 'at least'} {_num(low[1])}"
    elif high:
        text = f"be {'below' if high[0] == 'lt' else 'at most'} {_num(high[1])}"
    else:
        return "be a finite number" if finite else "be a number"
    return text + (" and finite" if finite else "")


def flag(name: str) -> str:
    """The command-line flag of a field: ``max_steps`` -> ``--max-steps``."""
    return "--" + name.replace("_", "-")


def pick(namespace: argparse.Namespace | dict[str, Any], cls: type) -> dict[str, Any]:
    """The values of ``cls``'s fields that were given on the command line."""
    given = vars(namespace) if isinstance(namespace, argparse.Namespace) else namespace
    return {f.name: given[f.name] for f in dataclasses.fields(cls) if f.name in given}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON (``.json``) or TOML (any other suffix) file as a dict; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RnnkitError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RnnkitError(f"{path}: cannot read the config file ({err})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, RecursionError) as err:  # JSON/TOML errors, a 5,000-digit integer, deep nesting
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise RnnkitError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({reason})") from None
    if not isinstance(data, dict):
        raise RnnkitError(f"{path}: a config file holds a table of options, not {type(data).__name__}")
    return data


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(hint: Any) -> tuple[type, bool]:
    """(the non-None type, whether None is allowed) of ``int | None`` and the like."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def _coerce(value: Any, base: type, message: str) -> Any:
    """``value`` as a ``base``: any integer is an int, any real number a float; a bool is neither."""
    if isinstance(value, bool):
        ok = base is bool
    elif base is int:
        ok = isinstance(value, numbers.Integral)
    elif base is float:
        ok = isinstance(value, numbers.Real)
    else:
        ok = isinstance(value, base)
    if not ok:
        raise RnnkitError(message)
    return base(value) if base in (int, float) else value


def _in_range(value: float, meta: typing.Mapping[str, Any]) -> bool:
    if isinstance(value, float) and (math.isnan(value) or (math.isinf(value) and meta.get("finite", True))):
        return False
    return (
        ("ge" not in meta or value >= meta["ge"])
        and ("gt" not in meta or value > meta["gt"])
        and ("le" not in meta or value <= meta["le"])
        and ("lt" not in meta or value < meta["lt"])
    )


def _num(x: float) -> str:
    """A bound as written: ``0.5``, ``1``, ``2**63 - 1``."""
    if isinstance(x, int) and x > 2**32 and (x + 1).bit_count() == 1:
        return f"2**{x.bit_length()} - 1"
    return format(x, "g") if isinstance(x, float) else str(x)


def _show(value: Any) -> str:
    """``repr(value)``, shortened to fit one line (an enormous integer is not printed digit by digit)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"{'a negative' if value < 0 else 'an'} integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
