"""Seeds: no optimisation. The original prompts with many seeds: an erasure that holds on eight seeds may not on
sixty-four. ASR over images is then the erased model's plain rate measured on more images; the rate of prompts with
at least one image of the concept is the best-of-`tries` attack that any user with a for loop can run. The floor,
with paraphrases, that every optimised attack must beat."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from erasekit.attacks.goal import AdversarialPrompt, AttackResult, Goal
from erasekit.attacks.registry import register
from erasekit.core.loop import Run
from erasekit.core.options import Checked, at_least
from erasekit.models.bundle import Bundle


@dataclass
class SeedsConfig(Checked):
    tries: int = at_least(1, 64)  # seeds per prompt
    offset: int = at_least(0, 10_000)  # first seed: prompt seed + offset (away from the evaluation's seeds)


@register("seeds", "Seeds: the original prompts with many seeds; no optimisation (the floor)", SeedsConfig)
def attack(bundle: Bundle, goal: Goal, config: SeedsConfig, run: Run | None = None) -> AttackResult:
    run = run if run is not None else Run()
    prompts = [
        AdversarialPrompt(row, p, p, seeds=list(range(s + config.offset, s + config.offset + config.tries)))
        for row, (p, s) in enumerate(zip(goal.prompts, goal.seeds, strict=True))
    ]
    return AttackResult("seeds", goal.concept, dataclasses.asdict(config), prompts)
