"""The concept set a method works on: what to erase, what to preserve, where to send it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from erasekit.core.errors import ErasekitError


def split_list(text: str | None) -> list[str]:
    """'a, b ,c' -> ['a', 'b', 'c'] (empty items dropped)."""
    return [c.strip() for c in (text or "").split(",") if c.strip()]


@dataclass
class ConceptSet:
    """`erase`: concepts to remove (c_e). `preserve`: concepts to keep (c_n, UCE's P). `target`: what the erased
    concepts become (c_t; "" is the empty prompt, the default of ESD/UCE). `anchor`: Concept Ablation's anchor
    concept (defaults to the target)."""

    erase: list[str]
    preserve: list[str] = field(default_factory=list)
    target: str = ""
    anchor: str | None = None

    def __post_init__(self):
        self.erase = [c.strip() for c in self.erase if c and c.strip()]
        self.preserve = [c.strip() for c in self.preserve if c and c.strip()]
        if not self.erase:
            raise ErasekitError('empty concept list: give at least one concept to erase (--erase "a star")')
        overlap = sorted(set(self.erase) & set(self.preserve))
        if overlap:
            raise ErasekitError(f"concept(s) both erased and preserved: {', '.join(overlap)}")
        self.target = (self.target or "").strip()

    @property
    def anchor_prompt(self) -> str:
        return self.target if self.anchor is None else self.anchor.strip()

    def as_dict(self) -> dict:
        return asdict(self)


def expand(concepts: list[str], templates: tuple[str, ...]) -> list[str]:
    """Each concept in each prompt template ("{}" is the concept itself): the prompts a method trains on."""
    return [t.format(c) for c in concepts for t in templates]
