"""The miniature's vocabularies, registered for the methods (`core.vocab`) through the `erasekit.vocabularies`
entry point: `world` (every word of the lexicon: the object names with their synonyms, colours, styles, the
indirect words, `mark`) and `world-objects` (the ten objects with their synonyms)."""

from __future__ import annotations

from dataclasses import dataclass

from erasekit.core.vocab import register_vocabulary
from erasekit.models.words import fix_articles
from erasekit.world.captions import INDIRECT, LEXICON, MARK_NAME, OBJECT_NAMES, compose
from erasekit.world.render import COLOUR_NAMES, OBJECTS, STYLES


def objects() -> list[list[str]]:
    return [list(names) for names in OBJECT_NAMES.values()]


def lexicon() -> list[list[str]]:
    named = {n for names in OBJECT_NAMES.values() for n in names}
    return objects() + [[w] for w in LEXICON if w not in named]


def register() -> None:
    register_vocabulary("world", lexicon)
    register_vocabulary("world-objects", objects)


@dataclass(frozen=True)
class Probe:
    """How the world judge measures a lexicon word: `n` prompts (one per seed 0..n−1) and the judge's head and label
    whose probability is the word's score S. Objects: "a {word}" (object head); colours: "a {word} {object}"
    (colour head); styles: "a {object} in {word} style" (style head); `mark` and the indirect words: "a {object}
    with a mark" and "a {word} {object}" (mark head). The objects cycle through the ten, so every word is judged
    on the same mixture of shapes."""

    word: str
    prompts: tuple[str, ...]
    head: str
    label: str


def probe(word: str, n: int) -> Probe | None:
    """The judge's probe of `word`, or None where the judge has no head for it."""
    w = word.strip().lower()
    shapes = [OBJECT_NAMES[OBJECTS[i % len(OBJECTS)]][0] for i in range(n)]
    for obj, names in OBJECT_NAMES.items():
        if w in names:
            return Probe(word, tuple(fix_articles(f"a {w}") for _ in range(n)), "object", obj)
    if w in COLOUR_NAMES:
        return Probe(word, tuple(compose(s, colour=w) for s in shapes), "colour", w)
    if w in STYLES:
        return Probe(word, tuple(compose(s, style=w) for s in shapes), "style", w)
    if w == MARK_NAME:
        return Probe(word, tuple(compose(s, mark=True) for s in shapes), "mark", MARK_NAME)
    if w in INDIRECT:
        return Probe(word, tuple(compose(s, adjective=w) for s in shapes), "mark", MARK_NAME)
    return None
