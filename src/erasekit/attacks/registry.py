"""The attacks by name: each module registers its config dataclass (the paper's defaults), a miniature preset and
its `attack` function here, as the methods do in `methods.registry`.

An attack is `attack(bundle, goal, config, run) -> AttackResult`: `bundle` is the model under attack (an edit
applied), `goal` says what to bring back and how success is seen (`attacks.goal`). It never changes `bundle`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from erasekit.core.registry import Registry


@dataclass(frozen=True)
class Attack:
    name: str
    summary: str  # one line, for `erasekit attacks`
    config: type  # dataclass with the paper's defaults
    attack: Callable  # (bundle, goal, config, run) -> AttackResult
    paper: str = ""
    presets: dict = dataclasses.field(default_factory=dict)  # arch -> its defaults over the paper's ("mini": ...)
    ends_in: str = "text"  # "text" (hard tokens: prompts.csv) or "embedding" (soft tokens: a token edit)

    def run(self, bundle, goal, config, run):
        """The attack, timed: its result's `seconds` is the wall time of the search (not of the evaluation)."""
        import time

        started = time.perf_counter()
        result = self.attack(bundle, goal, config, run)
        result.seconds = time.perf_counter() - started
        return result


def register(name: str, summary: str, config: type, paper: str = "", presets: dict | None = None,
             ends_in: str = "text"):
    """Register `attack` under `name`; each preset is validated here, as any user's options would be."""
    def wrap(fn):
        spec = Attack(name, summary, config, fn, paper, dict(presets or {}), ends_in)
        REGISTRY.add(spec)
        return fn
    return wrap


def _load_all() -> None:
    from erasekit.attacks import (  # noqa: F401
        inversion,
        p4d,
        paraphrase,
        ringabell,
        seeds,
        unlearndiff,
    )


REGISTRY = Registry("attack", _load_all)
ATTACKS = REGISTRY.items
get, available = REGISTRY.get, REGISTRY.available
build_config = REGISTRY.config  # (spec, file=None, overrides=(), values=None, arch=None)
