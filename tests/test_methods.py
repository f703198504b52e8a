"""The erasure methods on a tiny random model: what each changes, the closed form, resume and the NaN guard."""

import json

import pytest
import torch

from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run, train
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.esd import ESD_GROUPS
from erasekit.methods.uce import aligned, projections
from erasekit.models.groups import select

FAST = {"iterations": 2, "batch": 1, "ddim_steps": 3}


def config(name, **values):
    spec = registry.get(name)
    fast = {k: v for k, v in {**FAST, "pool_size": 2}.items() if k in spec.config.__dataclass_fields__}
    return registry.build_config(spec, values={**fast, **values})


def changed(base, edit):
    """Names (edit style) of parameters whose values the edit changes."""
    params = dict(base.named_parameters())
    return {k for k, v in edit.tensors.items() if not torch.equal(v, params[k].detach())}


@pytest.mark.parametrize(
    "method,group",
    [
        ("esd", "esd-x"),
        ("esd", "esd-u"),
        ("esd", "esd-x-strict"),
        ("esd", "esd-all"),
        ("target", "xattn"),
        ("ca", "xattn-kv"),
    ],
)
def test_method_changes_only_its_group(tiny, method, group):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    cfg = config(method, group=group, lr=1e-2)
    edit = registry.get(method).erase(tiny, ConceptSet(["a cat"], ["a dog"]), cfg, Run(progress=False))
    unet_group = ESD_GROUPS.get(group, group)
    allowed = {f"unet.{n}" for n in select(tiny.denoiser, unet_group)[0]}
    assert set(edit.tensors) == allowed
    assert changed(tiny, edit), "the edit changed nothing"
    assert all(torch.equal(v, before[k]) for k, v in tiny.state_dict().items()), "the base bundle was modified"
    applied = dict(edit.apply(tiny).named_parameters())
    outside = [k for k, v in tiny.named_parameters() if k not in allowed and not torch.equal(v, applied[k])]
    assert not outside


def test_esd_pool_source_runs(tiny):
    edit = registry.get("esd").erase(
        tiny, ConceptSet(["a cat"]), config("esd", z_source="pool", lr=1e-2), Run(progress=False)
    )
    assert changed(tiny, edit)


def test_ca_noise_mode_differs_from_model_mode(tiny):
    a = registry.get("ca").erase(
        tiny, ConceptSet(["a cat"], anchor="a dog"), config("ca", lr=1e-2), Run(progress=False)
    )
    b = registry.get("ca").erase(
        tiny, ConceptSet(["a cat"], anchor="a dog"), config("ca", lr=1e-2, mode="noise"), Run(progress=False)
    )
    assert any(not torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)


# ---- UCE / TIME -------------------------------------------------------------------------------------------
def _uce(tiny, concepts, **values):
    return registry.get("uce").erase(tiny, concepts, config("uce", **values), Run(progress=False))


@pytest.fixture(scope="module")
def mini():
    from erasekit.models.load import load_bundle

    return load_bundle("mini", device="cpu")


def test_uce_maps_erased_to_target_and_keeps_preserved(mini):
    """On the miniature's trained text encoder (a random one makes all prompts' embeddings nearly collinear)."""
    edit = _uce(mini, ConceptSet(["circle"], ["star", "heart"], target="square"), mode="edit")
    assert set(edit.tensors) == set(projections(mini))
    C_e, C_t = (e["tokens"] for e in aligned(mini, "circle", "square"))
    for name, (proj, _) in projections(mini).items():
        W0, W = proj.weight.double(), edit.tensors[name].double()
        moved = (C_e @ W.T - C_t @ W0.T).norm() / (C_e @ W0.T - C_t @ W0.T).norm()
        assert moved < 0.05, f"{name}: erased keys/values only {1 - moved:.0%} of the way to the target's"
        for p in ("star", "heart"):
            C_p = aligned(mini, p, p)[0]["tokens"]
            drift = (C_p @ W.T - C_p @ W0.T).norm() / (C_p @ W0.T).norm()
            assert drift < 0.05, f"{name}: preserved {p!r} moved by {drift:.1%}"


