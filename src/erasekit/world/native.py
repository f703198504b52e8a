"""What the world knows about the models of its own architecture (the embedded miniature, `arch == "mini"`), asked
for by the layers above instead of each of them testing the architecture's name: which concepts it can draw, and
how its judge scores an attribute."""

from __future__ import annotations

from erasekit.core.errors import ErasekitError

ARCH = "mini"


def owns(bundle) -> bool:
    """Whether `bundle` is the miniature (or an edit or export of it): the world's judge and words apply to it."""
    return bundle.arch == ARCH


def check_concepts(texts) -> None:
    """Refuse concepts the miniature has never seen a word of (they would erase nothing)."""
    from erasekit.world.captions import unknown_words
    from erasekit.world.render import OBJECTS

    for text in texts:
        bad = unknown_words(text or "")
        if bad:
            raise ErasekitError(f"unknown concept {text!r} for the miniature (unknown word(s): {', '.join(bad)}); "
                                f"it knows objects ({', '.join(OBJECTS)}), colours, styles and 'mark'")


def image_features():
    """images -> [B, F]: the world judge's penultimate features (the miniature's image encoder)."""
    from erasekit.world.judge import WorldJudge

    judge = WorldJudge.load()
    return lambda images: judge.score(images).features


def colour_scorer(attributes):
    """images -> [B, 8]: the world judge's colour probabilities, the attributes' colours first and then every
    other colour, so that an image of a colour that is none of the attributes (orange, between red and yellow)
    counts for none of them instead of for the nearest."""
    from erasekit.world.judge import WorldJudge
    from erasekit.world.render import COLOUR_NAMES

    unknown = [a for a in attributes if a not in COLOUR_NAMES]
    if unknown:
        raise ErasekitError(f"the world judge scores colours; unknown attribute(s): {', '.join(unknown)}")
    judge = WorldJudge.load()
    cols = [COLOUR_NAMES.index(a) for a in attributes]
    cols += [i for i in range(len(COLOUR_NAMES)) if i not in cols]
    return lambda images: judge.score(images).colour[:, cols]
