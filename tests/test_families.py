"""Model families (issue 29): SD-1.x, SDXL, SD3 and FLUX behind one Bundle, on tiny random models of each.

Every method and attack runs on every family it declares, through erase (or the attack), evaluate, export and a stock
diffusers load of the export; the family's stock pipeline draws erasekit's images; what a family does not support
is refused before any work. SD-2.x shares SD-1.x's class (tests/test_real_size.py runs it at full size)."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import diffusers
import pytest
import torch

from erasekit.attacks import registry as attacks
from erasekit.attacks.goal import Goal
from erasekit.core.conditioning import Conditioning
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.eval.evaluation import evaluate_edit
from erasekit.eval.judges import method_scorer
from erasekit.eval.suites import SuiteRun
from erasekit.methods import registry as methods
from erasekit.methods.concepts import ConceptSet
from erasekit.models.export import export
from erasekit.models.load import load_bundle
from test_user_facing import assert_one_line_error
from test_user_facing import run as cli

SOURCES = {"sd1": "tiny", "sdxl": "tiny-sdxl", "sd3": "tiny-sd3", "flux": "tiny-flux"}
SMALL = {
    "iterations": 1,
    "batch": 1,
    "pool_size": 2,
    "retain_size": 1,
    "max_loops": 1,
    "mine_iterations": 1,
    "circ_iterations": 1,
    "circ_batch": 1,
    "circ_images": 1,
    "k": 2,
    "pgd_steps": 1,
    "ddim_steps": 2,
    "steps": 2,
    "k_closest": 3,
    "tokens": 2,
    "masks": "",
    "key_tokens": 2,
}
ATTACK_SMALL = {
    "iterations": 1,
    "generations": 1,
    "population": 4,
    "elite": 1,
    "tries": 1,
    "images": 2,
    "budgets": (0, 1),  # relearn: one step
    "budget": 1,
    "max_prompts": 2,
    "check_every": 0,
    "batch": 1,
    "tokens": 2,
    "length": 2,
    "prefix": 2,
}
MAX_PIXEL = 2 / 255  # the bar for a stock pipeline's image against erasekit's


@pytest.fixture(scope="module", params=list(SOURCES))
def model(request):
    return load_bundle(SOURCES[request.param], device="cpu")


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "words.txt"
    path.write_text("dog\nbird\ncar\ntree\nhouse\n")
    return path


def _small(spec, values: dict):
    """The values the config has a field of the same type for (Dark Miner's `tokens` is a count, UCE's a choice)."""
    defaults = {k: getattr(spec.config(), k) for k in spec.config.__dataclass_fields__}
    return {k: v for k, v in values.items() if k in defaults and type(v) is type(defaults[k])}


def _stock_images(folder, family_model, prompts, seeds, guidance, lora=None):
    """The stock pipeline's images of a saved folder (and a LoRA folder loaded into it), in a process that imports
    diffusers and torch only: what a user without erasekit gets."""
    size = family_model.image_size
    script = f"""
import torch, diffusers
pipe = diffusers.{family_model.PIPELINE}.from_pretrained({str(folder)!r}, local_files_only=True)
if {lora is not None!r}:
    pipe.load_lora_weights({str(lora)!r})
pipe.set_progress_bar_config(disable=True)
images = pipe({prompts!r}, num_inference_steps=2, guidance_scale={guidance!r}, height={size}, width={size},
              output_type="pt", generator=[torch.Generator().manual_seed(s) for s in {seeds!r}]).images
torch.save(images, {str(Path(folder).parent / "stock.pt")!r})
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(Path(folder).parent / "stock.pt")


def test_info_describes_each_family(model):
    result = cli("info", SOURCES[model.family])
    assert result.exit_code == 0, result.output
    assert f"family        {model.family}  (tiny;" in result.output and model.PIPELINE in result.output
    assert "parameter groups" in result.output and "xattn-kv" in result.output


def test_the_stock_pipeline_loads_an_export_of_an_erasure_and_draws_erasekits_images(model, tmp_path):
    spec = methods.get("esd")
    config = methods.build_config(spec, values=_small(spec, SMALL))
    edit = spec.erase(model, ConceptSet(["a cat"]), config, Run(progress=False))
    assert edit.tensors and all(k.startswith(model.DENOISER + ".") for k in edit.tensors)
    edited = edit.apply(model)
    prompts, seeds, guidance = ["a photo of a cat", "a red car"], [3, 4], 3.5 if model.family == "flux" else 5.0
    ours = edited.generate(prompts, seeds, steps=2, guidance=guidance)
    stock = _stock_images(export(edit, model, tmp_path / "exported"), model, prompts, seeds, guidance)
    assert (ours - stock).abs().max() <= MAX_PIXEL
    assert not torch.equal(ours, model.generate(prompts, seeds, steps=2, guidance=guidance))