def test_uce_solution_is_the_minimiser(tiny):
    """The gradient of Eq. 5 vanishes at the solved W (so the Cholesky solve is the closed form)."""
    from erasekit.methods.uce import solve

    torch.manual_seed(0)
    W0 = torch.randn(6, 5, dtype=torch.float64)
    C, T, P = (torch.randn(4, 5, dtype=torch.float64) for _ in range(3))
    W = solve(W0, [(C, T @ W0.T)], [P], lamb=0.3).requires_grad_(True)
    loss = ((C @ W.T - T @ W0.T) ** 2).sum() + ((P @ W.T - P @ W0.T) ** 2).sum() + 0.3 * ((W - W0) ** 2).sum()
    loss.backward()
    assert W.grad.abs().max() < 1e-9


def test_time_has_no_preservation_set(tiny):
    with pytest.raises(ErasekitError, match="no preservation set"):
        registry.get("time").erase(tiny, ConceptSet(["cat"], ["dog"]), config("time"), Run(progress=False))
    edit = registry.get("time").erase(tiny, ConceptSet(["cat"]), config("time"), Run(progress=False))
    assert set(edit.tensors) == set(projections(tiny))


def test_uce_edit_needs_a_target(tiny):
    with pytest.raises(ErasekitError, match="--target"):
        _uce(tiny, ConceptSet(["cat"]), mode="edit")


def _debias(tiny, classes: int, script, attributes=("red", "blue"), **values):
    """UCE debias on `tiny` whose judge, at its n-th call, puts image i in class script(n, i) of `classes` (the
    attributes first). Returns the edit and how many images each call judged."""
    calls = []

    def scorer(images):
        calls.append(len(images))
        probs = torch.zeros(len(images), classes)
        probs[torch.arange(len(images)), [script(len(calls), i) for i in range(len(images))]] = 1
        return probs

    cfg = config("uce", **{"mode": "debias", "attributes": attributes, "debias_samples": 3, "steps": 2, **values})
    return registry.get("uce").erase(tiny, ConceptSet(["cat"]), cfg, Run(progress=False, scorer=scorer)), calls


def test_uce_debias_moves_alpha_toward_the_underrepresented_with_a_decaying_step(tiny):
    # round 1: all attribute 0; round 2: all attribute 1; round 3: equal shares (the goal)
    edit, calls = _debias(
        tiny,
        3,
        lambda n, i: n - 1 if n <= 2 else i % 3,
        ("red", "blue", "green"),
        debias_rounds=5,
        debias_step=0.5,
        debias_decay=0.6,
    )
    assert len(calls) == 3, "debias should stop once the shares are equal"
    alpha = edit.metrics["debias_alpha"]["cat"]  # α_t += γ_k (1/3 − share_t), γ_k = 0.5 / (k + 1)^0.6
    g0, g1 = 0.5, 0.5 / 2**0.6
    assert alpha["red"] == pytest.approx(1 / 3 + g0 * (1 / 3 - 1) + g1 / 3)
    assert alpha["blue"] == pytest.approx(1 / 3 + g0 / 3 + g1 * (1 / 3 - 1))
    assert alpha["green"] == pytest.approx(1 / 3 + g0 / 3 + g1 / 3)
    assert edit.metrics["debias_shares"]["cat"]["red"] == pytest.approx(1 / 3)
    with pytest.raises(ErasekitError, match="scorer"):
        _uce(tiny, ConceptSet(["cat"]), mode="debias", attributes=("red", "blue"))


def test_uce_debias_counts_a_class_beyond_the_attributes_for_none_of_them(tiny):
    # columns: red, blue, then a third class the judge knows; round 1 all of it, then an equal share
    edit, calls = _debias(
        tiny, 3, lambda n, i: 2 if n == 1 else i % 2, debias_samples=2, debias_rounds=3, debias_step=0.5
    )
    assert len(calls) == 2
    assert edit.metrics["debias_alpha"]["cat"] == pytest.approx({"red": 0.75, "blue": 0.75})  # ½ + ½ (½ − 0)
    assert edit.metrics["debias_shares"]["cat"] == pytest.approx({"red": 0.5, "blue": 0.5, "other": 0.0})


