"""Config dataclasses to command-line flags, and JSON/TOML config files to dataclasses.

Each component's options are a dataclass next to the component (``TrainConfig`` in train/config.py, the
LM's in tasks/lm.py). This module, about a hundred lines over ``dataclasses.fields``, turns the fields
into argparse flags (``max_steps`` -> ``--max-steps``, help from ``field(metadata={"help": ...})``),
reads a config file, and builds the dataclass with precedence defaults < file < flags. Unknown keys and
values of the wrong type are errors that name the key and the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from rnnkit.errors import RnnkitError

T = TypeVar("T")


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with the help text its flag shows."""
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


def add_flags(parser: argparse.ArgumentParser | Any, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """One flag per field; flags not given stay absent from the namespace (default=SUPPRESS)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        base, _ = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            choices = f.metadata.get("choices")
            parser.add_argument(flag, type=base, metavar=f.name.upper(), choices=choices, **kw)


def build(cls: type[T], *layers: tuple[dict[str, Any], str]) -> T:
    """``cls(**merged)`` where later ``(values, source)`` layers override earlier ones; checks keys and types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    merged: dict[str, Any] = {}
    for values, source in layers:
        for key, value in values.items():
            if key not in names:
                raise RnnkitError(
                    f"{source}: unknown option {key!r} for {cls.__name__}; known: {', '.join(sorted(names))}"
                )
            merged[key] = _coerce(value, hints[key], f"{source}: option {key!r}")
    for f in dataclasses.fields(cls):
        choices = f.metadata.get("choices")
        value = merged.get(f.name, f.default)
        if choices and value not in choices:
            raise RnnkitError(f"option {f.name!r} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return cls(**merged)


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
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise RnnkitError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({err})") from None
    if not isinstance(data, dict):
        raise RnnkitError(f"{path}: a config file holds a table of options, not {type(data).__name__}")
    return data


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def _base_type(hint: Any) -> tuple[type, bool]:
    """(the non-None type, whether None is allowed) of ``int | None`` and the like."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def _coerce(value: Any, hint: Any, where: str) -> Any:
    base, optional = _base_type(hint)
    if value is None and optional:
        return None
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, base) and not (base is int and isinstance(value, bool)):
        return value
    raise RnnkitError(f"{where} must be {base.__name__}{' or null' if optional else ''}, got {value!r}")
