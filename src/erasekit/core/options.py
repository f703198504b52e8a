"""Option dataclasses built from user input: one converter for every `--set KEY=VALUE`, YAML file and keyword,
used by the methods' configs and the world's training config alike.

A numeric option declares its range where it is declared: `ddim_steps: int = at_least(1, 50)`. A config class
derives from `Checked`, which validates when the config is built (as peft's configs do in `__post_init__`): the
declared ranges, then the class's own `check()` for what a range cannot say. `build` refuses unknown keys, values
of the wrong type and numbers that are not finite, each in one line naming the option.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable

from erasekit.core.errors import ErasekitError


def at_least(low, default):
    """A dataclass field whose value must be >= `low`."""
    return dataclasses.field(default=default, metadata={"min": low})


def convert(value, kind, key: str):
    """`value` (a string from the command line, or a YAML scalar/list) as the field type `kind` (`X | None`: None
    for None or "none", else an X)."""
    args = typing.get_args(kind)
    if type(None) in args and len(args) == 2:
        return None if value is None or str(value).lower() == "none" else convert(value, args[0], key)
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ErasekitError(f"option {key}: expected true/false, got {value!r}")
    if kind in (int, "int"):
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ErasekitError(f"option {key}: expected an integer, got {value!r}") from None
    if kind in (float, "float"):
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ErasekitError(f"option {key}: expected a number, got {value!r}") from None
        if not math.isfinite(out):
            raise ErasekitError(f"option {key} is {out}: it must be a finite number")
        return out
    if typing.get_origin(kind) in (tuple, list) or kind in (tuple, list, "tuple", "list"):
        items = value if isinstance(value, (list, tuple)) else [v.strip() for v in str(value).split(",") if v.strip()]
        return tuple(items)
    return value


def parse_overrides(overrides: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` strings (repeatable `--set`) as a dict."""
    given = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ErasekitError(f"--set takes KEY=VALUE, got {item!r}")
        given[key.strip()] = value.strip()
    return given


def check_choice(value: str, valid, what: str) -> None:
    """One error naming the bad option value and the valid ones."""
    if value not in valid:
        raise ErasekitError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def check_ranges(config) -> None:
    """Every field declared with `at_least` holds a value in its range."""
    for f in dataclasses.fields(config):
        low = f.metadata.get("min")
        value = getattr(config, f.name)
        if low is not None and value < low:
            raise ErasekitError(f"option {f.name} must be >= {low}, got {value}")


class Checked:
    """Base of every option dataclass: validated once, when it is made (from the command line or in Python)."""

    def __post_init__(self):
        check_ranges(self)
        self.check()

    def check(self) -> None:
        """What a declared range cannot say (a choice among names, a relation between options)."""


def build(cls: type, given: dict, owner: str, fixed: Iterable[str] = ()):
    """`cls(**given)` with every value converted to its field's type and checked. `owner` names whose options
    these are in messages; `fixed` fields cannot be set this way. Validation is the class's own (`Checked`)."""
    fields = [f.name for f in dataclasses.fields(cls) if f.name not in set(fixed)]
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise ErasekitError(f"unknown option(s) for {owner}: {', '.join(unknown)}; valid: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: convert(v, hints.get(k, str), k) for k, v in given.items()})


def build_options(
    cls: type,
    owner: str,
    preset: dict | None = None,
    file=None,
    overrides: Iterable[str] = (),
    values: dict | None = None,
):
    """A registered config (a method's or an attack's): its defaults, then the architecture's `preset`, then a YAML
    file, then `values`, then `key=value` overrides, each checked as `build` checks them."""
    from pathlib import Path

    given: dict = dict(preset or {})
    if file is not None:
        import yaml

        path = Path(file)
        if not path.is_file():
            raise ErasekitError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ErasekitError(f"corrupt config file {path}: {str(exc).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise ErasekitError(f"config file {path} must hold a mapping of option: value")
        given.update(loaded)
    given.update(values or {})
    given.update(parse_overrides(overrides))
    return build(cls, given, owner)