def test_uce_debias_keeps_the_round_closest_to_uniform_even_when_an_attribute_never_shows(tiny):
    # rounds 1 and 3: all a third class; round 2: all red. Blue never shows.
    edit, calls = _debias(tiny, 3, lambda n, i: 0 if n == 2 else 2, debias_rounds=3, debias_step=0.5)
    assert len(calls) == 3
    assert edit.metrics["debias_shares"]["cat"] == pytest.approx({"red": 1.0, "blue": 0.0, "other": 0.0})
    assert edit.metrics["debias_alpha"]["cat"] == pytest.approx({"red": 0.75, "blue": 0.75})


def test_uce_debias_balances_each_prompt_not_their_pool(tiny):
    # "cat" all red and "a cat" all blue: an equal share pooled, biased in each prompt
    edit, calls = _debias(tiny, 2, lambda n, i: (n - 1) % 2, templates=("{}", "a {}"), debias_rounds=2)
    assert len(calls) == 4, "pooled shares looked equal, but each prompt is biased: debias must go on"
    shares, alpha = edit.metrics["debias_shares"], edit.metrics["debias_alpha"]
    assert shares["cat"]["red"] == 1 and shares["a cat"]["blue"] == 1
    assert alpha["cat"] == pytest.approx({"red": 0.5, "blue": 0.5}), "the best round is the first"


# ---- the loop ---------------------------------------------------------------------------------------------
def test_resume_after_interruption_matches_uninterrupted(tiny, tmp_path, interrupted_and_resumed):
    spec, cs = registry.get("esd"), ConceptSet(["a cat"])
    cfg = config("esd", iterations=4, checkpoint_every=2, lr=1e-2)
    whole, resumed = interrupted_and_resumed(lambda run: spec.erase(tiny, cs, cfg, run))
    for k in whole.tensors:
        assert torch.equal(whole.tensors[k], resumed.tensors[k]), k
    steps = [line.split(",")[0] for line in (tmp_path / "cut" / "loss.csv").read_text().splitlines()[1:]]
    assert steps == ["0", "1", "2", "3"]


def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(tmp_path):
    p = torch.nn.Parameter(torch.ones(3))

    def loss_fn(step):
        return (p.sum() * (float("nan") if step == 3 else 1.0)), {}

    with pytest.raises(ErasekitError, match=r"loss is nan at iteration 3.*last good checkpoint.*step 2"):
        train("t", loss_fn, [p], 6, 0.1, Run(work=tmp_path, progress=False), checkpoint_every=2)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 2


def test_train_reports_each_steps_wall_time_on_the_run_clock():
    p = torch.nn.Parameter(torch.ones(3))
    clock = []
    train("t", lambda step: (p.square().sum(), {}), [p], 3, 0.1, Run(progress=False, clock=clock))
    assert [c[0] for c in clock] == [0, 1, 2]
    assert all(start <= end for _, start, end in clock) and clock[0][2] <= clock[1][1]


# ---- configs ----------------------------------------------------------------------------------------------
def test_configs_refuse_bad_input(tmp_path):
    spec = registry.get("esd")
    with pytest.raises(ErasekitError, match="unknown method 'nope'"):
        registry.get("nope")
    with pytest.raises(ErasekitError, match="unknown option.*bogus"):
        registry.build_config(spec, overrides=["bogus=1"])
    with pytest.raises(ErasekitError, match="learning rate"):
        registry.build_config(spec, overrides=["lr=-1"])
    with pytest.raises(ErasekitError, match="option lr is nan"):
        registry.build_config(spec, overrides=["lr=nan"])
    with pytest.raises(ErasekitError, match="expected an integer"):
        registry.build_config(spec, overrides=["iterations=many"])
    with pytest.raises(ErasekitError, match="unknown ESD variant"):
        registry.build_config(spec, overrides=["group=esd-z"])
    (tmp_path / "c.yaml").write_text("iterations: 7\nnegative_guidance: 2\n")
    cfg = registry.build_config(spec, tmp_path / "c.yaml", ["negative_guidance=3"])
    assert (cfg.iterations, cfg.negative_guidance, cfg.lr) == (7, 3.0, 1e-5)
    (tmp_path / "bad.yaml").write_text("[1, 2")
    with pytest.raises(ErasekitError, match="corrupt config file"):
        registry.build_config(spec, tmp_path / "bad.yaml")
    assert registry.build_config(spec, preset="mini").iterations == spec.presets["mini"]["iterations"] != 1000
    with pytest.raises(ErasekitError, match="empty concept list"):
        ConceptSet([" ", ""])
    with pytest.raises(ErasekitError, match="both erased and preserved"):
        ConceptSet(["cat"], ["cat"])


