import json
import shutil

import pytest
import torch
from diffusers import StableDiffusionPipeline

from erasekit.core.errors import ErasekitError
from erasekit.models.load import load_bundle


def test_folder_and_single_file_predict_the_same_noise(tiny_folder, tiny_single_file):
    a = load_bundle(tiny_folder, device="cpu")
    b = load_bundle(tiny_single_file, device="cpu", config=tiny_folder)
    cond = a.encode_prompts(["a red star"])
    z = torch.randn(2, *a.latent_shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.encode_prompts(["a red star"]).tokens, b.encode_prompts(["a red star"]).tokens)
    assert torch.allclose(a.eps(z, 500, cond.expand(2)), b.eps(z, 500, cond.expand(2)), atol=1e-6)
    assert a.fingerprint() == b.fingerprint()


def test_fingerprint_is_stable_and_sees_a_changed_value(tiny):
    assert tiny.fingerprint() == tiny.fingerprint()
    edited = tiny.clone(("unet",))
    with torch.no_grad():
        edited.denoiser.conv_in.weight.mul_(2)
    assert edited.fingerprint() != tiny.fingerprint()
    assert tiny.clone().fingerprint() == tiny.fingerprint()


def test_fingerprint_matches_across_fp32_and_bf16(tiny_folder):
    assert load_bundle(tiny_folder, dtype="bf16").fingerprint() == load_bundle(tiny_folder).fingerprint()


def test_bundle_reports_the_unets_dtype_and_device_and_predicts_in_them(tiny_folder):
    half = load_bundle(tiny_folder, dtype="bf16")
    assert half.dtype == torch.bfloat16 and half.device == torch.device("cpu")
    z = torch.randn(1, *half.latent_shape)
    eps = half.eps(z, torch.tensor([10]), half.encode_prompts(["a cat"]))
    assert eps.dtype == torch.bfloat16 and eps.shape == z.shape


def test_encode_embeddings_matches_text_encoder_forward(tiny):
    ids = tiny.tokenize(["a photo of a cat", "van gogh"])
    assert torch.allclose(
        tiny.encode_embeddings(tiny.text.token_embeddings(ids), ids).tokens,
        tiny.encode_prompts(["a photo of a cat", "van gogh"]).tokens,
        atol=1e-6,
    )


def test_tokenizer_has_clip_ids(tiny):
    assert tiny.tokenize(["a photo of a cat"])[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tiny.text.tokenizer) == 49408


def test_eps_with_guidance_is_the_cfg_combination(tiny):
    z = torch.randn(1, *tiny.latent_shape, generator=torch.Generator().manual_seed(0))
    c, u = tiny.encode_prompts(["a cat"]), tiny.encode_prompts([""])
    e_c, e_u = tiny.eps(z, 300, c), tiny.eps(z, 300, u)
    assert not torch.allclose(e_c, e_u, atol=1e-3)
    # batched (uncond, cond) vs separate passes differ only by float rounding, amplified by the guidance scale
    assert torch.allclose(tiny.eps(z, 300, c, uncond=u, guidance=7.5), e_u + 7.5 * (e_c - e_u), atol=1e-4)


def test_v_prediction_output_is_converted_to_eps(tiny_folder):
    b = load_bundle(tiny_folder, prediction_type="v_prediction")
    z0, noise = torch.randn(1, *b.latent_shape), torch.randn(1, *b.latent_shape)
    t = 400
    a = b.scheduler.alphas_cumprod[t]
    z_t = b.add_noise(z0, noise, t)
    cond = b.encode_prompts(["x"])
    v = b.model_output(z_t, t, cond)
    x0 = a.sqrt() * z_t - (1 - a).sqrt() * v  # the x0 this v implies
    eps = b.eps(z_t, t, cond)
    assert torch.allclose(a.sqrt() * x0 + (1 - a).sqrt() * eps, z_t, atol=1e-5)


def test_add_noise_follows_the_forward_process(tiny):
    z0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    a = tiny.scheduler.alphas_cumprod[250]
    assert torch.allclose(tiny.add_noise(z0, noise, 250), a.sqrt() * z0 + (1 - a).sqrt() * noise, atol=1e-6)


def test_encode_decode_round_trip_shapes(tiny):
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = tiny.encode_images(x)
    assert z.shape == (2, 4, 8, 8)
    assert tiny.decode_latents(z).shape == (2, 3, 16, 16)


def test_generation_matches_stock_pipeline_and_is_seeded(tiny):
    ours = tiny.generate(["a red star"], [7], steps=4, guidance=5.0)
    again = tiny.generate(["a red star"], [7], steps=4, guidance=5.0)
    other = tiny.generate(["a red star"], [8], steps=4, guidance=5.0)
    theirs = tiny.to_pipeline()(
        "a red star",
        num_inference_steps=4,
        guidance_scale=5.0,
        output_type="pt",
        generator=torch.Generator().manual_seed(7),
    ).images
    assert torch.equal(ours, again) and not torch.equal(ours, other)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_generate_refuses_an_empty_prompt(tiny):
    with pytest.raises(ErasekitError, match="empty prompt"):
        tiny.generate(["  "], [0], steps=2)


def test_stock_pipeline_loads_saved_folder(tiny_folder):
    pipe = StableDiffusionPipeline.from_pretrained(tiny_folder, local_files_only=True)
    assert pipe.unet.config.cross_attention_dim == 32