def test_a_lora_export_loads_into_the_familys_stock_pipeline_as_erasekit_applies_it(model, tmp_path, tiny_clip):
    """Dark Miner's adapters, in the layout each family's load_lora_weights reads (unet.* or transformer.*)."""
    spec = methods.get("darkminer")
    config = methods.build_config(spec, values={**_small(spec, SMALL), "tau": -0.999})  # one loop: it circumvents
    concepts = ConceptSet(["a cat"])
    edit = spec.erase(
        model, concepts, config, Run(progress=False, scorer=method_scorer(spec, model, config, concepts, tiny_clip))
    )
    with torch.no_grad():  # trained B is tiny after one step: make the adapters' effect visible
        for name in edit.tensors:
            if name.endswith("lora_B"):
                edit.tensors[name] = edit.tensors[name] + 0.05
    lora = export(edit, model, tmp_path / "lora", format="lora")
    prompts, seeds, guidance = ["a photo of a cat"], [5], 3.5 if model.family == "flux" else 5.0
    ours = edit.apply(model).generate(prompts, seeds, steps=2, guidance=guidance)
    stock = _stock_images(model.save_pretrained(tmp_path / "base"), model, prompts, seeds, guidance, lora=lora)
    assert (ours - stock).abs().max() <= MAX_PIXEL
    assert not torch.equal(ours, model.generate(prompts, seeds, steps=2, guidance=guidance))


CASES = [(m.name, f) for m in methods.available() for f in SOURCES if f in m.families]


