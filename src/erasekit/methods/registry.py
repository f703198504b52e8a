"""The methods by name: each module registers its config dataclass and its `erase` function here.

A method is `erase(bundle, concepts, config, run) -> Edit`; it never changes `bundle`. `build_config` turns a
YAML file and `key=value` overrides into the method's config dataclass, refusing unknown keys and bad values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from erasekit.core.registry import Entry, Registry


@dataclass(frozen=True)
class Method(Entry):
    scorer: Callable | None = None  # config -> the kind of scorer the run needs (eval.judges.SCORERS), or None

    @property
    def erase(self) -> Callable:  # (bundle, concepts, config, run) -> Edit
        return self.fn


def _load_all() -> None:
    from erasekit.methods import (  # noqa: F401  (registration happens on import)
        age,
        ap,
        ca,
        darkminer,
        esd,
        fmn,
        hide,
        mace,
        rece,
        salun,
        sld,
        target,
        uce,
    )


REGISTRY = Registry("method", _load_all, Method)
METHODS = REGISTRY.items
get, available = REGISTRY.get, REGISTRY.available
register = REGISTRY.register  # (name, summary, config, paper="", presets=None, scorer=None): a decorator
build_config = REGISTRY.config  # (spec, file=None, overrides=(), values=None, preset=None)
