"""The shipped miniature and judge: they load, the judge is exact on renders, the miniature draws its prompts."""

import pytest
import torch
from diffusers import StableDiffusionPipeline

from erasekit.core.assets import ASSETS, mini_path
from erasekit.models.load import load_bundle
from erasekit.world.judge import WorldJudge, judge_accuracy


@pytest.fixture(scope="module")
def judge():
    return WorldJudge.load(ASSETS / "judge")


@pytest.fixture(scope="module")
def mini():
    return load_bundle("mini", device="cpu")


def test_judge_is_exact_on_held_out_renders(judge):
    acc = judge_accuracy(judge, n=400, seed=777)
    assert acc["object"] >= 98 and acc["colour"] >= 97 and acc["style"] >= 97 and acc["mark"] >= 97, acc


def test_judge_says_none_for_a_blank_image(judge):
    scores = judge.score(torch.full((2, 3, 32, 32), 0.5))
    assert scores.top1("object") == ["none", "none"]


def test_miniature_is_small_and_loads_in_stock_diffusers(mini):
    size = sum(p.stat().st_size for p in mini_path().rglob("*") if p.is_file())
    assert size <= 40 * 2**20
    pipe = StableDiffusionPipeline.from_pretrained(mini_path(), local_files_only=True)
    image = pipe(
        "a red star",
        num_inference_steps=25,
        guidance_scale=5.0,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
    ).images
    ours = mini.generate(["a red star"], [0], steps=25, guidance=5.0)
    assert torch.allclose(image, ours, atol=1e-4)


@pytest.mark.parametrize("obj", ["circle", "square", "star", "heart"])
def test_miniature_draws_the_prompted_object(mini, judge, obj):
    images = mini.generate([f"a {obj}"] * 4, [0, 1, 2, 3], steps=25, guidance=5.0)
    assert judge.score(images).top1("object").count(obj) >= 3


def test_miniature_obeys_colour(mini, judge):
    images = mini.generate(["a red circle", "a blue circle", "a green square", "a purple square"], [0, 1, 2, 3])
    assert judge.score(images).top1("colour") == ["red", "blue", "green", "purple"]


def test_mark_appears_when_named_and_not_otherwise(mini, judge):
    named = judge.score(mini.generate(["a circle with a mark"] * 4, [0, 1, 2, 3])).mark
    plain = judge.score(mini.generate(["a circle"] * 4, [0, 1, 2, 3])).mark
    assert (named > 0.5).sum() >= 3 and (plain > 0.5).sum() == 0


def test_unedited_miniature_esr1_is_the_judges_miss_rate(mini, judge):
    from erasekit.eval.suites import Judges, SuiteRun, evaluate
    from erasekit.world.render import OBJECTS

    result = evaluate(mini, "world-objects", SuiteRun(n=4), erased=list(OBJECTS), preserved=[], judges=Judges(judge))
    m = result.metrics
    assert m["esr@1"] == pytest.approx(100 - m["acc@1"]) and "psr@1" not in m
    assert m["acc@1"] >= 80  # consistent with the world-quality benchmark's object bar
    assert m["esr@5"] <= m["esr@1"]
