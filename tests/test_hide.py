"""Hide & Recover (issue 14): the key file and where p sits, Stage 1 (Eq. 15) and Stage 2 (Eq. 16) on the tiny model,
resume, the key's checks, the CLI (hide, recover, generate --key, evaluate --key) and its bad input; on the miniature,
that the key brings back what hiding took away."""

import json

import pytest
import torch
from safetensors.torch import save_file

from erasekit.core.conditioning import Conditioning
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.key import Key, mentions, splice, tail
from erasekit.core.loop import Run, read_log
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.hide import hide, recover, recover_config
from test_user_facing import assert_one_line_error as one_line_error
from test_user_facing import run as run_cli

SMALL = {
    "iterations": 4,
    "batch": 2,
    "ddim_steps": 2,
    "checkpoint_every": 2,
    "key_tokens": 3,
    "lr": 1e-3,
    "key_lr": 1e-2,
    "negative_guidance": 1.0,
}


def hide_config(**values):
    return registry.build_config(registry.get("hide"), values={**SMALL, **values})


@pytest.fixture(scope="module")
def hidden(tiny):
    """A tiny model with "a cat" hidden, and its key."""
    return hide(tiny, ConceptSet(["a cat"]), hide_config(), Run(progress=False))


def test_splice_replaces_only_the_last_k_positions_and_is_differentiable_in_p():
    cond = torch.randn(2, 77, 8)
    p = torch.randn(3, 8, requires_grad=True)
    out = splice(Conditioning(cond), p).tokens
    assert out.shape == cond.shape and torch.equal(out[:, :74], cond[:, :74])
    assert torch.equal(out[0, 74:], p.detach()) and torch.equal(out[1, 74:], p.detach())
    out.sum().backward()
    assert torch.equal(p.grad, torch.full_like(p, 2.0))
    assert torch.equal(tail(Conditioning(cond[1:]), 3), cond[1, 74:])


def test_mentions_matches_whole_words_only():
    assert mentions("A Star over the sea", "star") and mentions("a van gogh field", "van gogh")
    assert not mentions("a starfish", "star") and not mentions("a circle", "star")


def test_hiding_trains_the_key_from_the_concepts_own_conditioning_and_leaves_the_base(tiny, hidden):
    edit, key = hidden
    c_e = tail(tiny.encode_prompts(["a cat"]), 3)
    assert key.concepts == ["a cat"] and key.tokens == 3 and key.method == "hide"
    moved = float((key.prompts["a cat"] - c_e).norm() / c_e.norm())
    assert moved > 0 and moved == pytest.approx(edit.metrics["key_distance"]["a cat"], rel=1e-5)
    assert key.edit == edit.fingerprint() and key.model == edit.apply(tiny).fingerprint()
    assert edit.method == "hide" and all(".attn2." in k for k in edit.tensors)  # θ': cross-attention (xattn)


def test_the_key_conditions_only_prompts_of_its_concept(tiny, hidden):
    _, key = hidden
    cond = key.conditioning(tiny, ["a cat", "a dog"], ["a cat", None]).tokens
    plain = tiny.encode_prompts(["a cat", "a dog"]).tokens
    assert torch.equal(cond[1], plain[1]) and torch.equal(cond[0, :74], plain[0, :74])
    assert torch.allclose(cond[0, 74:], key.prompts["a cat"])
    with pytest.raises(ErasekitError, match="names none of the concepts this key unlocks"):
        key.conditioning(tiny, ["a dog"])
    with pytest.raises(ErasekitError, match="with a key of 3 vectors it may have at most 74"):
        key.conditioning(tiny, ["a cat " + "very " * 80])


def test_the_ours_star_variant_adds_a_preservation_term(tiny, tmp_path):
    for preserve, work in (([], tmp_path / "ours"), (["a dog"], tmp_path / "ours-star")):
        hide(tiny, ConceptSet(["a cat"], preserve), hide_config(iterations=2), Run(work=work, progress=False))
    plain, star = read_log(tmp_path / "ours" / "loss.csv"), read_log(tmp_path / "ours-star" / "loss.csv")
    assert len(plain) == len(star) == 2
    assert all({"l_hide", "l_key"} <= set(r) and "l_preserve" not in r for r in plain)
    assert all({"l_hide", "l_key", "l_preserve"} <= set(r) for r in star)


