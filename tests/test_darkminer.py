"""Dark Miner (issue 13): the loop's stages on the tiny model with scripted verifiers, resume across loops, the LoRA
edit and its export for stock diffusers, and bad input."""

import json
import subprocess
import sys

import pytest
import torch

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.methods import darkminer, registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.export import export
from test_user_facing import assert_one_line_error as one_line_error
from test_user_facing import run as run_cli

SMALL = {
    "max_loops": 2,
    "pool_size": 4,
    "k": 2,
    "tokens": 4,
    "mine_iterations": 4,
    "mine_decay_at": 2,
    "circ_iterations": 4,
    "circ_decay_at": 2,
    "circ_lr": 0.5,
    "circ_images": 2,
    "steps": 2,
    "guidance": 2.0,
    "checkpoint_every": 2,
    "vocab": "",
}


def config(**values):
    return registry.build_config(registry.get("darkminer"), values={**SMALL, **values})


def pixels(images):  # a verifier's features: the images themselves (s(c) is then generic, never -1)
    return images.flatten(1)


def test_the_loop_trains_only_lora_on_to_v_and_keeps_the_base(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    edit = registry.get("darkminer").erase(
        tiny, ConceptSet(["a cat"]), config(tau=-0.999), Run(progress=False, scorer=pixels)
    )
    assert edit.kind == "lora" and edit.metrics["loops"] == 2 and edit.metrics["stopped_by"] == "max_loops"
    modules = {k.rsplit(".weight.", 1)[0] for k in edit.tensors}
    assert modules and all(m.endswith(".to_v") for m in modules)
    attention = {n for n, _ in tiny.denoiser.named_modules() if n.endswith(".to_v")}
    assert {m.removeprefix("unet.") for m in modules} == attention  # every attention module, self and cross
    assert any(float(t.abs().max()) > 0 for k, t in edit.tensors.items() if k.endswith("lora_B"))
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())
    assert len(edit.tensors) == 2 * len(attention)


def test_verification_at_or_below_tau_ends_the_loop_before_any_circumvention(tiny):
    def constant(images):  # Enc(x_c) − Enc(x_r) = 0: s(c) = 0
        return torch.ones(len(images), 3)

    edit = registry.get("darkminer").erase(
        tiny, ConceptSet(["a cat"]), config(tau=0.2), Run(progress=False, scorer=constant)
    )
    assert edit.metrics["loops"] == 0 and edit.metrics["stopped_by"] == "verification"
    assert edit.metrics["s"] == [0.0]
    assert all(float(t.abs().max()) == 0 for k, t in edit.tensors.items() if k.endswith("lora_B"))


def test_s_of_c_is_eq_6_the_mean_cosine_of_delta_features(tiny):
    c = tiny.encode_prompts(["a cat"]).first(4).with_tokens(torch.randn(1, 4, tiny.conditioning_width))
    empty = tiny.encode_prompts([""]).first(4)
    c_0 = tiny.encode_prompts(["a photo"])
    x_e = torch.randn(2, *tiny.latent_shape)
    seen = []

    def enc(images):
        seen.append(images)
        return images.flatten(1)

    s_c, x_c = darkminer.verify(tiny, c, x_e, c_0, empty, [5, 6], config(), enc)
    f_c, f_r, f_e = (x.flatten(1) for x in seen)
    expected = torch.nn.functional.cosine_similarity(f_c - f_r, f_e - f_r, dim=-1).mean()
    assert s_c == pytest.approx(float(expected)) and torch.equal(x_c, seen[0])


def test_a_killed_run_resumes_across_loops_to_the_same_edit(tiny, tmp_path, monkeypatch):
    import erasekit.core.loop as loop

    spec, cfg, concepts = registry.get("darkminer"), config(tau=-0.999), ConceptSet(["a cat"])
    whole = spec.erase(tiny, concepts, cfg, Run(work=tmp_path / "whole", progress=False, scorer=pixels))
    real_save, saves = loop.save_checkpoint, []

    def save_then_die(path, modules, opt, step, meta=None):
        real_save(path, modules, opt, step, meta)
        saves.append(path.name)
        if len(saves) == 7:  # loop 1's circumvention, after its first checkpoint
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        spec.erase(tiny, concepts, cfg, Run(work=tmp_path / "cut", progress=False, scorer=pixels))
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    assert saves[-1] == "loop001-circ-checkpoint"
    resumed = spec.erase(tiny, concepts, cfg, Run(work=tmp_path / "cut", resume=True, progress=False, scorer=pixels))
    assert whole.tensors.keys() == resumed.tensors.keys()
    assert all(torch.equal(whole.tensors[k], resumed.tensors[k]) for k in whole.tensors)
    assert resumed.metrics["s"] == whole.metrics["s"]
    rows = json.loads((tmp_path / "cut" / "record" / "loops.json").read_text())
    assert [r["loop"] for r in rows] == [0, 1] and all(r["nearest"] for r in rows)
    from erasekit.report.plots import loops_curve, mined_grid

    assert loops_curve(tmp_path / "cut" / "record", tmp_path / "loops.png").is_file()
    assert mined_grid(tmp_path / "cut" / "record", tmp_path / "mined.png").is_file()