@pytest.mark.parametrize("name,family", CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_every_method_runs_on_every_family_it_declares(name, family, tiny_clip, vocab, tmp_path):
    model = load_bundle(SOURCES[family], device="cpu")
    spec = methods.get(name)
    values = _small(spec, {**SMALL, "vocab": str(vocab)})
    config = methods.build_config(spec, values=values)
    concepts = ConceptSet(["a cat"], ["a dog"] if name == "salun" else [])
    run = Run(work=tmp_path / "work", progress=False, scorer=method_scorer(spec, model, config, concepts, tiny_clip))
    edit = spec.erase(model, concepts, config, run)
    folder = edit.save(tmp_path / "edit")
    loaded = Edit.load(folder)
    result = evaluate_edit(
        model,
        loaded,
        "coco",
        SuiteRun(n=1, steps=2, prompts_file=str(_coco(tmp_path)), clip=str(tiny_clip), progress=False),
    )
    assert 0 <= result.edited.metrics["clip_score"] <= 100 and torch.isfinite(result.edited.images).all()
    exported = export(loaded, model, tmp_path / "exported")
    pipe = getattr(diffusers, json.loads((exported / "model_index.json").read_text())["_class_name"]).from_pretrained(
        exported, local_files_only=True
    )
    assert type(pipe).__name__.startswith(model.PIPELINE.removesuffix("Pipeline"))


def _coco(tmp_path):
    path = tmp_path / "coco.csv"
    path.write_text("image_id,prompt,evaluation_seed\n1,a photo of a cat,3\n")
    return path


ATTACK_CASES = [(a.name, f) for a in attacks.available() for f in SOURCES if f in a.families]


@pytest.mark.parametrize("name,family", ATTACK_CASES, ids=[f"{n}-{f}" for n, f in ATTACK_CASES])
def test_every_attack_runs_on_every_family_it_declares(name, family):
    model = load_bundle(SOURCES[family], device="cpu")
    spec = attacks.get(name)
    config = attacks.build_config(spec, values=_small(spec, ATTACK_SMALL))
    goal = Goal(
        "cat",
        ["a photo of a cat"],
        [0],
        lambda images: torch.zeros(len(images), dtype=torch.bool),
        base=model,
        steps=2,
        pairs=[("a photo of a cat", "a photo of a dog")],
        images=torch.rand(2, 3, 40, 48),
    )  # the user's images for CCE, of another size than the model's
    result = spec.run(model, goal, config, Run(progress=False))
    assert result.prompts and all(p.prompt.strip() for p in result.prompts)
    if result.embedding is not None:  # a learned word: the main encoder knows it, the others read the rest
        worded = result.embedding.apply(model)
        cond = worded.encode_prompts([result.prompts[0].prompt])
        assert torch.isfinite(cond.tokens).all()


def test_a_learned_word_reaches_the_main_encoder_only(model):
    width = model.text.width
    worded = model.add_words({"<w*>": torch.randn(2, width)})
    a, b = worded.encode_prompts(["a <w*> photo"]), model.encode_prompts(["a photo"])
    others = [t for t in model.texts if t.name != model.text.name]
    for text in others:  # every other encoder reads the prompt without the word
        assert torch.equal(
            text.encode(text.tokenize(["a photo"]))[0],
            worded.text_encoder(text.name).encode(text.tokenize(["a photo"]))[0],
        )
    assert not torch.equal(a.tokens, b.tokens)


def test_a_key_splices_into_the_conditioning_of_every_family(model):
    from erasekit.core.key import splice, tail

    cond = model.encode_prompts(["a cat", "a dog"])
    p = torch.randn(2, cond.width)
    keyed = splice(cond, p)
    assert torch.equal(keyed.tokens[:, -2:], p.expand(2, -1, -1)) and torch.equal(
        keyed.tokens[:, :-2], cond.tokens[:, :-2]
    )
    assert (keyed.pooled is None) == (cond.pooled is None) and torch.equal(tail(keyed[:1], 2), p)


def test_conditioning_batches_like_a_tensor(model):
    cond = model.encode_prompts(["a cat", "a dog", "a car"])
    assert len(cond[1]) == 1 and torch.equal(cond[1].tokens, cond.tokens[1:2])
    assert len(cond[0].expand(4)) == 4 and len(Conditioning.cat([cond, cond[2]])) == 4
    assert [len(c) for c in cond] == [1, 1, 1] and len(cond.repeat(2)) == 6
    with pytest.raises(IndexError):
        cond[3]


def test_predictions_convert_between_eps_x0_and_velocity(model):
    z0, noise = torch.randn(2, *model.latent_shape), torch.randn(2, *model.latent_shape)
    t = torch.tensor([300, 700])
    z_t = model.add_noise(z0, noise, t)
    cond = model.encode_prompts(["a cat", "a dog"])
    eps, x0, v = (model.predict(z_t, t, cond, q) for q in ("eps", "x0", "velocity"))
    assert torch.allclose(model.add_noise(x0, eps, t), z_t, atol=1e-4)  # ε and x̂0 describe the same z_t
    assert torch.allclose(v, eps - x0, atol=1e-4) if model.PREDICTS == "velocity" else v.shape == eps.shape


def test_a_method_on_a_family_it_does_not_declare_is_refused_before_any_work(tmp_path):
    result = cli("erase", "--model", "tiny-flux", "--method", "fmn", "--erase", "cat", "--out", tmp_path / "run")
    assert_one_line_error(result, "fmn does not run on flux models; it runs on sd1, sd2, sdxl")
    assert not list(tmp_path.iterdir())


def test_an_edit_of_another_family_is_refused_even_with_force(tmp_path):
    sdxl, sd3 = load_bundle("tiny-sdxl"), load_bundle("tiny-sd3")
    key = next(iter(dict(sdxl.named_parameters())))
    edit = Edit.from_changes(sdxl, {key: dict(sdxl.named_parameters())[key] * 0}, "t", {}, {})
    with pytest.raises(ErasekitError, match="edit was made for an sdxl model, and 'tiny-sd3' is sd3"):
        edit.check(sd3, force=True)


def test_a_learned_word_of_another_width_is_refused(model):
    with pytest.raises(ErasekitError, match="embeds tokens in"):
        model.add_words({"<w*>": torch.randn(1, model.text.width + 1)})


def test_a_folder_of_each_family_reads_back_as_the_same_model(model, tmp_path):
    again = load_bundle(model.save_pretrained(tmp_path / "folder"), device="cpu")
    assert (again.family, again.scale) == (model.family, model.scale)
    assert again.fingerprint() == model.fingerprint()
    assert copy.copy(again.meta) == model.meta


def test_an_sdxl_checkpoint_file_replaces_the_unet_of_its_base_folder(tmp_path):
    """SDXL, SD3 and FLUX single files are read with diffusers' converters onto the base model's folder (--config):
    the file's UNet, every other component the folder's."""
    from safetensors.torch import save_file

    from erasekit.models.ldm import _unet_to_ldm

    base = load_bundle("tiny-sdxl")
    folder = base.save_pretrained(tmp_path / "base")
    state = _unet_to_ldm(base.denoiser.state_dict(), dict(base.denoiser.config))
    state["model.diffusion_model.out.2.bias"] = state["model.diffusion_model.out.2.bias"] + 0.5
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "unet.safetensors"))
    loaded = load_bundle(tmp_path / "unet.safetensors", config=folder)
    assert loaded.family == "sdxl"
    assert torch.allclose(loaded.denoiser.conv_out.bias, base.denoiser.conv_out.bias + 0.5)
    same = [
        torch.equal(p, q)
        for (n, p), (_, q) in zip(loaded.named_parameters(), base.named_parameters(), strict=True)
        if not n.endswith("conv_out.bias")
    ]
    assert all(same)
    with pytest.raises(ErasekitError, match="is a sdxl checkpoint: give the diffusers folder of its base model"):
        load_bundle(tmp_path / "unet.safetensors")


@pytest.mark.parametrize(
    "family,key",
    [
        ("sd3", "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"),
        ("flux", "double_blocks.0.img_attn.qkv.weight"),
    ],
)
def test_an_sd3_or_flux_checkpoint_file_needs_its_base_folder(family, key, tmp_path):
    from safetensors.torch import save_file

    save_file({key: torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"))
    result = cli("info", tmp_path / "model.safetensors")
    assert_one_line_error(result, f"is a {family} checkpoint: give the diffusers folder of its base model")
    other = load_bundle("tiny-sdxl").save_pretrained(tmp_path / "sdxl")
    with pytest.raises(ErasekitError, match=f"is a {family} checkpoint but .* is a sdxl model"):
        load_bundle(tmp_path / "model.safetensors", config=other)


def test_the_readme_shows_the_support_matrix_the_registries_give():
    from pathlib import Path

    from erasekit.report.support import support_tables

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    shown = readme.split("<!-- generated: support-matrix -->\n")[1].split("<!-- /generated -->")[0]
    assert shown == support_tables() + "\n"
