"""Sampler edits (SLD, negative prompt): the guidance, the edit files, and the stock diffusers pipelines they export."""

import json
import warnings

import numpy as np
import pytest
import torch

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.core.sampler import CALL_FILE, SLD_LEVELS, Sampling, safety_guidance
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.export import export


def _erase(bundle, method, concepts="a star", **values):
    spec = registry.get(method)
    return spec.erase(bundle, ConceptSet([concepts]), registry.build_config(spec, values=values), Run(progress=False))


def test_safety_guidance_follows_the_equations_element_by_element():
    s = Sampling(safety_concept="x", **SLD_LEVELS["medium"])
    u, c, sc = torch.tensor([0.0, 0.0, 0.0]), torch.tensor([1.0, 0.0, 0.5]), torch.tensor([1.005, 2.0, 0.5])
    g, nu = safety_guidance(u, c, sc, None, step=10, s=s)
    # element 0: ε(c) − ε(S) = −0.005 < λ = 0.01 -> μ = min(1, 1000 · 0.005) = 1; γ = 1 · (1.005 − 0) = 1.005
    # element 1: gap −2 < λ -> μ = 1; γ = 2.  element 2: gap 0 < λ -> μ = clamp(0) = 0; γ = 0
    gamma = torch.tensor([1.005, 2.0, 0.0])
    assert torch.allclose(g, (c - u) - gamma)
    assert torch.allclose(nu, 0.6 * gamma)  # ν = β ν0 + (1 − β) γ with ν0 = 0, β = 0.4
    g_warm, _ = safety_guidance(u, c, sc, None, step=9, s=s)  # before warm-up ends: plain guidance
    assert torch.equal(g_warm, c - u)
    g2, _ = safety_guidance(u, c, sc, nu, step=10, s=s)  # momentum adds s_m ν
    assert torch.allclose(g2, (c - u) - gamma - 0.3 * nu)


def test_sampling_settings_are_checked():
    with pytest.raises(ErasekitError, match="neither"):
        Sampling()
    with pytest.raises(ErasekitError, match="sld_mom_beta"):
        Sampling(safety_concept="x", sld_mom_beta=2.0)
    with pytest.raises(ErasekitError, match="unknown sampler setting"):
        Sampling.from_dict({"safety_concept": "x", "guidance": 3})


def test_sld_edit_changes_sampling_only_and_round_trips(tiny, tmp_path):
    edit = _erase(tiny, "sld", level="max")
    assert edit.kind == "sampler" and edit.tensors == {}
    assert edit.sampling["safety_concept"] == "a star"
    assert edit.sampling["sld_guidance_scale"] == SLD_LEVELS["max"]["sld_guidance_scale"]
    loaded = Edit.load(edit.save(tmp_path / "sld"))
    assert loaded.sampling == edit.sampling and loaded.fingerprint() == edit.fingerprint()
    edited = loaded.apply(tiny)
    assert edited.denoiser is tiny.denoiser and tiny.sampling is None and edited.sampling.safety
    # a prompt other than the safety concept S itself: for the prompt "a star", ε(c_p) = ε(S) exactly and SLD's
    # γ is 0, so whether the images differed hung on the last bits of two batched UNet rows
    base = tiny.generate(["a red star"], [3], steps=4, guidance=5.0)
    assert not torch.allclose(edited.generate(["a red star"], [3], steps=4, guidance=5.0), base)
    assert torch.equal(
        edited.generate(["a red star"], [3], steps=4, guidance=1.0),  # no guidance: no SLD
        tiny.generate(["a red star"], [3], steps=4, guidance=1.0),
    )
    override = _erase(tiny, "sld", level="max", sld_guidance_scale="7", safety_concept="i2p")
    assert override.sampling["sld_guidance_scale"] == 7.0 and "nudity" in override.sampling["safety_concept"]


def test_sampler_edit_manifest_damage_is_one_error(tiny, tmp_path):
    folder = _erase(tiny, "negative").save(tmp_path / "neg")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sampling"] = {"negative_prompt": "x", "bogus": 1}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ErasekitError, match="bogus"):
        Edit.load(folder)
    with pytest.raises(ErasekitError, match="cannot hold"):
        export(_erase(tiny, "negative"), tiny, tmp_path / "x.safetensors", format="single-file")


def _pipe_images(pipe, prompt, seeds, steps, guidance, **kwargs):
    gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pipe(
            prompt,
            num_images_per_prompt=len(seeds),
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=gens,
            output_type="np",
            **kwargs,
        )
    return torch.from_numpy(np.asarray(out.images)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("method", ["sld", "negative"])
def test_exported_sampler_edit_samples_the_same_in_stock_diffusers(tiny, tmp_path, method):
    """The export is StableDiffusionPipelineSafe (SLD) or StableDiffusionPipeline (negative prompt) plus
    sampler.json; with the call arguments it lists, the stock pipeline draws what erasekit draws."""
    import diffusers

    edit = _erase(tiny, method, level="medium", sld_warmup_steps="2") if method == "sld" else _erase(tiny, method)
    out = export(edit, tiny, tmp_path / "pipe")
    call = json.loads((out / CALL_FILE).read_text())
    cls = getattr(diffusers, call["pipeline"])
    assert call["pipeline"] == ("StableDiffusionPipelineSafe" if method == "sld" else "StableDiffusionPipeline")
    pipe = cls.from_pretrained(out, safety_checker=None, requires_safety_checker=False)
    if method == "sld":
        pipe.safety_concept = call["safety_concept"]
    seeds, steps = [1, 2], 6
    ours = edit.apply(tiny).generate(["a circle"] * 2, seeds, steps=steps, guidance=5.0)
    theirs = _pipe_images(pipe, "a circle", seeds, steps, 5.0, **call["call"])
    gap = (ours - theirs).abs().max()
    assert gap < 2e-3
    plain = _pipe_images(pipe, "a circle", seeds, steps, 5.0, **({"sld_guidance_scale": 0} if method == "sld" else {}))
    assert (ours - plain).abs().max() > 20 * gap  # the call arguments matter: without them it samples otherwise
    from erasekit.models.load import load_bundle

    reloaded = load_bundle(out, device="cpu")  # erasekit reads sampler.json back
    assert reloaded.sampling == edit.apply(tiny).sampling


def test_a_weight_edit_keeps_the_fingerprint_its_key_files_were_made_with(tiny):
    """Sampler settings enter the hash only for sampler edits; other edits hash as they always have."""
    import hashlib

    key = "unet.conv_out.bias"
    edit = Edit.from_changes(tiny, {key: dict(tiny.named_parameters())[key] + 1}, "t", {}, {})
    digest = hashlib.sha256(b"weights:1.0")
    digest.update(f"{key}:{tuple(edit.tensors[key].shape)}:".encode())
    digest.update(edit.tensors[key].float().numpy().tobytes())
    assert edit.fingerprint() == digest.hexdigest()[:16]
    sld = _erase(tiny, "sld")
    assert sld.fingerprint() != _erase(tiny, "sld", level="max").fingerprint()
