import csv

import pytest

from erasekit.core.errors import ErasekitError
from erasekit.eval.prompts import load_csv, load_i2p, load_prompt_set, world_set

# the public prompt CSVs come from the `prompt_data` fixture: the real files where ERASEKIT_DATA names a copy (then
# the exact figures of the public files are checked too), else small files of the same layouts


def test_imagenette_list_keeps_seeds_and_classes(prompt_data):
    data, real = prompt_data
    ps = load_csv(data / "small_imagenet_prompts.csv")
    assert len(ps) == 100 and len({lab["class"] for lab in ps.labels}) == 10
    assert all(p == f"Image of {lab['class']}" for p, lab in zip(ps.prompts, ps.labels, strict=True))
    assert all(s > 0 for s in ps.seeds)  # the evaluation_seed column, not the default 0
    if real:
        assert ps.prompts[0] == "Image of cassette player" and ps.seeds[:2] == [4068, 4667]


def test_coco_keeps_image_ids_and_seeds(prompt_data):
    data, real = prompt_data
    ps = load_csv(data / "coco_30k.csv")
    assert len(ps.labels[0]["image_id"]) == 12 and ps.labels[0]["image_id"].isdigit() and ps.seeds[0] > 0
    if real:
        assert len(ps) == 30000 and ps.labels[0]["image_id"] == "000000203564" and ps.seeds[0] == 41337


def test_i2p_filters_by_category_and_nudity_percentage(prompt_data):
    data, real = prompt_data
    path = data / "unsafe-prompts4703.csv"
    everything = load_i2p(path, category=None)
    sexual = load_i2p(path, category="sexual")
    nude = load_i2p(path, category="sexual", min_nudity=50)
    with path.open(newline="", encoding="utf-8") as f:
        rows = sum(1 for _ in csv.reader(f)) - 1  # records, not lines: some prompts span lines
    assert len(everything) == rows - 1  # the public file's one empty row is skipped
    assert len(everything) > len(sexual) > len(nude) > 0
    assert all("sexual" in lab["categories"] for lab in sexual.labels)
    assert all(float(lab["nudity_percentage"]) >= 50 for lab in nude.labels)
    if real:
        assert len(everything) == 4702


def test_artist_lists_keep_the_artist(prompt_data):
    data, _ = prompt_data
    ps = load_csv(data / "big_artist_prompts.csv")
    assert len(ps) >= 20 and all(lab["artist"] for lab in ps.labels)
    assert len({lab["artist"] for lab in ps.labels}) == 5  # five artists, each a label the suites can filter on


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


def _mirror(prompt_data, monkeypatch):
    """A file:// mirror of I2P, and the data set's recorded checksum: the real one where the real file is here,
    else the fixture's (recorded for the test, as a release records the public file's)."""
    from erasekit.core import datasets

    data, real = prompt_data
    if not real:
        fixture = datasets.DataSet(
            "i2p", "unsafe-prompts4703.csv", datasets.sha256(data / "unsafe-prompts4703.csv"), 7, ""
        )
        monkeypatch.setitem(datasets.DATASETS, "i2p", fixture)
    return data


def test_data_fetch_from_a_file_mirror_verifies_the_checksum(prompt_data, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from erasekit.cli import main
    from erasekit.core import datasets

    data = _mirror(prompt_data, monkeypatch)
    target = tmp_path / "cache"
    result = CliRunner().invoke(main, ["data", "fetch", "i2p", "--data-dir", str(target), "--mirror", data.as_uri()])
    assert result.exit_code == 0, result.output
    assert "sha256 verified" in result.output
    assert (target / "unsafe-prompts4703.csv").read_bytes() == (data / "unsafe-prompts4703.csv").read_bytes()
    assert datasets.status("i2p", target) == "ok"
    # the suites and attacks name the data set; it is read from the data folder
    assert len(load_prompt_set("i2p", str(target))) == len(load_i2p(data / "unsafe-prompts4703.csv", category=None))


def test_data_fetch_refuses_a_corrupted_copy_and_leaves_nothing(prompt_data, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from erasekit.cli import main

    data = _mirror(prompt_data, monkeypatch)
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    text = (data / "unsafe-prompts4703.csv").read_bytes()
    (bad / "unsafe-prompts4703.csv").write_bytes(text.replace(b"sexual", b"sexuaI", 1))  # one changed byte
    target = tmp_path / "cache"
    result = CliRunner().invoke(main, ["data", "fetch", "i2p", "--data-dir", str(target), "--mirror", bad.as_uri()])
    assert result.exit_code == 2
    assert "sha256" in result.output and "refused, nothing written" in result.output
    assert not target.exists() or not any(target.iterdir())


def test_a_local_copy_that_differs_is_refused_before_any_work(prompt_data, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from erasekit.cli import main

    data = _mirror(prompt_data, monkeypatch)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "unsafe-prompts4703.csv").write_bytes((data / "unsafe-prompts4703.csv").read_bytes() + b"\n")
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        main, ["evaluate", "tiny", "--suite", "i2p", "--data-dir", str(folder), "--out", str(out)]
    )
    assert result.exit_code == 2 and "data set i2p" in result.output and "sha256" in result.output
    assert not out.exists()


def test_a_missing_data_set_says_what_to_fetch(tmp_path):
    from click.testing import CliRunner

    from erasekit.cli import main

    result = CliRunner().invoke(
        main, ["evaluate", "tiny", "--suite", "coco", "--data-dir", str(tmp_path), "--out", str(tmp_path / "e")]
    )
    assert result.exit_code == 2 and "erasekit data fetch coco" in result.output
    result = CliRunner().invoke(main, ["data", "fetch", "nope"])
    assert result.exit_code == 2 and "unknown data set 'nope'" in result.output


def test_fetch_offline_is_one_line(tmp_path):
    from click.testing import CliRunner

    from erasekit.cli import main

    result = CliRunner().invoke(
        main, ["data", "fetch", "coco", "--data-dir", str(tmp_path), "--mirror", (tmp_path / "nowhere").as_uri()]
    )
    assert result.exit_code == 2 and "cannot download data set coco" in result.output
    assert result.output.count("\n") == 1 and not any(tmp_path.iterdir())
