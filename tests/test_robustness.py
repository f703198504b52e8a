"""The robustness frontier (issue 30): the relearning attack, the calibrated ASR (the original prompt stays a
candidate) and the worst case over attacks."""

import json

import numpy as np
import pytest
import torch

from erasekit.attacks import registry
from erasekit.attacks.goal import AdversarialPrompt, AttackResult
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.eval import attack as A
from test_attacks import star_goal
from test_user_facing import assert_one_line_error as one_line_error
from test_user_facing import run as run_cli


def relearn_config(**values):
    spec = registry.get("relearn")
    base = {"images": 4, "batch": 2, "budgets": (0, 1, 3, 4), "budget": 3, "checkpoint_every": 2}
    return spec, registry.build_config(spec, preset="mini", values=base | values)


def test_relearn_trains_only_its_group_keeps_every_budget_and_resumes_exactly(mini, interrupted_and_resumed):
    spec, config = relearn_config()
    goal = star_goal(mini)
    whole, resumed = interrupted_and_resumed(lambda run: spec.run(mini, goal, config, run))
    assert sorted(whole.stages) == [0, 1, 3, 4] and whole.weights is whole.stages[3]
    params = dict(mini.named_parameters())
    for steps, stage in whole.stages.items():
        assert stage.kind == "weights" and stage.base["fingerprint"] == mini.fingerprint()
        assert all(".attn2." in name for name in stage.tensors)  # the cross-attention, the attacker's default
        assert all(torch.equal(stage.tensors[k], resumed.stages[steps].tensors[k]) for k in stage.tensors)
        moved = sum(float((stage.tensors[k] - params[k]).abs().sum()) for k in stage.tensors)
        assert (moved == 0) == (steps == 0)  # step 0 is the attacked model itself; every later one has trained
    assert whole.prompts[0].prompt == whole.prompts[0].original  # the prompts are the goal's own


def test_relearn_on_the_whole_denoiser_trains_more_than_the_cross_attention(mini):
    spec, config = relearn_config(group="full", budgets=(1,), budget=1)
    result = spec.run(mini, star_goal(mini), config, None)
    assert any(".attn1." in name for name in result.weights.tensors) and len(result.stages) == 1


def test_relearn_from_the_command_line_writes_its_curve_and_the_relearned_edit(tmp_path, mini):
    out = tmp_path / "atk"
    result = run_cli(
        "attack", "mini", "--attack", "relearn", "--concept", "star", "--limit", "1", "--n", "2", "--steps", "4",
        "--set", "images=4", "--set", "budgets=0,2", "--set", "budget=2", "--quiet", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert [p["steps"] for p in m["curve"]] == [0, 2] and all(p["rate_n"] == 2 for p in m["curve"])
    assert m["curve"][0]["rate"] == m["pre_attack_rate"] and m["curve"][1]["rate"] == m["asr"]
    relearned = Edit.load(out / "relearned")
    assert relearned.method == "relearn" and relearned.apply(mini).fingerprint() != mini.fingerprint()
    assert "after    2 steps" in result.output


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["budget=0", "budgets=0,5"], "relearn budget must be at least 1 step"),
        (["budgets=0,5", "budget=20"], "relearn budget 20 must be one of the budgets [0, 5]"),
        (["budgets=5,x"], "relearn budgets must be step counts"),
        (["group=nosuch"], "unknown parameter group 'nosuch'"),
    ],
)
def test_bad_relearn_options_are_one_line_and_leave_nothing(tmp_path, overrides, message):
    out = tmp_path / "atk"
    sets = [a for o in overrides for a in ("--set", o)]
    result = run_cli("attack", "mini", "--attack", "relearn", "--concept", "star", *sets, "--quiet", "--out", out)
    one_line_error(result, message)
    assert not out.exists() and not (tmp_path / "atk.partial").exists()


