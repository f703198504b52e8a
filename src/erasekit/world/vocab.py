"""The miniature's vocabularies, registered for the methods (`core.vocab`) through the `erasekit.vocabularies`
entry point: `world` (every word of the lexicon: the object names with their synonyms, colours, styles, the
indirect words, `mark`) and `world-objects` (the ten objects with their synonyms)."""

from __future__ import annotations

from erasekit.core.vocab import register_vocabulary
from erasekit.world.captions import LEXICON, OBJECT_NAMES


def objects() -> list[list[str]]:
    return [list(names) for names in OBJECT_NAMES.values()]


def lexicon() -> list[list[str]]:
    named = {n for names in OBJECT_NAMES.values() for n in names}
    return objects() + [[w] for w in LEXICON if w not in named]


def register() -> None:
    register_vocabulary("world", lexicon)
    register_vocabulary("world-objects", objects)