def test_missing_source_is_named(tmp_path):
    with pytest.raises(ErasekitError, match="model source not found: 'no/such/thing.safetensors'"):
        load_bundle("no/such/thing.safetensors")


def test_folder_without_unet_is_refused(tiny_folder, tmp_path):
    broken = shutil.copytree(tiny_folder, tmp_path / "broken")
    shutil.rmtree(broken / "unet")
    with pytest.raises(ErasekitError, match="has no unet/"):
        load_bundle(broken)


def test_unsupported_pipeline_class_is_named(tiny_folder, tmp_path):
    other = shutil.copytree(tiny_folder, tmp_path / "xl")
    index = json.loads((other / "model_index.json").read_text())
    index["_class_name"] = "StableVideoDiffusionPipeline"
    (other / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ErasekitError, match="unsupported architecture: StableVideoDiffusionPipeline"):
        load_bundle(other)


def test_corrupt_single_file_is_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(ErasekitError, match="cannot read checkpoint"):
        load_bundle(bad)


def test_single_file_without_config_and_tiny_widths_is_unsupported(tiny_single_file):
    with pytest.raises(ErasekitError, match="unsupported architecture: cross-attention width 32"):
        load_bundle(tiny_single_file)


def test_unknown_dtype_lists_valid_ones():
    with pytest.raises(ErasekitError, match="valid: fp32, bf16, fp16"):
        load_bundle("tiny", dtype="fp8")


def test_hub_id_fails_offline_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ErasekitError, match="cannot load hub model 'nobody/no-such-model'"):
        load_bundle("nobody/no-such-model")


def test_ckpt_file_is_read_with_the_weights_only_unpickler(tiny, tiny_single_file, tiny_folder, tmp_path):
    from safetensors.torch import load_file

    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": load_file(str(tiny_single_file)), "global_step": 1}, ckpt)
    assert load_bundle(ckpt, config=tiny_folder).fingerprint() == tiny.fingerprint()


def test_ckpt_with_arbitrary_objects_is_refused(tmp_path):
    import collections

    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": collections.Counter(a=1), "fn": print}, ckpt)
    with pytest.raises(ErasekitError, match="refusing .*evil.ckpt: it holds pickled objects") as caught:
        load_bundle(ckpt)
    assert "\n" not in str(caught.value) and "weights_only" not in str(caught.value)


def test_a_clone_copies_only_the_tensors_that_change(tiny):
    clone = tiny.clone(("unet",), changes=lambda name: ".attn2." in name)
    mine, theirs = dict(clone.named_parameters()), dict(tiny.named_parameters())
    assert mine.keys() == theirs.keys()
    changed = [n for n in mine if ".attn2." in n]
    assert changed and all(mine[n] is not theirs[n] and torch.equal(mine[n], theirs[n]) for n in changed)
    assert all(mine[n] is theirs[n] for n in mine if n not in changed)  # shared, not copied
    with torch.no_grad():
        mine[changed[0]].add_(1)
    assert not torch.equal(mine[changed[0]], theirs[changed[0]])
    assert all(
        a is not b for a, b in zip(tiny.clone(("unet",)).denoiser.parameters(), tiny.denoiser.parameters(), strict=True)
    )


def test_adding_a_word_shares_the_text_encoders_layers_and_leaves_the_base_as_it_was(tiny):
    from erasekit.models.words import add_tokens

    table = tiny.modules["text_encoder"].get_input_embeddings().weight.clone()
    out = add_tokens(tiny, {"<w*>": torch.ones(2, table.shape[1])})
    assert torch.equal(
        tiny.modules["text_encoder"].get_input_embeddings().weight, table
    )  # resizing did not reach the base
    assert out.modules["text_encoder"].get_input_embeddings().weight.shape[0] == table.shape[0] + 2
    shared = sum(
        a is b
        for a, b in zip(
            tiny.modules["text_encoder"].parameters(), out.modules["text_encoder"].parameters(), strict=True
        )
    )
    assert shared == len(list(tiny.modules["text_encoder"].parameters())) - 1


def test_a_model_draws_at_another_resolution_and_refuses_one_its_unet_cannot_halve(tiny):
    assert tiny.image_size == 16 and tiny.generate(["a star"], [0], steps=2).shape == (1, 3, 16, 16)
    big = tiny.at_resolution(32)
    assert big.image_size == 32 and big.latent_shape == (4, 16, 16) and big.denoiser is tiny.denoiser
    assert big.generate(["a star"], [0], steps=2).shape == (1, 3, 32, 32)
    assert big.at_resolution(None).image_size == 16
    with pytest.raises(ErasekitError, match="resolution 18 does not fit 'tiny': give a multiple of 4"):
        tiny.at_resolution(18)


def test_images_are_drawn_a_model_sized_batch_at_a_time_with_the_same_result(tiny, monkeypatch):
    whole = tiny.generate(["a star", "a moon", "a ring"], [0, 1, 2], steps=2)
    monkeypatch.setattr(type(tiny), "image_batch", property(lambda self: 2))
    calls = []
    real = type(tiny).sample
    monkeypatch.setattr(
        type(tiny), "sample", lambda self, cond, seeds, **kw: calls.append(len(seeds)) or real(self, cond, seeds, **kw)
    )
    assert torch.allclose(tiny.generate(["a star", "a moon", "a ring"], [0, 1, 2], steps=2), whole, atol=1e-5)
    assert calls == [2, 1]