def test_an_interrupted_hiding_resumes_to_the_same_edit_and_key(tiny, interrupted_and_resumed):
    keys = []

    def erase(run):
        edit, key = hide(tiny, ConceptSet(["a cat"]), hide_config(), run)
        keys.append(key)
        return edit

    whole, resumed = interrupted_and_resumed(erase)
    assert all(torch.allclose(whole.tensors[k], resumed.tensors[k], atol=1e-6) for k in whole.tensors)
    assert torch.allclose(keys[0].prompts["a cat"], keys[-1].prompts["a cat"], atol=1e-6)


def test_recovery_stays_in_the_rho_ball_from_a_random_start(tiny, hidden):
    edit, _ = hidden
    c_e = tail(tiny.encode_prompts(["a cat"]), 3)
    for rho in (0.05, 0.5):
        config = recover_config(
            values={
                "iterations": 3,
                "batch": 2,
                "ddim_steps": 2,
                "key_tokens": 3,
                "lr": 1.0,
                "rho": rho,
                "start": "random",
            }
        )
        key = recover(tiny, edit, ["a cat"], config, Run(progress=False))
        distance = float((key.prompts["a cat"] - c_e).norm() / c_e.norm())
        assert 0 < distance <= rho * (1 + 1e-5)
        assert key.method == "recover" and key.edit == edit.fingerprint()


def test_rho_must_be_positive():
    for rho in (0, -1):
        with pytest.raises(ErasekitError, match="rho .* must be > 0"):
            recover_config(values={"rho": rho})


def test_a_key_file_round_trips_and_names_what_it_unlocks(tiny, hidden, tmp_path):
    edit, key = hidden
    path = key.save(tmp_path / "key.safetensors")
    back = Key.load(path)
    assert torch.equal(back.prompts["a cat"], key.prompts["a cat"].float())
    assert (back.edit, back.model, back.base, back.concepts) == (key.edit, key.model, key.base, key.concepts)
    back.check(edit.apply(tiny), edit)


def test_a_key_is_refused_by_another_edit_and_another_model(tiny, hidden):
    edit, key = hidden
    other = Edit.from_changes(tiny, {k: v + 1e-6 for k, v in edit.tensors.items()}, "hide", {}, edit.concepts)
    with pytest.raises(ErasekitError, match="not this edit"):
        key.check(other.apply(tiny), other)
    with pytest.raises(ErasekitError, match="pass the edit it was made with"):
        key.check(tiny)  # the base is not the hidden model


def test_corrupt_and_foreign_key_files_are_refused(tmp_path, hidden):
    _, key = hidden
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ErasekitError, match="corrupt key file"):
        Key.load(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ErasekitError, match="is not an erasekit key"):
        Key.load(tmp_path / "plain.safetensors")
    manifest = {**key.manifest(), "concepts": ["a dog"]}
    save_file(
        {"a cat": torch.zeros(3, 8)}, str(tmp_path / "odd.safetensors"), metadata={"erasekit_key": json.dumps(manifest)}
    )
    with pytest.raises(ErasekitError, match="do not match its manifest"):
        Key.load(tmp_path / "odd.safetensors")
    with pytest.raises(ErasekitError, match="key not found"):
        Key.load(tmp_path / "absent.safetensors")


