"""Judges' real loading code on tiny random-config models built here; NudeNet for real on a rendered image."""

import importlib.util

import numpy as np
import pytest
import torch

from erasekit.core.errors import ErasekitError
from erasekit.eval.judges import (
    IMAGENETTE,
    ClipJudge,
    NudeNetJudge,
    ResNetJudge,
    _preprocess,
    attribute_scorer,
    world_judge,
)


@pytest.fixture(scope="module")
def tiny_resnet(tmp_path_factory):
    from transformers import ResNetConfig, ResNetForImageClassification

    path = tmp_path_factory.mktemp("resnet")
    config = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1], num_labels=1000, layer_type="bottleneck"
    )
    ResNetForImageClassification(config).save_pretrained(path)
    return path


def test_resnet_judge_gives_imagenet_probabilities(tiny_resnet):
    probs = ResNetJudge(tiny_resnet).probs(torch.rand(3, 3, 64, 48))
    assert probs.shape == (3, 1000) and torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-5)


def test_imagenette_classes_map_to_their_imagenet_indices():
    assert ResNetJudge.label_index("English springer") == 217 and ResNetJudge.label_index("tench") == 0
    assert len(set(IMAGENETTE.values())) == 10
    with pytest.raises(ErasekitError, match="unknown Imagenette class 'cat'"):
        ResNetJudge.label_index("cat")


def test_missing_weights_say_what_to_download(tmp_path):
    with pytest.raises(ErasekitError, match="download microsoft/resnet-50 .* pass --resnet DIR"):
        ResNetJudge(tmp_path / "nothing")
    with pytest.raises(ErasekitError, match="download openai/clip-vit-large-patch14 .* pass --clip DIR"):
        ClipJudge(None)


def test_clip_judge_scores_image_text_pairs(tiny_clip):
    judge = ClipJudge(tiny_clip)
    sim = judge.similarity(torch.rand(2, 3, 40, 40), ["a red star", "a blue ring"])
    assert sim.shape == (2,) and bool(((sim >= -1) & (sim <= 1)).all())


def test_preprocess_resizes_crops_and_normalises():
    x = _preprocess(torch.ones(1, 3, 32, 64) * 0.485, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "cpu")
    assert x.shape == (1, 3, 224, 224) and abs(float(x[0, 0].mean())) < 1e-4


def test_preprocess_works_on_the_judges_device_whatever_device_the_images_are_on():
    """The meta device raises on a mix of devices as CUDA does: the mean and std must follow the images."""
    x = _preprocess(torch.ones(1, 3, 32, 64), 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "meta")
    assert x.device.type == "meta" and x.shape == (1, 3, 224, 224)


def test_clip_attribute_scorer_gives_each_image_a_distribution_over_the_attributes(tiny, tiny_clip):
    """UCE debias's judge off the miniature (the official code's CLIP zero-shot): [B, T], each row summing to 1.
    With B != T it once compared image i with text i only (and failed)."""
    probs = attribute_scorer(tiny, ("red", "blue", "green"), "star", tiny_clip)(torch.rand(5, 3, 16, 16))
    assert probs.shape == (5, 3) and torch.allclose(probs.sum(1), torch.ones(5), atol=1e-5)


def test_nudenet_detector_runs_for_real_on_a_rendered_image():
    pytest.importorskip("nudenet", reason="extra 'nudity' (installed by the dev extra in CI)")
    from erasekit.world.judge import to_tensor
    from erasekit.world.render import Labels, render

    image = to_tensor(render(Labels(np.array([0]), np.array([0]), np.array([0]), np.array([False])), seed=0))
    big = torch.nn.functional.interpolate(image, size=(256, 256), mode="nearest")
    detections = NudeNetJudge().detect(big)
    assert len(detections) == 1 and isinstance(detections[0], dict)
    assert all(v <= 0.3 for k, v in detections[0].items() if k.endswith("_EXPOSED"))  # a red circle is not nudity


def _mini_like():
    """Anything the world owns: it answers by the architecture the bundle reports."""
    from types import SimpleNamespace

    return SimpleNamespace(scale="mini", device="cpu")


def test_world_attribute_scorer_puts_the_attributes_first_and_keeps_every_other_colour():
    from erasekit.world.judge import to_tensor
    from erasekit.world.render import COLOUR_NAMES, Labels, render

    blue, orange = COLOUR_NAMES.index("blue"), COLOUR_NAMES.index("orange")
    images = to_tensor(
        render(Labels(np.array([0, 0]), np.array([blue, orange]), np.array([0, 0]), np.array([False, False])), seed=0)
    )
    scores = torch.as_tensor(attribute_scorer(_mini_like(), ("red", "blue"), "circle")(images))
    full = torch.as_tensor(world_judge().score(images).colour)
    assert scores.shape == full.shape
    assert torch.equal(scores[:, 0], full[:, COLOUR_NAMES.index("red")]) and torch.equal(scores[:, 1], full[:, blue])
    assert scores[0].argmax() == 1, "a blue circle is the second attribute"
    assert scores[1].argmax() >= 2, "an orange circle is neither red nor blue"
    with pytest.raises(ErasekitError, match="unknown attribute"):
        attribute_scorer(_mini_like(), ("red", "tall"), "circle")


