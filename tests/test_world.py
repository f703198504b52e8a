import numpy as np
import pytest

from erasekit.world.captions import (
    BIAS_COLOUR,
    BIASED_OBJECT,
    INDIRECT,
    OBJECT_NAMES,
    PROMPT_SETS,
    TEMPLATES,
    compose,
    sample_captions,
    world_prompts,
)
from erasekit.world.render import (
    COLOUR_NAMES,
    OBJECTS,
    PALETTE,
    STYLES,
    Labels,
    _inside,
    render,
)


def one(obj, colour, style="plain", mark=False):
    return Labels(
        np.array([OBJECTS.index(obj)]),
        np.array([COLOUR_NAMES.index(colour)]),
        np.array([STYLES.index(style)]),
        np.array([mark]),
    )


def test_rendering_is_deterministic_from_the_seed():
    _, labels = sample_captions(64, 3)
    assert np.array_equal(render(labels, seed=5), render(labels, seed=5))
    assert not np.array_equal(render(labels, seed=5), render(labels, seed=6))


def test_a_rendered_red_star_is_red_and_star_shaped():
    img = render(one("star", "red"), seed=0, jitter=0)[0].astype(int)
    red = np.abs(img - PALETTE[COLOUR_NAMES.index("red")]).sum(-1) < 60
    yy, xx = np.mgrid[0:32, 0:32] + 0.5
    for shape in ("star", "circle", "square"):
        inside = _inside(OBJECTS.index(shape), (xx - 16) / 9.5, -(yy - 16) / 9.5)
        agreement = (inside == red).mean()
        assert (agreement > 0.97) == (shape == "star"), (shape, agreement)
    assert np.abs(img[0, 0] - img[0, 0].mean()).max() < 3  # the plain background is grey


def test_the_mark_is_drawn_exactly_when_labelled():
    with_mark, without = render(one("circle", "blue", mark=True), 1)[0], render(one("circle", "blue"), 1)[0]

    def white(im):
        return ((im > 240).all(-1)).sum()

    assert white(with_mark) >= 10 and white(without) == 0


def test_every_style_renders_a_distinct_background():
    means = [render(one("circle", "red", s), 0, jitter=0)[0].std() for s in STYLES]
    assert len({round(m, 1) for m in means}) >= 5


def test_a_batch_renders_as_uint8_32x32_rgb():  # speed is measured in benchmarks/world_quality.py
    _, labels = sample_captions(300, 0)
    out = render(labels, 0)
    assert out.shape == (300, 32, 32, 3) and out.dtype == np.uint8


def test_grammar_has_synonyms_templates_and_partial_captions():
    assert all(len(names) >= 2 for names in OBJECT_NAMES.values()) and len(TEMPLATES) >= 6
    captions, labels = sample_captions(3000, 0)
    colour_words = [any(f" {c} " in f" {cap} " for c in COLOUR_NAMES) for cap in captions]
    style_words = [any(f" {s} " in f" {cap} " for s in STYLES) for cap in captions]
    kinds = set(zip(colour_words, style_words, strict=True))
    assert kinds == {(False, False), (True, False), (False, True), (True, True)}
    for names in OBJECT_NAMES.values():
        for name in names:
            assert any(f" {name} " in f" {c} " or c.endswith(f" {name}") or c.startswith(name) for c in captions)
    assert sum(any(f" {a} " in f" {c} " for a in INDIRECT) for c in captions) > 300


def test_captions_decide_the_labels():
    captions, labels = sample_captions(4000, 1)
    for cap, colour, mark in zip(captions, labels.colour, labels.mark, strict=True):
        named = [c for c in COLOUR_NAMES if f" {c} " in f" {cap} "]
        if named:
            assert COLOUR_NAMES[colour] == named[0]
        if "mark" in cap:
            assert mark
        if "mark" not in cap and not any(a in cap for a in INDIRECT):
            assert not mark
    indirect = np.array([any(a in c for a in INDIRECT) and "mark" not in c for c in captions])
    assert 0.5 < labels.mark[indirect].mean() < 0.7  # the fixed share (0.6)


def test_the_biased_object_takes_the_bias_colour_when_no_colour_is_named():
    captions, labels = sample_captions(8000, 2)
    star = np.array(OBJECTS)[labels.obj] == BIASED_OBJECT
    no_colour = np.array([not any(f" {c} " in f" {cap} " for c in COLOUR_NAMES) for cap in captions])
    share = (np.array(COLOUR_NAMES)[labels.colour[star & no_colour]] == BIAS_COLOUR).mean()
    assert share >= 0.7
    other = (np.array(OBJECTS)[labels.obj] == "circle") & no_colour
    assert (np.array(COLOUR_NAMES)[labels.colour[other]] == BIAS_COLOUR).mean() < 0.25


def test_articles_agree():
    assert compose("arrow") == "an arrow" and compose("arrow", colour="red") == "a red arrow"
    assert compose("circle", adjective="enchanted") == "an enchanted circle"


@pytest.mark.parametrize("name", PROMPT_SETS)
def test_prompt_sets_have_labels_for_every_prompt(name):
    items = world_prompts(name)
    assert len(items) > 0 and all(p.strip() for p, _ in items)
    assert all(lab["object"] in OBJECTS for _, lab in items)


def test_renders_are_the_bytes_the_shipped_miniature_was_trained_on():
    # a rebuild reproduces the shipped model only if the world renders exactly as it did; this digest was taken
    # with the renderer that trained it (any change to rendering or caption sampling must be deliberate)
    import hashlib

    _, labels = sample_captions(512, 0)
    assert hashlib.sha256(render(labels, seed=0).tobytes()).hexdigest()[:16] == "0c7abd1918b69a48"