# ---- the command line, on the miniature --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hidden_star(tmp_path_factory):
    """`erasekit hide --erase star` on the miniature at its preset: the run folder."""
    out = tmp_path_factory.mktemp("hide") / "hide-star"
    result = run_cli("hide", "--erase", "star", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "key.safetensors" in result.output
    return out


def test_hide_writes_the_edit_and_its_key_and_the_key_brings_the_star_back(hidden_star, tmp_path):
    from erasekit.eval.judges import world_judge
    from erasekit.models.load import load_bundle

    edit, key = Edit.load(hidden_star), Key.load(hidden_star / "key.safetensors")
    base = load_bundle("mini", device="cpu")
    hidden = edit.apply(base)
    seeds = list(range(1000, 1024))  # not the seeds hiding trained on (those are drawn at 0 .. 2^31 by step)
    judge = world_judge()
    without = judge.score(hidden.generate(["a star"] * 24, seeds)).top1("object")
    with_key = judge.score(hidden.generate(None, seeds, cond=key.conditioning(hidden, ["a star"] * 24))).top1("object")
    assert sum(o == "star" for o in without) <= 6  # hidden: at most a quarter
    assert sum(o == "star" for o in with_key) >= 15  # the key brings it back in most images
    assert sum(o == "star" for o in with_key) > 2 * sum(o == "star" for o in without)


def test_generate_and_evaluate_take_the_key(hidden_star, tmp_path):
    key = hidden_star / "key.safetensors"
    grid = tmp_path / "star.png"
    result = run_cli(
        "generate",
        "--edit",
        hidden_star,
        "--key",
        key,
        "--prompt",
        "a red star",
        "--n",
        2,
        "--steps",
        5,
        "--out",
        grid,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert grid.exists()
    out = tmp_path / "eval"
    result = run_cli(
        "evaluate",
        "--edit",
        hidden_star,
        "--key",
        key,
        "--suite",
        "world-objects",
        "--n",
        2,
        "--steps",
        5,
        "--out",
        out,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metrics"]["rsr_n"] == 2 and {"rsr@1", "rsr@5", "rsr@1_ci"} <= set(metrics["metrics"])
    assert set(metrics["per_concept"]["star"]) >= {"rsr@1", "rsr@5", "acc@1"}
    assert "with the key" in (out / "report.html").read_text()


def test_the_key_unlocks_the_exported_hidden_model_too(hidden_star, tmp_path):
    pipe = tmp_path / "hidden-pipe"
    assert run_cli("export", hidden_star, "--out", pipe).exit_code == 0
    assert not (pipe / "key.safetensors").exists()  # the key is not part of what is published
    result = run_cli(
        "generate",
        "--model",
        pipe,
        "--key",
        hidden_star / "key.safetensors",
        "--prompt",
        "a star",
        "--n",
        1,
        "--steps",
        3,
        "--out",
        tmp_path / "star.png",
        "--quiet",
    )
    assert result.exit_code == 0, result.output


def test_recover_writes_a_key_within_rho(hidden_star, tmp_path):
    out = tmp_path / "recovered.safetensors"
    result = run_cli(
        "recover",
        "--edit",
        hidden_star,
        "--concept",
        "star",
        "--set",
        "iterations=2",
        "--set",
        "rho=0.2",
        "--out",
        out,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    key = Key.load(out)
    assert key.method == "recover" and key.metrics["distance"]["star"] <= 0.2 + 1e-6
    assert not (tmp_path / "recovered.safetensors.partial").exists()


def test_bad_key_input_is_one_line_and_leaves_nothing(hidden_star, tmp_path):
    key = hidden_star / "key.safetensors"
    other = tmp_path / "other"
    Edit.load(hidden_star).save(other)  # same tensors: the key fits; now change one
    edit = Edit.load(other)
    name = next(iter(edit.tensors))
    edit.tensors[name] = edit.tensors[name] + 1e-3
    edit.save(other, overwrite=True)
    cases = [
        (("generate", "--edit", other, "--key", key, "--prompt", "a star"), "not this edit"),
        (("generate", "--key", key, "--prompt", "a star"), "pass the edit it was made with"),
        (("generate", "--edit", hidden_star, "--key", key, "--prompt", "a circle"), "names none of the concepts"),
        (
            ("evaluate", "--edit", hidden_star, "--key", key, "--suite", "world-objects", "--erased", "circle"),
            "none of the erased concepts",
        ),
        (("evaluate", "--edit", hidden_star, "--key", key, "--suite", "world-general"), "needs a suite whose prompts"),
        (
            ("generate", "--edit", hidden_star, "--key", tmp_path / "absent.safetensors", "--prompt", "a star"),
            "key not found",
        ),
        (("recover", "--edit", hidden_star, "--concept", "star", "--set", "rho=0"), "must be > 0"),
        (("recover", "--edit", hidden_star, "--concept", "star", "--set", "rho=-0.5"), "must be > 0"),
    ]
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00" * 16)
    cases.append(
        (
            ("generate", "--edit", hidden_star, "--key", tmp_path / "corrupt.safetensors", "--prompt", "a star"),
            "corrupt key file",
        )
    )
    for args, message in cases:
        out = tmp_path / "out"
        suffix = {"generate": ".png", "evaluate": "", "recover": ".safetensors"}[args[0]]
        one_line_error(run_cli(*args, "--out", f"{out}{suffix}", "--quiet"), message)
        assert not list(tmp_path.glob("out*")), args