def test_a_method_that_declares_a_scorer_gets_one_from_the_command_line(tmp_path, monkeypatch):
    from dataclasses import dataclass

    from click.testing import CliRunner

    from erasekit.cli import main
    from erasekit.core.edit import Edit
    from erasekit.core.options import Checked

    @dataclass
    class ProbeConfig(Checked):
        attributes: tuple = ("red", "blue")
        judge: bool = True

    seen = {}

    def probe(bundle, concepts, config, run):
        seen["scorer"] = run.scorer
        return Edit.from_changes(bundle, {}, "probe", config, concepts.as_dict())

    registry.get("esd")  # load the registered methods first, so that the probe is not wiped by the load
    monkeypatch.setitem(
        registry.METHODS,
        "probe",
        registry.Method(
            "probe", "a probe", ProbeConfig, probe, scorer=lambda config: "attributes" if config.judge else None
        ),
    )
    result = CliRunner().invoke(main, ["erase", "--method", "probe", "--erase", "star", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    images = torch.rand(2, 3, 32, 32)
    assert seen["scorer"](images).shape == (2, 8)  # the world judge's colours, the two attributes first
    CliRunner().invoke(
        main, ["erase", "--method", "probe", "--erase", "star", "--set", "judge=false", "--out", str(tmp_path / "b")]
    )
    assert seen["scorer"] is None


def test_uce_last_token_edits_one_vector_per_prompt_as_the_current_official_script(mini):
    """tokens=last: W = (λ W0 + Σ W0 c_t c_eᵀ + Σ W0 c_p c_pᵀ)(λ I + Σ c_e c_eᵀ + Σ c_p c_pᵀ)⁻¹ with c the text
    encoder's output at each prompt's last word token (trainscripts/uce_sd_erase.py), for every projection."""
    from erasekit.methods.uce import aligned

    edit = _uce(mini, ConceptSet(["star"], ["moon"], target="heart"), tokens="last", templates=("{}",))
    C_e, C_t = (e["tokens"] for e in aligned(mini, "star", "heart", "last"))
    C_p = aligned(mini, "moon", "moon", "last")[0]["tokens"]
    assert C_e.shape[0] == C_t.shape[0] == 1
    last = mini.text.count("star") - 2  # start, the word, end
    assert torch.allclose(C_e[0], mini.encode_prompts(["star"]).tokens[0, last].double(), atol=1e-6)
    lamb = registry.build_config(registry.get("uce")).lamb
    for name, (proj, _) in projections(mini).items():
        W0 = proj.weight.double()
        M1 = lamb * W0 + (C_t @ W0.T).T @ C_e + (C_p @ W0.T).T @ C_p
        M2 = lamb * torch.eye(W0.shape[1], dtype=torch.float64) + C_e.T @ C_e + C_p.T @ C_p
        assert torch.allclose(edit.tensors[name].double(), M1 @ torch.linalg.inv(M2), atol=1e-5), name
    to_end = _uce(mini, ConceptSet(["star"], ["moon"], target="heart"), templates=("{}",))
    assert any(not torch.allclose(to_end.tensors[k], edit.tensors[k]) for k in edit.tensors)


def test_esd_base_trajectory_samples_z_t_with_the_frozen_base(tiny):
    from erasekit.methods.latents import ZSampler

    cfg = config("esd", z_source="base-trajectory")
    model = tiny.clone(("unet",))
    conds = tiny.encode_prompts(["a cat"])
    assert ZSampler(model, tiny, conds, tiny.encode_prompts([""]), cfg).model is tiny
    assert ZSampler(model, tiny, conds, tiny.encode_prompts([""]), config("esd")).model is model
    esd = registry.get("esd").erase
    a = esd(tiny, ConceptSet(["a cat"]), config("esd", lr=1e-2, iterations=3), Run(progress=False))
    b = esd(
        tiny,
        ConceptSet(["a cat"]),
        config("esd", lr=1e-2, iterations=3, z_source="base-trajectory"),
        Run(progress=False),
    )
    assert any(not torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
