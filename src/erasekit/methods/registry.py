"""The methods by name: each module registers its config dataclass and its `erase` function here.

A method is `erase(bundle, concepts, config, run) -> Edit`; it never changes `bundle`. `build_config` turns a
YAML file and `key=value` overrides into the method's config dataclass, refusing unknown keys and bad values.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from erasekit.core.errors import ErasekitError

METHODS: dict[str, "Method"] = {}


@dataclass(frozen=True)
class Method:
    name: str
    summary: str  # one line, for `erasekit methods`
    config: type  # dataclass with the paper's defaults
    erase: Callable  # (bundle, concepts, config, run) -> Edit
    paper: str = ""
    mini: dict = dataclasses.field(default_factory=dict)  # the miniature's defaults, over the paper's




def register(name: str, summary: str, config: type, paper: str = "", mini: dict | None = None):
    def wrap(fn):
        METHODS[name] = Method(name, summary, config, fn, paper, dict(mini or {}))
        return fn
    return wrap


def _load_all() -> None:
    from erasekit.methods import age, ap, ca, esd, target, uce  # noqa: F401  (registration happens on import)


def get(name: str) -> Method:
    _load_all()
    if name not in METHODS:
        raise ErasekitError(f"unknown method {name!r}; valid: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def available() -> list[Method]:
    _load_all()
    return [METHODS[k] for k in sorted(METHODS)]


def _convert(value, kind, key: str):
    origin = typing.get_origin(kind)
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ErasekitError(f"config {key}: expected true/false, got {value!r}")
    if kind in (int, "int"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ErasekitError(f"config {key}: expected an integer, got {value!r}") from None
    if kind in (float, "float"):
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ErasekitError(f"config {key}: expected a number, got {value!r}") from None
        return out
    if origin in (tuple, list) or kind in (tuple, list):
        items = value if isinstance(value, (list, tuple)) else [v.strip() for v in str(value).split(",") if v.strip()]
        return tuple(items)
    return value


def build_config(method: Method, file: str | Path | None = None, overrides: typing.Iterable[str] = (),
                 values: dict | None = None, arch: str | None = None):
    """The method's config: the paper's defaults (the miniature's when `arch` is "mini"), then a YAML file,
    then `values`, then `key=value` overrides."""
    given: dict = dict(method.mini) if arch == "mini" else {}
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
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ErasekitError(f"--set takes KEY=VALUE, got {item!r}")
        given[key.strip()] = value.strip()
    fields = {f.name: f for f in dataclasses.fields(method.config)}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise ErasekitError(f"unknown option(s) for {method.name}: {', '.join(unknown)}; valid: {', '.join(fields)}")
    hints = typing.get_type_hints(method.config)
    config = method.config(**{k: _convert(v, hints.get(k, str), k) for k, v in given.items()})
    for key, value in dataclasses.asdict(config).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ErasekitError(f"config {key} of {method.name} is {value}: it must be a finite number")
    check = getattr(config, "check", None)
    if check is not None:
        check()
    return config
