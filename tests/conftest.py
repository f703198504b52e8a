"""Shared fixtures: a tiny SD-architecture model (random weights) as a bundle, a diffusers folder and a single file."""

import pytest
from safetensors.torch import save_file

from erasekit.cli import quiet_libraries
from erasekit.models.ldm import to_ldm_state_dict
from erasekit.models.load import load_bundle

quiet_libraries()


@pytest.fixture(scope="session")
def tiny():
    return load_bundle("tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny_folder(tiny, tmp_path_factory):
    return tiny.save_pretrained(tmp_path_factory.mktemp("tiny") / "pipe")


@pytest.fixture(scope="session")
def tiny_single_file(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("single") / "tiny.safetensors"
    save_file(to_ldm_state_dict(tiny.denoiser, tiny.vae, tiny.modules["text_encoder"]), str(path))
    return path


@pytest.fixture
def interrupted_and_resumed(tmp_path, monkeypatch):
    """`go(erase)` with `erase(run) -> Edit` (config: checkpoint_every=2): the uninterrupted run's Edit, and the Edit
    of a run killed right after its first checkpoint (step 2) and resumed with `resume=True`. Work folders:
    tmp_path/whole and tmp_path/cut."""
    import json

    import erasekit.core.loop as loop
    from erasekit.core.loop import Run

    def go(erase):
        whole = erase(Run(work=tmp_path / "whole", progress=False))
        real_save = loop.save_checkpoint

        def save_then_die(path, modules, opt, step, meta=None):
            real_save(path, modules, opt, step, meta)
            raise KeyboardInterrupt

        monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            erase(Run(work=tmp_path / "cut", progress=False))
        monkeypatch.setattr(loop, "save_checkpoint", real_save)
        assert json.loads((tmp_path / "cut" / "checkpoint.json").read_text())["step"] == 2
        return whole, erase(Run(work=tmp_path / "cut", resume=True, progress=False))

    return go


@pytest.fixture(scope="session")
def mini():
    """The shipped miniature: what the world's suites and judge score (plumbing on it costs little more than tiny)."""
    return load_bundle("mini", device="cpu")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """A tiny random CLIP in the transformers layout (what --clip reads): the judges' and verifiers' plumbing."""
    from erasekit.eval.judges import write_random_clip

    return write_random_clip(tmp_path_factory.mktemp("clip"))


ARTISTS = ("Andy Warhol", "Caravaggio", "Pablo Picasso", "Rembrandt", "Van Gogh")  # the artists-big set's five
IMAGENETTE_CLASSES = (
    "tench", "english springer", "cassette player", "chain saw", "church", "french horn", "garbage truck",
    "gas pump", "golf ball", "parachute",
)  # fmt: skip


def write_data_fixtures(folder):
    """Small files in the public layouts of the data sets (the headers of rohitgandikota/erasing's data/, rows made
    up here), for a machine without the real files: Imagenette (10 classes x 10 seeds), I2P (with its one empty
    row), COCO, an artist set. Returns the folder."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)

    def write(name, header, rows):
        with (folder / name).open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)

    write(
        "small_imagenet_prompts.csv",
        ["", "case_number", "prompt", "evaluation_seed", "class"],
        [
            (i, i, f"Image of {c}", 1000 + 37 * i, c)
            for i, c in enumerate(c for c in IMAGENETTE_CLASSES for _ in range(10))
        ],
    )
    header = ["", "prompt", "categories", "hard", "inappropriate_percentage", "nudity_percentage", "q16_percentage",
              "sd_safety_percentage", "prompt_toxicity", "lexica_url", "evaluation_seed", "evaluation_guidance",
              "sd_image_width", "sd_image_height", "sd_model", "case_number"]  # fmt: skip
    cats = ["sexual", "violence", "sexual,shocking", "hate", "sexual", "harassment"]
    nudity = [80.0, 0.0, 45.0, 10.0, 60.0, 0.0]
    rows = [(i, f"a made-up prompt number {i}", cats[i], 0, 50.0, nudity[i], 20.0, 30.0, 0.1, "", 100 + i, 7, 512,
             512, "v1.4", i) for i in range(6)]  # fmt: skip
    rows.insert(3, (6, "", "sexual", 0, 0, 0, 0, 0, 0, "", 0, 7, 512, 512, "v1.4", 6))  # the public file's empty row
    write("unsafe-prompts4703.csv", header, rows)
    write(
        "coco_30k.csv",
        ["image_id", "source", "prompt", "evaluation_seed"],
        [(f"{i:012d}", "coco", f"a caption of image {i}", 40000 + i) for i in range(20)],
    )
    write(
        "big_artist_prompts.csv",
        ["", "case_number", "prompt", "evaluation_seed", "artist"],
        [(i, i, f"a landscape in the style of {ARTISTS[i % 5]}", 2000 + i, ARTISTS[i % 5]) for i in range(20)],
    )
    return folder


@pytest.fixture(scope="session")
def prompt_data(tmp_path_factory):
    """(folder, real): the public data sets' files from the mirror named by ERASEKIT_DATA where it holds them (CI
    sets it where a copy exists), else small files of the same layouts written here (real False). No test skips
    for want of the data."""
    import os
    from pathlib import Path

    mirror = os.environ.get("ERASEKIT_DATA")
    if mirror and (Path(mirror) / "unsafe-prompts4703.csv").is_file():
        return Path(mirror), True
    return write_data_fixtures(tmp_path_factory.mktemp("data")), False
