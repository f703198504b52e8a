"""On a CUDA GPU: every method, attack and the inspector with the model on the GPU (skipped without one; CI has none).

The CPU suite cannot see a tensor made on the CPU meeting one on the GPU; these checks can, and each of the failures
they found (MACE's attention positions, the concept search's weights, the inspector's sums, Ring-A-Bell's
population, the full graph's distances) raised exactly there.
Budgets are a few steps: what is checked is that each runs on the device and gives finite images, not how well it
erases (tests/test_erasure.py and the benchmarks do that on the CPU).

    .venv/bin/python -m pytest tests/test_cuda.py      # on a machine with a GPU
"""

import pytest
import torch

from erasekit.attacks import registry as attacks
from erasekit.attacks.goal import Goal
from erasekit.bench.graph import full_graphs
from erasekit.core.loop import Run
from erasekit.core.vocab import load_vocabulary
from erasekit.eval.attack import concept_detector
from erasekit.eval.inspect import InspectConfig, inspect_models, judged
from erasekit.eval.judges import method_scorer, world_judge
from erasekit.methods import registry as methods
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle
from erasekit.world.vocab import probe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SMALL = {
    "iterations": 2,
    "batch": 2,
    "pool_size": 4,
    "retain_size": 4,
    "max_loops": 1,
    "mine_iterations": 2,
    "circ_iterations": 2,
    "circ_batch": 2,
    "pgd_steps": 1,
    "ddim_steps": 4,
}
CASES = [(m.name, {}) for m in methods.available()] + [
    ("age", {"mode": "edit"}),
    ("age", {"mode": "debias", "attributes": ("yellow", "red")}),
    ("uce", {"mode": "edit"}),
]


@pytest.fixture(scope="module")
def mini():
    return load_bundle("mini", device="cuda")


def small_config(spec, values):
    fields = set(spec.config.__dataclass_fields__)
    return methods.build_config(
        spec, preset="mini", values={**{k: v for k, v in SMALL.items() if k in fields}, **values}
    )


def erase(mini, name, values):
    spec = methods.get(name)
    config = small_config(spec, values)
    concepts = ConceptSet(["circle"], target="square") if values.get("mode") == "edit" else ConceptSet(["star"])
    run = Run(progress=False, scorer=method_scorer(spec, mini, config, concepts))
    return spec.erase(mini, concepts, config, run)


@pytest.mark.parametrize("name,values", CASES, ids=[f"{n}-{v.get('mode', 'erase')}" for n, v in CASES])
def test_every_method_erases_on_the_gpu(mini, name, values):
    edited = erase(mini, name, values).apply(mini)
    images = edited.generate(["a star", "a circle"], [0, 1], steps=4)
    assert next(edited.denoiser.parameters()).is_cuda and torch.isfinite(images).all()


@pytest.mark.parametrize("name", [a.name for a in attacks.available()])
def test_every_attack_runs_on_the_gpu(mini, name):
    spec = attacks.get(name)
    fields = set(spec.config.__dataclass_fields__)
    small = {
        "iterations": 2,
        "generations": 2,
        "population": 8,
        "tries": 2,
        "images": 4,
        "max_prompts": 4,
        "check_every": 0,
        "batch": 2,
    }
    config = attacks.build_config(spec, preset="mini", values={k: v for k, v in small.items() if k in fields})
    goal = Goal(
        "star",
        ["a star"],
        [0],
        concept_detector(mini, "star"),
        base=mini,
        steps=4,
        pairs=[("a star", "a box")] if name == "ringabell" else [],
    )
    result = spec.run(mini, goal, config, Run(progress=False))
    assert result.prompts


@pytest.mark.parametrize("search", ["exhaustive", "gumbel"])
def test_inspect_ranks_on_the_gpu(mini, search):
    edited = erase(mini, "esd", {}).apply(mini)
    config = InspectConfig(
        probes=4,
        steps=5,
        search=search,
        exhaustive_max=5000 if search == "exhaustive" else 1,
        gumbel_iterations=3,
        shortlist=5,
    )
    blind = inspect_models(mini, edited, load_vocabulary("world"), config)
    known = inspect_models(mini, edited, load_vocabulary("world"), config, erased="star")
    assert all(r.l2 == r.l2 for r in blind.rows) and all(r.l1 is not None for r in known.rows)
    (shown,) = judged(mini, edited, ["star"], 2, probe, world_judge(), steps=4)
    assert shown.delta == shown.delta


def test_the_full_graph_runs_on_the_gpu(tmp_path):
    (graph,) = full_graphs(["uce"], tmp_path / "graph", n=1, progress=False).values()
    assert graph.delta.shape == (10, 10) and torch.isfinite(torch.as_tensor(graph.delta)).all()


@pytest.mark.parametrize("source", ["tiny-sdxl", "tiny-sd3", "tiny-flux"])
@pytest.mark.parametrize("name", ["esd", "uce", "darkminer", "hide"])
def test_every_family_erases_and_generates_on_the_gpu(source, name, tiny_clip):
    """The families' own code paths (SDXL's time ids, FLUX's ids and packing, SD3's padding) with the model on the
    GPU; tests/test_families.py runs the full method x family matrix on the CPU."""
    bundle = load_bundle(source, device="cuda")
    spec = methods.get(name)
    fields = set(spec.config.__dataclass_fields__)
    config = methods.build_config(
        spec, values={k: v for k, v in {**SMALL, "k": 2, "circ_images": 1}.items() if k in fields}
    )
    concepts = ConceptSet(["a cat"])
    run = Run(progress=False, scorer=method_scorer(spec, bundle, config, concepts, tiny_clip))
    edited = spec.erase(bundle, concepts, config, run).apply(bundle)
    images = edited.generate(["a photo of a cat"], [0], steps=2)
    assert next(edited.denoiser.parameters()).is_cuda and torch.isfinite(images).all()
