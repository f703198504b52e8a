"""Each fine-tuning method *erases* on the shipped miniature: at a small budget it lowers the world judge's
probability of the erased object on held-out seeds, and leaves a kept object where it was.

The budgets are a fraction of the miniature presets (the benchmark, benchmarks/erase_world.py, runs those in full);
they are chosen so that the erased object's probability falls well past the bar while the suite stays fast. With the
loss replaced by a no-op the erased probability stays at the base model's (~1.0) and every test here fails.
"""

import numpy as np
import pytest
import torch

from erasekit.core.loop import Run
from erasekit.eval.judges import world_judge
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle
from erasekit.world.render import OBJECTS

ERASED, KEPT = "star", "moon"
SEEDS = list(range(5000, 5008))  # held out: the methods draw their own seeds from the step generator
STEPS = 10  # DDIM steps of the evaluation images
DROP = 0.3  # the erased object's probability falls by at least this much
KEEP = 0.05  # the kept object's probability moves by at most this much


@pytest.fixture(scope="module")
def world():
    mini, judge = load_bundle("mini", device="cpu"), world_judge()

    def probability(bundle, obj):
        images = bundle.generate([f"a {obj}"] * len(SEEDS), SEEDS, steps=STEPS)
        return float(np.mean(judge.score(images).object[:, OBJECTS.index(obj)].numpy()))

    return mini, probability, {o: probability(mini, o) for o in (ERASED, KEPT)}


def erases(world, method: str, **budget):
    mini, probability, base = world
    spec = registry.get(method)
    config = registry.build_config(spec, preset="mini", values=budget)
    torch.manual_seed(0)
    edited = spec.erase(mini, ConceptSet([ERASED]), config, Run(progress=False)).apply(mini)
    erased, kept = probability(edited, ERASED), probability(edited, KEPT)
    print(f"{method}: p({ERASED}) {base[ERASED]:.3f} -> {erased:.3f}, p({KEPT}) {base[KEPT]:.3f} -> {kept:.3f}")
    assert erased < base[ERASED] - DROP, f"{method}: p({ERASED}) {base[ERASED]:.3f} -> {erased:.3f}"
    assert abs(kept - base[KEPT]) < KEEP, f"{method}: p({KEPT}) {base[KEPT]:.3f} -> {kept:.3f}"


def test_esd_erases_the_object_and_keeps_another(world):
    erases(world, "esd", iterations=12, batch=4)


def test_target_erases_the_object_and_keeps_another(world):
    erases(world, "target", iterations=12, batch=4)


def test_ca_erases_the_object_and_keeps_another(world):
    erases(world, "ca", iterations=30, batch=8, pool_size=16)


def test_ap_erases_the_object_and_keeps_another(world):
    erases(world, "ap", iterations=10, batch=4)


def test_age_erases_the_object_and_keeps_another(world):
    erases(world, "age", iterations=20, batch=4)