class _FakeInception(torch.nn.Module):
    """The call signature of StyleGAN2-ADA's inception-2015-12-05.pt, with a tiny body."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert x.dtype == torch.uint8
        return torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 2).flatten(1)


class _FakeLpips(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)


def test_torchscript_fid_and_lpips_networks_load_and_score(tmp_path):
    from erasekit.eval.judges import InceptionFeatures, LpipsJudge

    torch.jit.script(_FakeInception()).save(str(tmp_path / "inception.pt"))
    torch.jit.script(_FakeLpips()).save(str(tmp_path / "lpips.pt"))
    x = torch.rand(5, 3, 16, 16)
    assert InceptionFeatures(tmp_path / "inception.pt")(x).shape == (5, 12)
    d = LpipsJudge(tmp_path / "lpips.pt")(x, torch.zeros_like(x))
    assert d.shape == (5,) and torch.allclose(d, (x * 2).mean(dim=(1, 2, 3)), atol=1e-5)


def test_missing_or_foreign_torchscript_is_named(tmp_path):
    from erasekit.eval.judges import InceptionFeatures, LpipsJudge

    with pytest.raises(ErasekitError, match="FID Inception network not found .* pass --inception FILE"):
        InceptionFeatures(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"not torchscript")
    with pytest.raises(ErasekitError, match="cannot load the LPIPS network"):
        LpipsJudge(tmp_path / "bad.pt")


def test_real_sd_suites_run_end_to_end_on_the_tiny_model(tiny, tiny_resnet, tiny_clip, tmp_path):
    from erasekit.eval.suites import SuiteRun, evaluate

    csv = tmp_path / "imagenette.csv"
    csv.write_text("prompt,evaluation_seed,class\nImage of tench,1,tench\nImage of church,2,church\n")
    result = evaluate(
        tiny, "imagenette", SuiteRun(n=2, steps=2, prompts_file=str(csv), resnet=str(tiny_resnet)), erased=["church"]
    )
    assert result.preserved == ["tench"] and {"esr@1", "esr@5", "psr@1", "psr@5"} <= set(result.metrics)
    coco = tmp_path / "coco.csv"
    coco.write_text("image_id,prompt,evaluation_seed\n1,a red bus,3\n")
    result = evaluate(tiny, "coco", SuiteRun(n=2, steps=2, prompts_file=str(coco), clip=str(tiny_clip)))
    assert 0 <= result.metrics["clip_score"] <= 100
    if importlib.util.find_spec("nudenet") is not None:
        i2p = tmp_path / "i2p.csv"
        i2p.write_text(
            "prompt,categories,nudity_percentage,evaluation_seed\na statue,sexual,60.0,5\na dog,violence,0,6\n"
        )
        result = evaluate(tiny, "i2p", SuiteRun(n=2, steps=2, prompts_file=str(i2p)))
        assert result.prompts == ["a statue", "a statue"]  # only the sexual category
        rates = {"ner@0.3", "ner@0.5", "ner@0.7", "ner@0.8"}
        assert set(result.metrics) == rates | {f"{r}_ci" for r in rates} | {"ner_n"}  # each rate with n, interval
        assert result.metrics["ner_n"] == 2


def test_missing_judge_fails_before_generating(tiny, tmp_path, monkeypatch):
    from erasekit.eval import suites

    csv = tmp_path / "imagenette.csv"
    csv.write_text("prompt,evaluation_seed,class\nImage of tench,1,tench\n")
    monkeypatch.setattr(suites, "generate_batched", lambda *a, **k: pytest.fail("generated before checking the judge"))
    with pytest.raises(ErasekitError, match="ResNet-50 weights not found"):
        suites.evaluate(tiny, "imagenette", suites.SuiteRun(prompts_file=str(csv)))


def test_uce_debias_runs_off_the_miniature_with_the_clip_judge(tiny, tiny_clip, tmp_path):
    from test_user_facing import run as cli

    result = cli(
        "erase",
        "--model",
        "tiny",
        "--method",
        "uce",
        "--erase",
        "star",
        "--set",
        "mode=debias",
        "--set",
        "attributes=red,blue",
        "--set",
        "debias_rounds=1",
        "--set",
        "debias_samples=2",
        "--set",
        "steps=2",
        "--clip",
        tiny_clip,
        "--quiet",
        "--out",
        tmp_path / "debias",
    )
    assert result.exit_code == 0, result.output
    assert "debias" in (tmp_path / "debias" / "manifest.json").read_text()
