import os
from pathlib import Path

import pytest

from erasekit.core.errors import ErasekitError
from erasekit.eval.prompts import load_csv, load_i2p, load_prompt_set, world_set

# the public prompt CSVs (Imagenette, I2P, COCO, artists), read from a local mirror named by this variable; CI sets
# it (.ci/run) and must never skip these tests
MIRROR = os.environ.get("ERASEKIT_PROMPTS_MIRROR")
DATA = Path(MIRROR) if MIRROR else None
if os.environ.get("CI") and (DATA is None or not DATA.is_dir()):
    raise RuntimeError(f"CI: the public prompt CSVs are missing (ERASEKIT_PROMPTS_MIRROR={MIRROR!r})")
needs_data = pytest.mark.skipif(
    DATA is None or not DATA.is_dir(), reason="set ERASEKIT_PROMPTS_MIRROR to a folder of the public prompt CSVs"
)


@needs_data
def test_imagenette_list_keeps_seeds_and_classes():
    ps = load_csv(DATA / "small_imagenet_prompts.csv")
    assert len(ps) == 100 and ps.prompts[0] == "Image of cassette player"
    assert ps.seeds[:2] == [4068, 4667] and ps.labels[0]["class"] == "cassette player"
    assert len({lab["class"] for lab in ps.labels}) == 10


@needs_data
def test_coco_keeps_image_ids_and_seeds():
    ps = load_csv(DATA / "coco_30k.csv")
    assert len(ps) == 30000 and ps.labels[0]["image_id"] == "000000203564" and ps.seeds[0] == 41337


@needs_data
def test_i2p_filters_by_category_and_nudity_percentage():
    everything = load_i2p(DATA / "unsafe-prompts4703.csv", category=None)
    sexual = load_i2p(DATA / "unsafe-prompts4703.csv", category="sexual")
    nude = load_i2p(DATA / "unsafe-prompts4703.csv", category="sexual", min_nudity=50)
    assert len(everything) == 4702  # one row of the public file is empty
    assert len(everything) > len(sexual) > len(nude) > 0
    assert all("sexual" in lab["categories"] for lab in sexual.labels)
    assert all(float(lab["nudity_percentage"]) >= 50 for lab in nude.labels)


@needs_data
@pytest.mark.parametrize("name", ["big_artist_prompts", "short_niche_art_prompts", "vangogh_prompts"])
def test_artist_lists_keep_the_artist(name):
    ps = load_csv(DATA / f"{name}.csv")
    assert len(ps) >= 20 and all(lab["artist"] for lab in ps.labels)


def test_csv_without_prompt_column_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,seed\nhello,1\n")
    with pytest.raises(ErasekitError, match="has no 'prompt' column \\(columns: text, seed\\)"):
        load_csv(path)


def test_user_csv_with_only_prompts(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('prompt\n"a red star"\n"a blue ring"\n')
    ps = load_csv(path)
    assert ps.prompts == ["a red star", "a blue ring"] and ps.seeds == [0, 0]
    assert [s for _, _, s, _ in ps.expand(3)] == [0, 1, 2, 0, 1, 2]


def test_empty_prompt_and_bad_seed_are_named(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text('prompt,seed\n"a star",1\n"",2\n')
    with pytest.raises(ErasekitError, match="empty prompt at row 1"):
        load_csv(path)
    path.write_text('prompt,seed\n"a star",x\n')
    with pytest.raises(ErasekitError, match="line 2: seed 'x' is not a number"):
        load_csv(path)


def test_world_sets_by_name():
    assert len(world_set("objects")) == 10 and load_prompt_set("world-colours").labels[0]["colour"] == "red"
    with pytest.raises(ErasekitError, match="unknown prompt set 'nope'"):
        load_prompt_set("nope")
