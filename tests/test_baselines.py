"""The seeds' other baselines: Forget-Me-Not, SalUn, MACE (and SLD / the negative prompt from the command line)."""

import json
import warnings

import pytest
import torch
from click.testing import CliRunner

from erasekit.cli import main
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.mace import focal_timesteps, matching_positions
from erasekit.methods.salun import retain_set, top_share_threshold
from erasekit.models.attention import AttentionProbe, token_positions


def _erase(bundle, method, concepts, run=None, **values):
    run = run if run is not None else Run(progress=False)
    spec = registry.get(method)
    return spec.erase(bundle, concepts, registry.build_config(spec, values=values), run)


def _attention_on(bundle, prompt, word):
    """Σ of the cross-attention the word's tokens get, one noisy latent, every layer."""
    probe = AttentionProbe(bundle.denoiser)
    try:
        probe.watch(token_positions(bundle, [prompt], [word], pooler=False))
        gen = torch.Generator().manual_seed(0)
        z = torch.randn((1, *bundle.latent_shape), generator=gen)
        with torch.no_grad():
            bundle.model_output(z, torch.tensor([500]), bundle.encode_prompts([prompt]))
        return float(sum(m.sum() for m in probe.maps))
    finally:
        probe.close()


def test_token_positions_mark_the_words_and_the_pooled_token_only(tiny):
    pos = token_positions(tiny, ["a photo of a star", "star"], ["star", "star"], pooler=True)
    ids = tiny.text.tokenizer(["a photo of a star"], padding="max_length", max_length=77).input_ids[0]
    star = tiny.text.tokenizer("star", add_special_tokens=False).input_ids
    assert pos[0].nonzero().flatten().tolist() == [ids.index(star[0]), ids.index(tiny.text.tokenizer.eos_token_id)]
    assert pos[1].sum() == 2  # "star" and its end-of-text; none of the padding


def test_probe_is_transparent_and_masks_pixels(tiny):
    z, t, c = torch.randn(1, *tiny.latent_shape), torch.tensor([300]), tiny.encode_prompts(["a star"])
    before = tiny.model_output(z, t, c)
    probe = AttentionProbe(tiny.denoiser)
    probe.watch(token_positions(tiny, ["a star"], ["star"], pooler=True))
    assert torch.allclose(tiny.model_output(z, t, c), before, atol=1e-5)
    assert probe.norm_of_all() > 0 and probe.sum_of_norms() >= probe.norm_of_all()
    side = tiny.latent_shape[-1]
    probe.watch(token_positions(tiny, ["a star"], ["star"], pooler=True), torch.zeros(1, 1, side, side))
    tiny.model_output(z, t, c)
    assert float(probe.sum_of_norms()) == 0.0  # outside the mask nothing counts
    probe.close()
    assert all(type(m.processor).__name__ != "_Processor" for m in probe.layers)


def test_probe_records_on_the_unets_device(tiny):
    """Positions and masks are made on the CPU; on a GPU the probabilities are not (MACE failed on CUDA). The meta
    device stands in for one here: mixing it with CPU tensors raises as CUDA does."""
    probe = AttentionProbe(tiny.denoiser)
    probe.watch(torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 1, 8, 8))
    probe.record(torch.ones(2, 3, 16, 5, device="meta"))
    (recorded,) = probe.maps
    probe.close()
    assert recorded.device.type == "meta" and recorded.shape == (2, 3, 16, 5)


def test_fmn_steers_attention_away_from_the_concept(tiny):
    concepts = ConceptSet(["star"])
    edit = _erase(tiny, "fmn", concepts, iterations=6, lr=1e-2, pool_size=2, batch=2, group="xattn")
    edited = edit.apply(tiny)
    assert _attention_on(edited, "a photo of star", "star") < 0.8 * _attention_on(tiny, "a photo of star", "star")
    assert edit.metrics["iterations_run"] == 6
    assert all(".attn2." in k for k in edit.tensors)


def test_salun_trains_only_its_salient_share_of_the_weights(tiny):
    edit = _erase(
        tiny,
        "salun",
        ConceptSet(["star"], ["circle", "square"]),
        iterations=3,
        lr=1e-3,
        pool_size=4,
        retain_size=2,
        batch=2,
        mask_ratio=0.3,
    )
    base = dict(tiny.denoiser.named_parameters())
    moved = sum(int((edit.tensors[f"unet.{n}"] != p).sum()) for n, p in base.items())
    total = sum(p.numel() for p in base.values())
    assert edit.metrics["mask_share"] == pytest.approx(0.3, abs=0.01)
    assert 0 < moved <= 0.301 * total  # Adam leaves a weight whose gradient is always masked exactly where it was


