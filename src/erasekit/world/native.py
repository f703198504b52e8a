"""What the world knows about the models of its own architecture (the embedded miniature, `scale == "mini"`), asked
for by the layers above instead of each of them testing the architecture's name: which concepts it can draw, and
how its judge scores an attribute."""

from __future__ import annotations

from erasekit.core.errors import ErasekitError

SCALE = "mini"


def owns(bundle) -> bool:
    """Whether `bundle` is the miniature (or an edit or export of it): the world's judge and words apply to it."""
    return bundle.scale == SCALE


def check_concepts(texts) -> None:
    """Refuse concepts the miniature has never seen a word of (they would erase nothing)."""
    from erasekit.world.captions import unknown_words
    from erasekit.world.render import OBJECTS

    for text in texts:
        bad = unknown_words(text or "")
        if bad:
            raise ErasekitError(
                f"unknown concept {text!r} for the miniature (unknown word(s): {', '.join(bad)}); "
                f"it knows objects ({', '.join(OBJECTS)}), colours, styles and 'mark'"
            )


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


def segmented_images():
    """(concept, n, seed) -> (images [n, 3, 32, 32] in [-1, 1], masks [n, 1, 32, 32] in {0, 1}): renders of an
    object (by any of its names), in random colours and styles without the mark, with the exact pixels it covers
    (at least half covered counts). The segmentation MACE asks of Grounded-SAM on SD, exact here."""
    import numpy as np
    import torch

    from erasekit.world.captions import OBJECT_NAMES
    from erasekit.world.render import COLOUR_NAMES, OBJECTS, STYLES, Labels, render

    names = {n: k for k, o in enumerate(OBJECTS) for n in OBJECT_NAMES[o]}

    def images(concept: str, n: int, seed: int):
        key = concept.strip().lower().removeprefix("a ").removeprefix("an ")
        if key not in names:
            raise ErasekitError(
                f"the miniature segments objects only ({', '.join(OBJECTS)}), not {concept!r}: "
                "run MACE with masks='' on it"
            )
        rng = np.random.default_rng(seed)
        labels = Labels(
            np.full(n, names[key]),
            rng.integers(0, len(COLOUR_NAMES), n),
            rng.integers(0, len(STYLES), n),
            np.zeros(n, dtype=bool),
        )
        pixels, cover = render(labels, seed, masks=True)
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
        return x, torch.from_numpy(cover >= 0.5).float()[:, None]

    return images