def test_the_calibrated_rate_keeps_the_original_prompt_and_folds_extra_seeds_into_the_slots(mini, monkeypatch):
    def fake_images(model, prompts, seeds, **kw):  # the original draws the concept at seed 1; "adv" at seeds 0, 6
        seen = [(p == "a star" and s == 1) or ("adv" in p and s in (0, 6)) for p, s in zip(prompts, seeds, strict=True)]
        return torch.stack([torch.full((3, 4, 4), float(v)) for v in seen])

    monkeypatch.setattr(A, "generate_batched", fake_images)
    goal = star_goal(mini, detect=lambda im: im.mean((1, 2, 3)) > 0.5, prompts=("a star", "a box"))
    result = AttackResult(
        "x",
        "star",
        {},
        [AdversarialPrompt(0, "a star", "adv 1"), AdversarialPrompt(1, "a box", "adv 2", seeds=list(range(4, 8)))],
    )
    m = A.evaluate_attack(result, goal, mini, mini, A.AttackRun(n=2, progress=False)).metrics
    # prompt 0, seeds 0, 1: adversarial at 0, original at 1 -> both slots. Prompt 1 brings seeds 4..7: slot j mod 2,
    # seed 6 (its third) breaks slot 0 -> 3 of 4 slots, where the attacked images alone are 2 of 6.
    assert m["asr"] == pytest.approx(100 * 2 / 6) and m["pre_attack_rate"] == 25.0
    assert m["broken"] == [[1, 1], [1, 0]] and m["asr_cal"] == 75.0 and m["asr_cal_n"] == 4
    assert m["asr_cal_prompts"] == 100.0 and m["asr_cal_ci"][0] < 75.0 < m["asr_cal_ci"][1]


def test_the_worst_case_is_the_union_per_prompt_and_seed():
    out = A.worst_case({"a": [[1, 0], [0, 0]], "b": [[0, 0], [0, 1]], "c": [[1, 0], [0, 0]]})
    assert out["asr_any"] == 50.0 and out["asr_any_n"] == 4 and out["asr_any_prompts"] == 100.0
    assert out["asr_any_attacks"] == ["a", "b", "c"]
    assert np.isclose(A.worst_case({"a": [[0, 0]]})["asr_any"], 0.0)
    with pytest.raises(ErasekitError, match="different prompts or seeds"):
        A.worst_case({"a": [[1, 0]], "b": [[1, 0, 0]]})


# ---- RECE ----------------------------------------------------------------------------------------------------


def test_rece_finds_the_embedding_that_minimises_its_objective():
    from erasekit.methods.rece import adversarial

    g = torch.Generator().manual_seed(0)
    W = {k: torch.randn(6, 5, generator=g, dtype=torch.float64) for k in "ab"}
    W0 = {k: torch.randn(6, 5, generator=g, dtype=torch.float64) for k in "ab"}
    c = torch.randn(3, 5, generator=g, dtype=torch.float64)
    c_adv = adversarial(W, W0, c, 0.1).requires_grad_(True)
    objective = sum(((c_adv @ W[k].T - c @ W0[k].T) ** 2).sum() for k in W) + 0.1 * (c_adv**2).sum()
    (grad,) = torch.autograd.grad(objective, c_adv)
    assert grad.abs().max() < 1e-9  # the closed form is the minimiser: its gradient vanishes


def test_rece_epochs_leave_the_concept_harder_to_reach_than_its_uce_start(mini):
    from erasekit.methods import registry as methods
    from erasekit.methods.concepts import ConceptSet

    spec = methods.get("rece")
    config = methods.build_config(spec, preset="mini", values={"epochs": 2})
    edit = spec.erase(mini, ConceptSet(["star"]), config, None)
    residuals = edit.metrics["residual_by_epoch"]
    assert len(residuals) == 3 and residuals[2] > residuals[1] > residuals[0]  # [0]: the UCE edit it starts from
    uce = methods.get("uce")
    start = uce.erase(mini, ConceptSet(["star"]), methods.build_config(uce, preset="mini"), None)
    assert set(edit.tensors) == set(start.tensors)  # the same projections: the cross-attention keys and values
    assert any(not torch.equal(edit.tensors[k], start.tensors[k]) for k in edit.tensors)


