"""A registry of named, configurable things (the methods, the attacks): each has a config dataclass with its
paper's defaults and presets per architecture, validated when it registers, as any user's options would be."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from erasekit.core.errors import ErasekitError
from erasekit.core.options import build, build_options


@dataclass(frozen=True)
class Entry:
    """What every registered thing has; a registry's own entry type adds its fields (with defaults)."""

    name: str
    summary: str  # one line, for `erasekit methods` / `erasekit attacks`
    config: type  # dataclass with the paper's defaults
    fn: Callable  # what it does: a method's erase, an attack's attack
    paper: str = ""
    presets: dict = dataclasses.field(default_factory=dict)  # arch -> its defaults over the paper's ("mini": ...)


class Registry:
    def __init__(self, kind: str, load_all: Callable[[], None], entry: type = Entry):
        self.kind, self.items, self._load_all = kind, {}, load_all  # kind: "method", "attack" (in messages)
        self.entry = entry

    def register(self, name: str, summary: str, config: type, paper: str = "", presets: dict | None = None,
                 **fields):
        """A decorator that registers the function under `name`; `fields`: the entry type's own."""
        def wrap(fn):
            self.add(self.entry(name, summary, config, fn, paper, dict(presets or {}), **fields))
            return fn
        return wrap

    def add(self, spec) -> None:
        """`spec` has `name`, `config` and `presets` ({arch: defaults over the paper's})."""
        for arch, preset in spec.presets.items():
            build(spec.config, preset, f"{spec.name} (its {arch} preset)")
        self.items[spec.name] = spec

    def get(self, name: str):
        self._load_all()
        if name not in self.items:
            raise ErasekitError(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self.items))}")
        return self.items[name]

    def available(self) -> list:
        self._load_all()
        return [self.items[k] for k in sorted(self.items)]

    @staticmethod
    def config(spec, file=None, overrides=(), values: dict | None = None, arch: str | None = None):
        """The config: the paper's defaults, the preset for `arch`, a YAML file, `values`, then `key=value`
        overrides."""
        return build_options(spec.config, spec.name, spec.presets.get(arch), file, overrides, values)