def test_salun_threshold_is_the_kth_largest_magnitude_over_all_tensors():
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(300, generator=g), torch.randn(7, 11, generator=g) * 3, torch.tensor([0.0, -5.0])]
    flat = torch.cat([t.abs().reshape(-1) for t in tensors])
    for share in (0.5, 0.1, 1 / len(flat), 1e-9, 1.0):
        k = max(1, int(round(share * len(flat))))
        assert top_share_threshold(tensors, share) == torch.topk(flat, k).values.min().item()
    assert top_share_threshold([torch.zeros(4)], 0.5) == 0.0


def test_salun_retain_set_comes_from_preserve_or_the_vocabulary(tmp_path):
    assert retain_set(ConceptSet(["star"], ["circle"]), "") == ["circle"]
    vocab = tmp_path / "v.txt"
    vocab.write_text("star | starburst\ncircle\nsquare\n")
    assert retain_set(ConceptSet(["starburst"]), str(vocab)) == ["circle", "square"]
    with pytest.raises(ErasekitError, match="retain set"):
        retain_set(ConceptSet(["star"]), "")


def test_mace_pairs_the_shared_words_and_the_padding():
    # BOS a photo of star EOS  vs  BOS a photo of EOS: prefix 0-3 shared, EOS shared, then padding to 8
    old, new = [0, 1, 2, 3, 9, 5], [0, 1, 2, 3, 5]
    a, b = matching_positions(old, new, 8)
    assert a == [0, 1, 2, 3, 5, 6, 7] and b == [0, 1, 2, 3, 4, 5, 6]
    p = focal_timesteps(1000)
    assert 200 <= int(p.argmax()) <= 400 and float(p[:100].sum() + p[600:].sum()) < 0.05


def test_mace_erases_with_masks_and_changes_only_cross_attention_keys_and_values(tiny):
    seen = []

    def segmented(concept, n, seed):  # a stand-in segmenter: the left half of every image is "the object"
        seen.append((concept, n))
        x = torch.rand(n, 3, 32, 32) * 2 - 1
        mask = torch.zeros(n, 1, 32, 32)
        mask[..., :16] = 1
        return x, mask

    concepts = ConceptSet(["star", "heart"])
    edit = _erase(
        tiny,
        "mace",
        concepts,
        Run(progress=False, scorer=segmented),
        iterations=3,
        lr=1e-2,
        masks="world",
        pool_size=2,
        batch=2,
        templates=("{}", "a photo of {}"),
    )
    assert seen == [("star", 2), ("heart", 2)]  # one LoRA per concept, each on its own segmented images
    assert edit.tensors and all(".attn2.to_k." in k or ".attn2.to_v." in k for k in edit.tensors)
    edited = edit.apply(tiny)
    assert _attention_on(edited, "a photo of star", "star") < _attention_on(tiny, "a photo of star", "star")
    with pytest.raises(ErasekitError, match="segmented images"):
        _erase(tiny, "mace", concepts, masks="world", pool_size=2)


def test_the_miniature_segments_its_objects_exactly():
    from erasekit.world.native import segmented_images

    x, masks = segmented_images()("a starburst", 4, seed=1)
    assert x.shape == (4, 3, 32, 32) and masks.shape == (4, 1, 32, 32)
    assert 0.03 < float(masks.mean()) < 0.5  # an object covers part of each image
    coloured = (x.max(1).values - x.min(1).values) > 0.05  # objects are coloured, backgrounds grey
    inside = masks[:, 0].bool()
    assert bool(coloured[inside].all()) and float(coloured[~inside].float().mean()) < 0.05  # only edge pixels
    with pytest.raises(ErasekitError, match="objects only"):
        segmented_images()("yellow", 1, seed=0)


@pytest.mark.parametrize("method", ["fmn", "salun", "mace", "sld", "negative"])
def test_each_baseline_goes_through_erase_export_and_evaluate(tmp_path, method):
    """On the miniature, from the command line; the export loads in stock diffusers."""
    import diffusers

    fast = {
        "fmn": ["iterations=2", "pool_size=2"],
        "salun": ["iterations=2", "pool_size=2", "retain_size=1"],
        "mace": ["iterations=2", "pool_size=2"],
        "sld": [],
        "negative": [],
    }[method]
    sets = [a for kv in fast for a in ("--set", kv)]
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(main, ["erase", "--method", method, "--erase", "star", "--out", str(run), "--quiet", *sets])
    assert result.exit_code == 0, result.output
    assert Edit.load(run).method == method
    result = runner.invoke(main, ["export", str(run), "--out", str(tmp_path / "pipe")])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = getattr(diffusers, index["_class_name"]).from_pretrained(tmp_path / "pipe")
    assert type(pipe).__name__ == ("StableDiffusionPipelineSafe" if method == "sld" else "StableDiffusionPipeline")
    result = runner.invoke(
        main,
        [
            "evaluate",
            "--edit",
            str(run),
            "--suite",
            "world-objects",
            "--n",
            "1",
            "--steps",
            "4",
            "--out",
            str(tmp_path / "eval"),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert "esr@1" in json.dumps(metrics)
