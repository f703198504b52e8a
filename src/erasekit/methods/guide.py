"""The guide concept of UCE/TIME and the anchor of Concept Ablation, when the user names none.

UCE maps the erased keys/values onto a target (its "guide concept", the empty prompt by default) and Concept
Ablation maps the erased predictions onto an anchor (its paper's anchors are near concepts: "cat" for "grumpy
cat"). With `guide=nearest`, a run given no `--target` (and, for CA, no `--anchor`) takes the concept of `vocab`
nearest the first erased concept by L2 distance of the text encoder's outputs (the measure of `search.candidates`),
leaving out every erased concept and its synonyms. The miniature's presets use it with `vocab=world-objects`:
its unconditional samples are objects, so the empty prompt is not "nothing" to map onto (README, "Why UCE, TIME
and CA take the nearest object on the miniature").
"""

from __future__ import annotations

from dataclasses import replace

from erasekit.core.errors import ErasekitError
from erasekit.core.options import check_choice
from erasekit.core.vocab import load_vocabulary
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.search import candidates
from erasekit.models.bundle import Bundle

GUIDES = ("", "nearest")  # "": --target, else the empty prompt


def check_guide(guide: str, vocab: str) -> None:
    check_choice(guide, GUIDES, "guide")
    if guide == "nearest" and not vocab:
        raise ErasekitError(
            "guide=nearest picks the concept nearest the erased one from a vocabulary: give "
            "--set vocab=FILE (one concept per line), or vocab=world-objects on the miniature"
        )


def guided(bundle: Bundle, concepts: ConceptSet, guide: str, vocab: str) -> ConceptSet:
    """`concepts`, with the nearest concept as the target when `guide=nearest` and no target or anchor is given."""
    if guide != "nearest" or concepts.target or concepts.anchor is not None:
        return concepts
    names, _ = candidates(
        bundle, concepts.erase[0], load_vocabulary(vocab), k_closest=1, also_exclude=concepts.erase[1:]
    )
    return replace(concepts, target=names[0])
