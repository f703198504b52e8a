"""The methods by name: each module registers its config dataclass and its `erase` function here.

A method is `erase(bundle, concepts, config, run) -> Edit`; it never changes `bundle`. `build_config` turns a
YAML file and `key=value` overrides into the method's config dataclass, refusing unknown keys and bad values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from erasekit.core.registry import Registry


@dataclass(frozen=True)
class Method:
    name: str
    summary: str  # one line, for `erasekit methods`
    config: type  # dataclass with the paper's defaults
    erase: Callable  # (bundle, concepts, config, run) -> Edit
    paper: str = ""
    presets: dict = dataclasses.field(default_factory=dict)  # arch -> its defaults over the paper's ("mini": ...)
    scorer: Callable | None = None  # config -> the kind of scorer the run needs (eval.judges.SCORERS), or None


def register(name: str, summary: str, config: type, paper: str = "", presets: dict | None = None,
             scorer: Callable | None = None):
    """Register `erase` under `name`. Each preset is validated here, as any user's options would be."""
    def wrap(fn):
        method = Method(name, summary, config, fn, paper, dict(presets or {}), scorer)
        REGISTRY.add(method)
        return fn
    return wrap


def _load_all() -> None:
    from erasekit.methods import age, ap, ca, esd, target, uce  # noqa: F401  (registration happens on import)


REGISTRY = Registry("method", _load_all)
METHODS = REGISTRY.items
get, available = REGISTRY.get, REGISTRY.available
build_config = REGISTRY.config  # (spec, file=None, overrides=(), values=None, arch=None)