def test_bad_rece_options_are_one_line(tmp_path):
    out = tmp_path / "e"
    result = run_cli(
        "erase", "--model", "mini", "--method", "rece", "--erase", "star", "--set", "regular=0", "--out", out
    )
    one_line_error(result, "regular must be > 0")
    assert not out.exists()


# ---- MMA-Diffusion -------------------------------------------------------------------------------------------


def mma_run(mini, work=None, resume=False, **values):
    from erasekit.core.loop import Run

    spec = registry.get("mma")
    config = registry.build_config(spec, preset="mini", values={"iterations": 6, "checkpoint_every": 3} | values)
    return spec.run(mini, star_goal(mini, prompts=("a star", "a red star")), config, Run(work=work, resume=resume))


def test_mma_finds_a_prompt_without_banned_words_that_moves_toward_its_target(mini):
    result = mma_run(mini, banned=("moon", "ring"))
    for p in result.prompts:
        assert len(p.prompt.split()) == 8 and p.prompt != p.original
        assert not any(w in p.prompt for w in ("star", "moon", "ring"))  # the concept's words and the banned ones
        assert min(p.loss) < p.loss[0] or p.loss[0] < 0.05  # GCG moves toward the target's sentence embedding
    from erasekit.attacks.mma import allowed

    ids = allowed(mini, "world", ["star"])
    assert not any("star" in t for t in mini.text.tokens(ids.tolist()))


def test_a_killed_mma_search_resumes_to_the_same_prompts(mini, tmp_path, monkeypatch):
    import erasekit.attacks.mma as mma

    whole = mma_run(mini, tmp_path / "whole")
    real, calls = mma.write_text, []

    def die_on_third(*args, **kw):
        real(*args, **kw)
        calls.append(1)
        if len(calls) == 3:  # prompt 1 done (two checkpoints), its line in prompts.jsonl written: then prompt 2's first
            raise KeyboardInterrupt

    monkeypatch.setattr(mma, "write_text", die_on_third)
    with pytest.raises(KeyboardInterrupt):
        mma_run(mini, tmp_path / "cut")
    monkeypatch.setattr(mma, "write_text", real)
    resumed = mma_run(mini, tmp_path / "cut", resume=True)
    assert [p.prompt for p in resumed.prompts] == [p.prompt for p in whole.prompts]
    assert resumed.prompts[1].loss == pytest.approx(whole.prompts[1].loss, rel=1e-5)


def test_mma_banning_every_token_is_one_line(tmp_path):
    out = tmp_path / "atk"
    result = run_cli(
        "attack", "--model", "mini", "--attack", "mma", "--concept", "star", "--set", "banned=a,e,i,o,u,y",
        "--quiet", "--out", out,
    )  # fmt: skip
    one_line_error(result, "leave no token")
    assert not out.exists()


def test_the_robust_spec_attacks_with_every_attack_and_the_robust_erasers():
    from pathlib import Path

    from erasekit.bench.spec import load_spec

    spec = load_spec(Path(__file__).parents[1] / "benchmarks" / "specs" / "robust.yaml")
    assert sorted(spec.attacks["names"]) == sorted(a.name for a in registry.available())
    assert {"rece", "darkminer", "esd"} <= {m.name for m in spec.methods}


def test_mma_scores_a_prompt_as_its_text_encodes(mini):
    """The loss the search reports for its best prompt is the found text's own: CLIP pools at the end token, which the
    token ids locate, so a search that scored candidates with placeholder ids scored only their first token."""
    result = mma_run(mini)
    for p in result.prompts:
        found, target = (mini.text.sentence(mini.text.tokenize([t])) for t in (p.prompt, p.original))
        loss = 1 - torch.nn.functional.cosine_similarity(found, target).item()
        assert loss == pytest.approx(min(p.loss), abs=1e-4)
