"""A registry of named, configurable things (the methods, the attacks): each has a config dataclass with its
paper's defaults and presets per model (the miniature's, a family's), validated when it registers, as any user's
options would be."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from erasekit.core.errors import ErasekitError
from erasekit.core.options import build, build_options

FAMILIES = ("sd1", "sd2", "sdxl", "sd3", "flux")  # the model families (models/families), in one place


@dataclass(frozen=True)
class Entry:
    """What every registered thing has; a registry's own entry type adds its fields (with defaults)."""

    name: str
    summary: str  # one line, for `erasekit methods` / `erasekit attacks`
    config: type  # dataclass with the paper's defaults
    fn: Callable  # what it does: a method's erase, an attack's attack
    paper: str = ""
    presets: dict = dataclasses.field(default_factory=dict)  # preset key -> defaults over the paper's ("mini": ...)
    families: tuple = FAMILIES  # the model families where its math applies
    why: str = ""  # why not the others, where it leaves some out

    def check_family(self, family: str) -> None:
        """Refuse, before any work, a model of a family this entry does not declare."""
        if family not in self.families:
            why = f" ({self.why})" if self.why else ""
            raise ErasekitError(
                f"{self.name} does not run on {family} models; it runs on {', '.join(self.families)}{why}"
            )


class Registry:
    def __init__(self, kind: str, load_all: Callable[[], None], entry: type = Entry):
        self.kind, self._load_all = kind, load_all  # kind: "method", "attack" (in messages)
        self.items: dict[str, Entry] = {}
        self.entry = entry

    def register(
        self,
        name: str,
        summary: str,
        config: type,
        paper: str = "",
        presets: dict | None = None,
        families: tuple = FAMILIES,
        why: str = "",
        **fields,
    ):
        """A decorator that registers the function under `name`; `families`: where it runs (`why` not elsewhere);
        `fields`: the entry type's own."""

        def wrap(fn):
            self.add(self.entry(name, summary, config, fn, paper, dict(presets or {}), tuple(families), why, **fields))
            return fn

        return wrap

    def available_for(self, family: str | None = None) -> list:
        """Every entry, or those that run on `family`."""
        return [s for s in self.available() if family is None or family in s.families]

    def add(self, spec) -> None:
        """`spec` has `name`, `config` and `presets` ({preset key: defaults over the paper's})."""
        unknown = [f for f in spec.families if f not in FAMILIES]
        if unknown or not spec.families:
            raise ErasekitError(
                f"{spec.name}: unknown families {unknown or spec.families}; valid: {', '.join(FAMILIES)}"
            )
        for key, preset in spec.presets.items():
            build(spec.config, preset, f"{spec.name} (its {key} preset)")
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
    def config(spec, file=None, overrides=(), values: dict | None = None, preset: str | None = None):
        """The config: the paper's defaults, the preset for the model (`Bundle.preset`: "mini", "tiny" or its
        family), a YAML file, `values`, then `key=value` overrides."""
        return build_options(spec.config, spec.name, spec.presets.get(preset), file, overrides, values)
