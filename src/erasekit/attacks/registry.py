"""The attacks by name: each module registers its config dataclass (the paper's defaults), a miniature preset and
its `attack` function here, as the methods do in `methods.registry`.

An attack is `attack(bundle, goal, config, run) -> AttackResult`: `bundle` is the model under attack (an edit
applied), `goal` says what to bring back and how success is seen (`attacks.goal`). It never changes `bundle`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from erasekit.core.registry import Entry, Registry


@dataclass(frozen=True)
class Attack(Entry):
    ends_in: str = "text"  # "text" (hard tokens: prompts.csv), "embedding" (soft tokens: a token edit) or "weights"

    def run(self, bundle, goal, config, run):
        """The attack, timed: its result's `seconds` is the wall time of the search (not of the evaluation)."""
        started = time.perf_counter()
        result = self.fn(bundle, goal, config, run)  # (bundle, goal, config, run) -> AttackResult
        result.seconds = time.perf_counter() - started
        return result


def _load_all() -> None:
    from erasekit.attacks import (  # noqa: F401
        inversion,
        mma,
        p4d,
        paraphrase,
        relearn,
        ringabell,
        seeds,
        unlearndiff,
    )


REGISTRY = Registry("attack", _load_all, Attack)
ATTACKS = REGISTRY.items
get, available = REGISTRY.get, REGISTRY.available
register = REGISTRY.register  # (name, summary, config, paper="", presets=None, ends_in="text"): a decorator
build_config = REGISTRY.config  # (spec, file=None, overrides=(), values=None, preset=None)
