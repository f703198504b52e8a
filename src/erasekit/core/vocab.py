"""Concept vocabularies: the sets of concepts AP/AGE search and the guide of UCE/TIME/CA is picked from.

A vocabulary is a file (one concept per line; `a | b` makes b a synonym of a; `#` starts a comment) or a *named*
vocabulary that a provider registers. Providers are found through the `erasekit.vocabularies` entry-point group, so
the world (which provides `world`, its lexicon, and `world-objects`, its ten objects) fills this registry without
any layer below it naming it, and a third-party package can add its own vocabularies the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from erasekit.core.errors import ErasekitError

ENTRY_POINTS = "erasekit.vocabularies"
NAMED: dict[str, Callable[[], list[list[str]]]] = {}  # name -> groups of synonyms, the first of each the concept
_PROVIDERS_LOADED = False  # whether the entry-point providers have run (once, on first use)


@dataclass
class Vocabulary:
    concepts: list[str]
    synonyms: dict[str, set[str]] = field(default_factory=dict)  # lower-cased name -> its group (itself included)

    def group(self, concept: str) -> set[str]:
        key = concept.strip().lower()
        return self.synonyms.get(key, set()) | {key}

    def without(self, concepts, synonyms: bool = True) -> list[str]:
        """The concepts, leaving out `concepts` (and, with `synonyms`, every synonym of them)."""
        excluded = set().union(*[self.group(c) if synonyms else {c.strip().lower()} for c in concepts])
        return [w for w in self.concepts if w.lower() not in excluded]


def register_vocabulary(name: str, groups: Callable[[], list[list[str]]]) -> None:
    """Make `groups()` (lists of synonyms) available as the vocabulary `name`."""
    NAMED[name] = groups


def named() -> dict[str, Callable[[], list[list[str]]]]:
    """Every named vocabulary, the entry-point providers' included (loaded once, on first use)."""
    global _PROVIDERS_LOADED
    if not _PROVIDERS_LOADED:
        for ep in entry_points(group=ENTRY_POINTS):
            ep.load()()
        _PROVIDERS_LOADED = True
    return NAMED


def grouped(groups: list[list[str]]) -> Vocabulary:
    concepts: list[str] = []
    synonyms: dict[str, set[str]] = {}
    for names in groups:
        concepts += [n for n in names if n not in concepts]
        members = {n.lower() for n in names}
        for n in members:
            synonyms[n] = synonyms.get(n, set()) | members
    return Vocabulary(concepts, synonyms)


def load_vocabulary(source: str) -> Vocabulary:
    """A named vocabulary, or a vocabulary file."""
    if not source:
        raise ErasekitError(
            "this method searches a concept vocabulary: give one with --set vocab=FILE (one concept "
            f"per line; 'a | b' makes b a synonym of a), or a named one ({', '.join(named())})"
        )
    if source in named():
        return grouped(named()[source]())
    path = Path(source)
    if not path.is_file():
        raise ErasekitError(f"vocabulary file not found: {path} (named vocabularies: {', '.join(named())})")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ErasekitError(f"vocabulary file {path} is not UTF-8 text") from None
    groups = [
        [n.strip() for n in line.split("|") if n.strip()]
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not groups:
        raise ErasekitError(f"vocabulary file {path} holds no concepts")
    return grouped(groups)
