"""AP and AGE: the Gumbel-softmax, the concept vocabulary R, the ascent of π, and the methods on a tiny model."""

import pytest
import torch

from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.core.vocab import load_vocabulary
from erasekit.methods import registry
from erasekit.methods.ap import preservation_gap
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.loop import student
from erasekit.methods.search import ConceptSearch, candidates, gumbel_softmax, kmeans_representatives
from erasekit.models.groups import select
from erasekit.report.plots import search_curve

WORDS = ["cat | kitty | tabby", "dog", "car", "tree", "house", "river", "apple", "chair"]


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("# animals and things\n" + "\n".join(WORDS) + "\n\n")
    return path


def config(name, vocab, **values):
    fast = {
        "iterations": 2,
        "batch": 1,
        "ddim_steps": 3,
        "vocab": str(vocab),
        "k_closest": 5,
        "num_centers": 0,
        "gumbel_lr": 0.5,
    }
    return registry.build_config(registry.get(name), values={**fast, **values})


def test_gumbel_hard_is_one_hot_forward_with_gradient_to_logits():
    logits = torch.randn(7, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        y = gumbel_softmax(logits, temperature=2.0, hard=True, topk=2, generator=gen)
        assert sorted(y.detach().tolist()).count(1.0) == 1 and (y.detach() == 0).sum() == 6
        (grad,) = torch.autograd.grad((y * torch.arange(7.0)).sum(), logits)
        assert grad.abs().sum() > 0, "straight-through: the one-hot sample must pass a gradient to π"


@pytest.mark.parametrize("k", [1, 2, 5])
def test_gumbel_soft_topk_sums_to_one_over_exactly_k_entries(k):
    logits = torch.zeros(9, requires_grad=True)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        y = gumbel_softmax(logits, temperature=0.1, hard=False, topk=k, generator=gen)
        assert int((y > 0).sum()) == k
        assert torch.isclose(y.sum(), torch.tensor(1.0))
    if k > 1:  # (a single renormalised entry is the constant 1)
        (grad,) = torch.autograd.grad((y * torch.arange(9.0)).sum(), logits)
        assert grad.abs().sum() > 0


def test_vocabulary_file_groups_synonyms_and_refuses_bad_files(vocab_file, tmp_path):
    vocab = load_vocabulary(str(vocab_file))
    assert vocab.concepts[:3] == ["cat", "kitty", "tabby"] and len(vocab.concepts) == 10
    assert vocab.group("Kitty") == {"cat", "kitty", "tabby"} and vocab.group("dog") == {"dog"}
    with pytest.raises(ErasekitError, match="vocabulary file not found"):
        load_vocabulary(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ErasekitError, match="holds no concepts"):
        load_vocabulary(str(tmp_path / "empty.txt"))
    with pytest.raises(ErasekitError, match="--set vocab=FILE"):
        load_vocabulary("")
    world = load_vocabulary("world")
    assert {"star", "starburst"} == world.group("star") and "yellow" in world.concepts


def test_R_excludes_the_erased_concept_and_its_synonyms_when_asked(tiny, vocab_file):
    vocab = load_vocabulary(str(vocab_file))
    names, emb = candidates(tiny, "kitty", vocab, k_closest=100, exclude_synonyms=True)
    assert not {"cat", "kitty", "tabby"} & set(names) and len(names) == 7 and len(emb) == 7
    with_synonyms, _ = candidates(tiny, "kitty", vocab, k_closest=100, exclude_synonyms=False)
    assert "kitty" not in with_synonyms and {"cat", "tabby"} <= set(with_synonyms)
    near, _ = candidates(tiny, "kitty", vocab, k_closest=3)
    assert near == names[:3]  # the 3 nearest, nearest first
    target = tiny.encode_prompts(["kitty"]).tokens.flatten(1)
    dists = [float((tiny.encode_prompts([w]).tokens.flatten(1) - target).norm()) for w in near]
    assert dists == sorted(dists)


def test_kmeans_representatives_are_distinct_and_cover_each_cluster():
    gen = torch.Generator().manual_seed(0)
    blobs = [torch.randn(10, 4, generator=gen) * 0.01 + c for c in (0.0, 5.0, -5.0)]
    chosen = kmeans_representatives(torch.cat(blobs), 3, seed=0)
    assert len(set(chosen)) == 3
    assert sorted(i // 10 for i in chosen) == [0, 1, 2]


def test_ap_inner_steps_ascend_the_preservation_loss(tiny, vocab_file):
    """π climbs toward the concept whose prediction the (perturbed) student changed most."""
    model, params = student(tiny, "xattn")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in params.values():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    names, emb = candidates(tiny, "cat", load_vocabulary(str(vocab_file)), k_closest=6)
    search = ConceptSearch([names], [emb], lr=0.2, temperature=2.0, hard=True, topk=2)
    z = torch.randn(2, *tiny.latent_shape, generator=gen)
    t = torch.full((2,), 500)

    def gain(c):
        return preservation_gap(tiny, model, z, t, c.expand(2), "eps")

    with torch.no_grad():
        per = torch.stack([gain(e) for e in emb])  # L2 of each concept of R

    def expected():
        return float((torch.softmax(search.logits[0].detach(), -1) * per).sum())

    before = expected()
    search.climb(0, torch.Generator().manual_seed(1), 60, gain)
    assert expected() > before + 0.5 * (float(per.max()) - before)
    assert search.top(0, 1)[0][0] == names[int(per.argmax())]


@pytest.mark.parametrize("method", ["ap", "age"])
def test_method_changes_only_its_group_and_logs_the_search(tiny, vocab_file, tmp_path, method):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    edit = registry.get(method).erase(
        tiny, ConceptSet(["cat"]), config(method, vocab_file, lr=1e-2), Run(work=tmp_path, progress=False)
    )
    allowed = {f"unet.{n}" for n in select(tiny.denoiser, "xattn")[0]}
    assert set(edit.tensors) == allowed
    params = dict(tiny.named_parameters())
    assert any(not torch.equal(v, params[k]) for k, v in edit.tensors.items())
    assert all(torch.equal(v, before[k]) for k, v in tiny.state_dict().items()), "the base bundle was modified"
    header, *rows = (tmp_path / "loss.csv").read_text().splitlines()
    assert {"erased", "searched", "top3"} <= set(header.split(",")) and len(rows) == 2
    top = edit.metrics["searched"]["cat"]
    assert len(top) == 3 and not {"cat", "kitty", "tabby"} & {w for w, _ in top}
    assert search_curve(tmp_path / "loss.csv", tmp_path / "search.png").stat().st_size > 1000


def test_search_curve_skips_runs_that_searched_nothing(tmp_path):
    (tmp_path / "loss.csv").write_text("step,loss,t\n0,0.5,10\n")
    assert search_curve(tmp_path / "loss.csv", tmp_path / "s.png") is None and not (tmp_path / "s.png").exists()


def test_ap_resume_matches_uninterrupted_including_the_search(tiny, vocab_file, tmp_path, interrupted_and_resumed):
    spec, cs = registry.get("ap"), ConceptSet(["cat", "dog"])
    cfg = config("ap", vocab_file, iterations=4, checkpoint_every=2, lr=1e-2)
    whole, resumed = interrupted_and_resumed(lambda run: spec.erase(tiny, cs, cfg, run))
    for k in whole.tensors:
        assert torch.equal(whole.tensors[k], resumed.tensors[k]), k
    assert whole.metrics["searched"] == resumed.metrics["searched"]
    assert (tmp_path / "whole" / "loss.csv").read_text() == (tmp_path / "cut" / "loss.csv").read_text()


def test_search_methods_refuse_bad_input(tiny, vocab_file):
    with pytest.raises(ErasekitError, match="age searches its target"):
        registry.get("age").erase(tiny, ConceptSet(["cat"], target="dog"), config("age", vocab_file))
    with pytest.raises(ErasekitError, match="--preserve is not used"):
        registry.get("ap").erase(tiny, ConceptSet(["cat"], ["dog"]), config("ap", vocab_file))
    with pytest.raises(ErasekitError, match="--set vocab=FILE"):
        registry.get("ap").erase(tiny, ConceptSet(["cat"]), config("ap", ""))
    with pytest.raises(ErasekitError, match="gumbel_temperature"):
        config("ap", vocab_file, gumbel_temperature=0)
    with pytest.raises(ErasekitError, match="unknown space"):
        config("age", vocab_file, space="pixels")
    assert registry.build_config(registry.get("ap"), preset="mini").vocab == "world"


@pytest.mark.parametrize(
    "mode, concepts, attributes, expected",
    [
        ("edit", ConceptSet(["cat"], target="dog"), ("old", "young"), {"dog", "old dog", "young dog"}),
        ("debias", ConceptSet(["cat"]), ("old", "young", "small"), {"old cat", "young cat", "small cat"}),
    ],
)
def test_age_eq_17_modes_search_the_given_variants_not_the_vocabulary(
    tiny, tmp_path, mode, concepts, attributes, expected
):
    cfg = config("age", "", mode=mode, attributes=attributes, iterations=3)
    edit = registry.get("age").erase(tiny, concepts, cfg, Run(work=tmp_path, progress=False))
    assert {w for w, _ in edit.metrics["searched"]["cat"]} <= expected
    assert edit.config["mode"] == mode and edit.config["gumbel_hard"] is True  # one member of C per step
    assert any(not torch.equal(v, dict(tiny.named_parameters())[k]) for k, v in edit.tensors.items())
    header, *rows = (tmp_path / "loss.csv").read_text().splitlines()
    column = header.split(",").index("searched")
    assert {row.split(",")[column] for row in rows} <= expected


def test_age_eq_17_modes_refuse_what_they_cannot_use(tiny):
    with pytest.raises(ErasekitError, match="give --target"):
        registry.get("age").erase(tiny, ConceptSet(["cat"]), config("age", "", mode="edit"))
    with pytest.raises(ErasekitError, match="at least two attributes"):
        config("age", "", mode="debias", attributes=("old",))
    with pytest.raises(ErasekitError, match="unknown AGE mode"):
        config("age", "", mode="swap")
