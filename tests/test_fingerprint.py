"""The model fingerprint (issue 36): exact sample positions at every size, and every file erasekit 0.1.0 made still
loads (tests/data/release-0.1.0, made by that release: see its README)."""

import shutil
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from erasekit.bench import run as bench
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.key import Key
from erasekit.models.bundle import FINGERPRINT_PREFIX, sample_indices
from erasekit.models.export import export
from erasekit.models.load import load_bundle

RELEASE = Path(__file__).parent / "data" / "release-0.1.0"
MINI_V1 = "becc76a996ec0e95"  # the miniature's fingerprint as erasekit 0.1.0 wrote it (RELEASE/uce-star/manifest.json)
SD_EMBEDDING = 49408 * 768  # SD-1.x's token embedding: the tensor that made 0.1.0 fail on every real model


@pytest.mark.parametrize(
    "numel",
    [
        1,
        2,
        7,
        8,
        9,
        2**24 - 1,
        2**24,
        2**24 + 1,
        2**24 + 3,
        SD_EMBEDDING,
        49408 * 1024,
        1280 * 2560 * 9,
        2**31 + 5,
        2**53 + 11,
        10**20 + 7,
    ],
)
def test_sample_positions_are_the_nearest_integers_to_an_even_spacing(numel):
    idx = sample_indices(numel)
    steps = min(numel, 8)
    want = [round(Fraction(i * (numel - 1), max(steps - 1, 1))) for i in range(steps)]
    assert idx == want and idx[0] == 0 and idx[-1] == numel - 1 and idx == sorted(set(idx))


def test_a_tensor_over_2_24_values_is_fingerprinted_where_version_1_fell_past_its_end(tiny):
    """0.1.0 raised IndexError on SD-1.x's 49408 x 768 token embedding: float32 rounds 37,945,343 up to 37,945,344."""
    big = tiny.clone(("text_encoder",))
    big.modules["text_encoder"].set_input_embeddings(torch.nn.Embedding(49408, 768))
    assert torch.linspace(0, SD_EMBEDDING - 1, 8)[-1].round().long() == SD_EMBEDDING  # the bug itself
    fingerprint = big.fingerprint()
    assert fingerprint.startswith(FINGERPRINT_PREFIX) and fingerprint != tiny.fingerprint()
    assert big.legacy_fingerprint() is None and big.matches(fingerprint)
    with torch.no_grad():  # the last value is read: changing it changes the fingerprint
        big.modules["text_encoder"].get_input_embeddings().weight[-1, -1] += 1
    assert big.fingerprint() != fingerprint


def test_a_recorded_fingerprint_matches_in_either_version_and_nothing_else(tiny):
    mini = load_bundle("mini", device="cpu")
    assert mini.legacy_fingerprint() == MINI_V1 and mini.matches(MINI_V1) and mini.matches(mini.fingerprint())
    assert not mini.matches(tiny.fingerprint()) and not mini.matches(tiny.legacy_fingerprint())
    assert not mini.matches(FINGERPRINT_PREFIX + MINI_V1)  # a version-2 fingerprint is not compared as version 1
    assert not mini.matches(None) and not mini.matches("")


def test_an_edit_made_by_0_1_0_applies_and_a_wrong_base_is_still_refused(tiny):
    edit = Edit.load(RELEASE / "uce-star")
    assert edit.base["fingerprint"] == MINI_V1
    mini = load_bundle("mini", device="cpu")
    edited = edit.apply(mini)
    name = next(iter(edit.tensors))
    assert torch.equal(dict(edited.named_parameters())[name], edit.tensors[name])
    with pytest.raises(ErasekitError, match="fingerprint becc76a996ec0e95"):
        edit.check(tiny)


def test_a_key_made_by_0_1_0_unlocks_its_edit_and_the_exported_hidden_model(tmp_path):
    edit, key = Edit.load(RELEASE / "uce-star"), Key.load(RELEASE / "star-key.safetensors")
    mini = load_bundle("mini", device="cpu")
    key.check(edit.apply(mini), edit)
    exported = load_bundle(export(edit, mini, tmp_path / "hidden"), device="cpu")
    assert not key.model.startswith(FINGERPRINT_PREFIX)
    key.check(exported)  # no edit: the model must be the hidden one itself, by its version-1 fingerprint
    with pytest.raises(ErasekitError, match="unlocks the hidden model"):
        key.check(mini)


def test_a_bench_folder_of_0_1_0_computes_none_of_its_cells_again(tmp_path):
    folder = tmp_path / "bench"
    shutil.copytree(RELEASE / "bench", folder)
    before = sorted(p.name for p in (folder / "cells").iterdir())
    bench(folder / "spec.yaml", folder, progress=False)
    assert sorted(p.name for p in (folder / "cells").iterdir()) == before
    assert not (folder / "edits").exists()  # the erasure was not trained again either
    fresh = tmp_path / "fresh"  # a new folder keys its cells by the current version
    bench(folder / "spec.yaml", fresh, progress=False)
    assert not set(p.name for p in (fresh / "cells").iterdir()) & set(before)


def test_the_miniature_and_an_edit_of_0_1_0_draw_the_images_0_1_0_drew():
    """8-bit images 0.1.0 generated (RELEASE/images.safetensors): the model layer's rewrite draws the same ones."""
    from safetensors.torch import load_file

    drawn = load_file(str(RELEASE / "images.safetensors"))
    mini = load_bundle("mini", device="cpu")
    prompts, seeds = ["a red star", "a star", "a blue moon", "a circle"], [0, 1, 2, 3]
    to8 = lambda x: (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)  # noqa: E731
    for model, name in ((mini, "base"), (Edit.load(RELEASE / "uce-star").apply(mini), "uce_star")):
        now = to8(model.generate(prompts, seeds, steps=10)).int()
        assert (now - drawn[name].int()).abs().max() <= 1, name  # at most one 8-bit step of float noise


def test_an_attack_and_an_evaluation_of_0_1_0_are_read_by_today_s_commands(tmp_path):
    """The run folders 0.1.0 wrote: its metrics.json has every key of today's contract (today's adds `judges`), and
    its attack's prompts.csv scores as a suite's prompts file against its edit."""
    import json

    from test_user_facing import run as cli

    for folder, keys in (
        ("evaluate", {"suite", "model", "edit", "erased", "preserved", "n_per_prompt", "metrics", "per_concept"}),
        ("attack-seeds", {"attack", "concept", "config", "metrics", "per_prompt", "suite"}),
    ):
        assert keys <= set(json.loads((RELEASE / folder / "metrics.json").read_text())), folder
    out = tmp_path / "ev"
    result = cli(
        "evaluate", "--edit", RELEASE / "uce-star", "--suite", "world-objects", "--prompts-file",
        RELEASE / "attack-seeds" / "prompts.csv", "--n", "2", "--steps", "4", "--quiet", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    now = json.loads((out / "metrics.json").read_text())
    assert now["erased"] == ["star"] and now["metrics"]["esr_n"] == 4  # its 2 prompts x 2 images
    assert 0 <= now["metrics"]["esr@1"] <= 100 and now["judges"]["world"]["sha256"]
