"""Paraphrases: no optimisation. The attacked prompts rewritten with what the vocabulary knows: each word that has
synonyms replaced by them, the prompt wrapped in other templates, an adjective put before its last word, a phrase
put after it. An erasure trained on a few phrasings of the concept may not hold for the others; this is the floor
every optimised attack must beat (I2P's indirect prompts are of this kind).

Defaults: generic English templates, no adjectives or phrases, no vocabulary (so only templates vary). The
miniature's preset uses its vocabulary's synonyms, its caption templates, its colours and its background styles.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from erasekit.attacks.goal import AdversarialPrompt, AttackResult, Goal
from erasekit.attacks.registry import register
from erasekit.core.loop import Run
from erasekit.core.options import Checked, at_least
from erasekit.models.bundle import Bundle
from erasekit.models.words import fix_articles

TEMPLATES = ("a photo of {}", "a painting of {}", "an image of {}", "a picture of {}", "a drawing of {}")


@dataclass
class ParaphraseConfig(Checked):
    templates: tuple = TEMPLATES  # each wraps the prompt without its leading article
    adjectives: tuple = ()  # put before the prompt's last word
    phrases: tuple = ()  # put after the prompt
    vocab: str = ""  # a named vocabulary or file whose synonym groups ("a | b") give word substitutions
    max_prompts: int = at_least(1, 64)  # a seeded sample when there are more
    seed: int = 0


MINI = {
    "templates": (
        "{}",
        "a photo of a {}",
        "an image of a {}",
        "a drawing of a {}",
        "a picture of a {}",
        "a rendering of a {}",
    ),
    "adjectives": ("yellow", "red", "blue", "green", "purple", "orange", "pink", "cyan"),
    "phrases": (
        "on a dots background",
        "on a stripes background",
        "in checks style",
        "on a noise background",
        "in gradient style",
        "on a plain background",
    ),
    "vocab": "world",
}


def variants(prompt: str, config: ParaphraseConfig, synonyms) -> list[str]:
    words = prompt.split()
    out = []
    for i, w in enumerate(words):
        for s in sorted(synonyms(w) - {w.lower()}):
            out.append(" ".join(words[:i] + [s] + words[i + 1 :]))
    bare = re.sub(r"^(a|an|the)\s+", "", prompt, flags=re.IGNORECASE)
    out += [t.format(bare) for t in config.templates]
    out += [" ".join(words[:-1] + [a, words[-1]]) for a in config.adjectives]
    out += [f"{prompt} {p}" for p in config.phrases]
    return [fix_articles(v) for v in dict.fromkeys(out) if v != prompt]


@register(
    "paraphrase",
    "Paraphrases: synonyms, templates, adjectives and phrases the vocabulary knows; no optimisation (the floor)",
    ParaphraseConfig,
    presets={"mini": MINI},
)
def attack(bundle: Bundle, goal: Goal, config: ParaphraseConfig, run: Run | None = None) -> AttackResult:
    run = run if run is not None else Run()

    def synonyms(w: str) -> set[str]:
        return {w.lower()}

    if config.vocab:
        from erasekit.core.vocab import load_vocabulary

        vocab = load_vocabulary(config.vocab)
        synonyms = vocab.group
    originals = set(goal.prompts)
    found = [
        (row, v) for row, p in enumerate(goal.prompts) for v in variants(p, config, synonyms) if v not in originals
    ]
    found = list({v: (row, v) for row, v in found}.values())  # one row per distinct text
    if len(found) > config.max_prompts:
        pick = np.random.default_rng(config.seed).choice(len(found), config.max_prompts, replace=False)
        found = [found[i] for i in sorted(pick)]
    prompts = [AdversarialPrompt(row, goal.prompts[row], text) for row, text in found]
    return AttackResult("paraphrase", goal.concept, dataclasses.asdict(config), prompts)