def test_the_lora_export_loads_in_stock_diffusers_to_the_merged_model(tiny, tiny_folder, tmp_path):
    edit = registry.get("darkminer").erase(
        tiny, ConceptSet(["a cat"]), config(tau=-0.999, max_loops=1), Run(progress=False, scorer=pixels)
    )
    lora = export(edit, tiny, tmp_path / "lora", format="lora")
    merged = edit.apply(tiny)
    z, cond = torch.randn(1, *tiny.latent_shape), tiny.encode_prompts(["a cat"])
    torch.save({"z": z, "cond": cond.tokens}, tmp_path / "inputs.pt")
    client = f"""
import torch
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained({str(tiny_folder)!r}, safety_checker=None)
pipe.load_lora_weights({str(lora)!r})
inputs = torch.load({str(tmp_path / "inputs.pt")!r})
with torch.no_grad():
    out = pipe.unet(inputs["z"], 500, encoder_hidden_states=inputs["cond"]).sample
torch.save(out, {str(tmp_path / "out.pt")!r})
"""
    done = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    with torch.no_grad():
        want = merged.model_output(z, 500, cond)
        plain = tiny.model_output(z, 500, cond)
    got = torch.load(tmp_path / "out.pt")
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, plain, atol=1e-5)


def test_a_verifier_that_returns_nan_is_one_clear_error(tiny):
    with pytest.raises(ErasekitError, match="non-finite"):
        registry.get("darkminer").erase(
            tiny,
            ConceptSet(["a cat"]),
            config(),
            Run(progress=False, scorer=lambda im: torch.full((len(im), 3), float("nan"))),
        )


@pytest.mark.parametrize(
    "values,message",
    [
        ({"tau": 1.0}, "tau must lie in (-1, 1)"),
        ({"rank": 0}, "rank must be >= 1"),
        ({"modules": ("to_x",)}, "modules must name attention projections"),
    ],
)
def test_bad_options_are_refused_when_the_config_is_built(values, message):
    with pytest.raises(ErasekitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(**values)


def test_erase_refuses_a_bad_tau_and_a_lora_edit_for_another_base_in_one_line(tiny, tmp_path):
    out = tmp_path / "dm"
    one_line_error(
        run_cli("erase", "--method", "darkminer", "--erase", "star", "--set", "tau=1.5", "--quiet", "--out", out),
        "tau must lie in (-1, 1)",
    )
    assert not out.exists() and not (tmp_path / "dm.partial").exists()
    one_line_error(
        run_cli("erase", "--model", "tiny", "--method", "darkminer", "--erase", "cat", "--quiet", "--out", out),
        "CLIP weights not found",
    )  # SD's verifier: CLIP's image encoder
    assert not out.exists() and not (tmp_path / "dm.partial").exists()
    edit = registry.get("darkminer").erase(
        tiny, ConceptSet(["a cat"]), config(tau=-0.999, max_loops=1), Run(progress=False, scorer=pixels)
    )
    edit.save(tmp_path / "run")
    one_line_error(
        run_cli(
            "generate",
            "mini",
            "--edit",
            tmp_path / "run",
            "--prompt",
            "a star",
            "--n",
            "1",
            "--out",
            tmp_path / "g.png",
        ),
        "edit was made for base",
    )
    assert not (tmp_path / "g.png").exists()
    assert isinstance(Edit.load(tmp_path / "run"), Edit)


def test_erase_on_the_miniature_keeps_the_loop_record_and_the_report_plots_it(tmp_path):
    run_folder, ev = tmp_path / "dm", tmp_path / "ev"
    small = [f"{k}={v}" for k, v in {**SMALL, "vocab": "world", "max_loops": 1, "tau": -0.99}.items()]
    result = run_cli(
        "erase",
        "--method",
        "darkminer",
        "--erase",
        "mark",
        *[a for kv in small for a in ("--set", kv)],
        "--quiet",
        "--out",
        run_folder,
    )
    assert result.exit_code == 0, result.output
    for name in (
        "manifest.json",
        "edit.safetensors",
        "loops.json",
        "images.safetensors",
        "embeddings.safetensors",
        "loop000-mine-loss.csv",
        "loop000-circ-loss.csv",
    ):
        assert (run_folder / name).is_file(), name
    assert Edit.load(run_folder).kind == "lora"
    result = run_cli(
        "evaluate",
        "--edit",
        run_folder,
        "--suite",
        "world-implicit",
        "--n",
        "1",
        "--steps",
        "2",
        "--quiet",
        "--out",
        ev,
    )
    assert result.exit_code == 0, result.output
    html = (ev / "report.html").read_text()
    assert "s(c) of each loop" in html and "before (left) and after (right)" in html
    assert run_cli("export", run_folder, "--format", "lora", "--out", tmp_path / "lora").exit_code == 0
    assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").is_file()


def test_methods_lists_dark_miner_with_its_defaults_and_preset():
    result = run_cli("methods")
    assert result.exit_code == 0
    assert "\ndarkminer  Dark Miner" in "\n" + result.output  # the name column is wider than the longest name
    assert "tau=0.2" in result.output and "max_loops=48" in result.output


def test_the_memory_options_reach_both_stages_and_the_rest_are_refused(tiny):
    """bf16 autocast and gradient checkpointing in mining and circumventing give nearly the same adapters; the
    options Dark Miner has no use for are refused by name."""

    def adapters(**values):
        edit = registry.get("darkminer").erase(
            tiny, ConceptSet(["a cat"]), config(tau=-0.999, max_loops=1, **values), Run(progress=False, scorer=pixels)
        )
        return torch.cat([t.flatten().float() for t in edit.tensors.values()])

    plain = adapters()
    assert torch.equal(adapters(gradient_checkpointing=True), plain)
    mixed = adapters(precision="bf16")
    assert not torch.equal(mixed, plain) and (mixed - plain).norm() < 0.05 * plain.norm()
    for option in ("optimizer_bits=8", "offload_teacher=true"):
        key, value = option.split("=")
        with pytest.raises(ErasekitError, match=f"DarkMiner does not take {key}: its optimizers"):
            config(**{key: value})
