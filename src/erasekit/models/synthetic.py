"""Models with random weights, for plumbing, tests and cost measurements: nothing they draw means anything, but every
code path that runs on a real checkpoint runs on them.

- `tiny_components(family)`: each family's architecture at tiny widths (`load_bundle("tiny")`, `"tiny-sdxl"`,
  `"tiny-sd3"`, `"tiny-flux"`); milliseconds per pass, and the family's stock pipeline loads their saved folders.
  Their CLIP tokenizers are the real CLIP BPE vocabulary; their T5 tokenizer is a small Unigram model in T5's
  layout (`t5_tokenizer`), because T5's own SentencePiece model cannot be had offline.
- `full_size_components(family)`: a real-size model built from the component configs that ship in
  `models/configs/<family>` (the same ones a single-file checkpoint is read with). Time and memory do not depend on
  the weights, so this is what real-size smoke tests and cost benchmarks run on.

Both are deterministic for a seed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from erasekit.core.assets import ASSETS, CONFIGS
from erasekit.core.errors import ErasekitError
from erasekit.models.text import clip_tokenizer

# ---- the tiny models --------------------------------------------------------------------------------
UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(16, 32),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=2,
    norm_num_groups=8,
)
VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(8, 16),
    layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    norm_num_groups=8,
    sample_size=16,
)
TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    vocab_size=49408,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)
SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
)
# the newer families' tiny VAE: four levels as the real ones (8x down), eight channels wide
VAE_8X = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(8, 8, 16, 16),
    layers_per_block=1,
    norm_num_groups=4,
    sample_size=64,
)
SDXL_UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(16, 32),
    layers_per_block=1,
    norm_num_groups=8,
    attention_head_dim=(2, 4),
    transformer_layers_per_block=(1, 1),
    use_linear_projection=True,
    cross_attention_dim=64,
    addition_embed_type="text_time",
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=6 * 8 + 32,
)
SD3_TRANSFORMER = dict(
    sample_size=8,
    patch_size=2,
    in_channels=16,
    out_channels=16,
    num_layers=2,
    attention_head_dim=8,
    num_attention_heads=4,
    joint_attention_dim=64,
    caption_projection_dim=32,
    pooled_projection_dim=64,
    pos_embed_max_size=16,
)
FLUX_TRANSFORMER = dict(
    patch_size=1,
    in_channels=64,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    pooled_projection_dim=32,
    guidance_embeds=True,
    axes_dims_rope=(4, 6, 6),
)
FLOW_SCHEDULER = {
    "sd3": dict(num_train_timesteps=1000, shift=3.0),
    "flux": dict(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    ),
}
# each denoiser's config
TINY: dict[str, Mapping[str, object]] = {
    "sd1": UNET,
    "sdxl": SDXL_UNET,
    "sd3": SD3_TRANSFORMER,
    "flux": FLUX_TRANSFORMER,
}
FULL_SIZE = ("sd1", "sd2", "sdxl", "sd3", "flux")  # the families whose component configs ship in models/configs


def t5_tokenizer():
    """The shipped T5-layout tokenizer of the tiny models (assets/t5_tokenizer, made by `build_t5_tokenizer`)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(ASSETS / "t5_tokenizer"))


T5_WORDS = [
    "a",
    "an",
    "the",
    "of",
    "and",
    "with",
    "in",
    "on",
    "at",
    "by",
    "for",
    "to",
    "from",
    "photo",
    "picture",
    "painting",
    "drawing",
    "image",
    "portrait",
    "style",
    "art",
    "artist",
    "cat",
    "dog",
    "bird",
    "horse",
    "car",
    "tree",
    "house",
    "city",
    "river",
    "mountain",
    "sky",
    "sun",
    "moon",
    "star",
    "flower",
    "garden",
    "forest",
    "beach",
    "ocean",
    "boat",
    "train",
    "plane",
    "church",
    "castle",
    "bridge",
    "road",
    "street",
    "person",
    "man",
    "woman",
    "child",
    "girl",
    "boy",
    "face",
    "eye",
    "hand",
    "red",
    "green",
    "blue",
    "yellow",
    "black",
    "white",
    "orange",
    "purple",
    "pink",
    "brown",
    "gray",
    "golden",
    "silver",
    "bright",
    "dark",
    "small",
    "big",
    "large",
    "tiny",
    "huge",
    "old",
    "new",
    "young",
    "beautiful",
    "ugly",
    "happy",
    "sad",
    "cute",
    "scary",
    "realistic",
    "abstract",
    "detailed",
    "sketch",
    "oil",
    "watercolor",
    "pencil",
    "digital",
    "render",
    "cartoon",
    "anime",
    "vintage",
    "modern",
    "night",
    "day",
    "morning",
    "evening",
    "snow",
    "rain",
    "fog",
    "cloud",
    "fire",
    "water",
    "stone",
    "wood",
    "glass",
    "metal",
    "gold",
    "iron",
    "nude",
    "naked",
    "van",
    "gogh",
    "picasso",
    "monet",
    "circle",
    "square",
    "triangle",
    "cross",
    "heart",
    "diamond",
    "ring",
    "arrow",
    "stripes",
    "dots",
    "checks",
    "gradient",
    "noise",
    "plain",
    "mark",
    "mysterious",
    "enchanted",
    "cursed",
    "sacred",
    "haunted",
    "forbidden",
]


def build_t5_tokenizer(out: str | Path, words: list[str] = T5_WORDS, vocab_size: int = 300) -> Path:
    """Train a small Unigram tokenizer in T5's layout (<pad> 0, </s> 1, <unk> 2, '▁' word starts, </s> appended)
    on `words`, and save it as transformers' T5 tokenizer. Deterministic: the shipped asset is its output."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(list(words) + [" ".join(words[i : i + 6]) for i in range(0, len(words), 3)], trainer)
    vocab = json.loads(tok.to_str())["model"]["vocab"]
    t5 = T5TokenizerFast(vocab=[tuple(v) for v in vocab], extra_ids=0, model_max_length=512)
    t5.save_pretrained(str(out))
    return Path(out)


def _clip_text(with_projection: bool, seed: int, hidden: int = 32):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(**{**TEXT, "hidden_size": hidden, "intermediate_size": 2 * hidden}, projection_dim=32)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _t5(seed: int, vocab: int, width: int):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(
        T5Config(
            vocab_size=vocab,
            d_model=width,
            d_kv=width // 4,
            d_ff=2 * width,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            feed_forward_proj="gated-gelu",
            is_encoder_decoder=False,
            use_cache=False,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )


def _vae(seed: int, **config):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(**config)


def tiny_components(family: str = "sd1", seed: int = 0) -> tuple[dict, dict, Any, dict]:
    """(modules, tokenizers, scheduler, pipeline options) of `family` at tiny size, random weights from `seed`."""
    from diffusers import (
        DDIMScheduler,
        FlowMatchEulerDiscreteScheduler,
        FluxTransformer2DModel,
        SD3Transformer2DModel,
        UNet2DConditionModel,
    )

    clip = clip_tokenizer()
    if family == "sd1":
        text = _clip_text(False, seed)
        unet, vae = UNet2DConditionModel(**UNET), _vae(seed, **VAE)
        return ({"unet": unet, "text_encoder": text, "vae": vae}, {"tokenizer": clip}, DDIMScheduler(**SCHEDULER), {})
    if family == "sdxl":
        first, second = _clip_text(False, seed + 1), _clip_text(True, seed + 2)
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**SDXL_UNET)
        vae = _vae(seed + 3, **VAE_8X, latent_channels=4, scaling_factor=0.13025)
        return (
            {"unet": unet, "text_encoder": first, "text_encoder_2": second, "vae": vae},
            {"tokenizer": clip, "tokenizer_2": clip_tokenizer(pad_token="!")},
            DDIMScheduler(**SCHEDULER),
            {"force_zeros_for_empty_prompt": True},
        )
    t5 = t5_tokenizer()
    if family == "sd3":
        first, second, third = _clip_text(True, seed + 1), _clip_text(True, seed + 2), _t5(seed + 4, len(t5), 64)
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(**SD3_TRANSFORMER)
        vae = _vae(
            seed + 3,
            **VAE_8X,
            latent_channels=16,
            scaling_factor=1.5305,
            shift_factor=0.0609,
            use_quant_conv=False,
            use_post_quant_conv=False,
        )
        return (
            {
                "transformer": transformer,
                "text_encoder": first,
                "text_encoder_2": second,
                "text_encoder_3": third,
                "vae": vae,
            },
            {"tokenizer": clip, "tokenizer_2": clip_tokenizer(pad_token="!"), "tokenizer_3": t5},
            FlowMatchEulerDiscreteScheduler(**FLOW_SCHEDULER["sd3"]),
            {},
        )
    if family == "flux":
        first, second = _clip_text(False, seed + 1), _t5(seed + 4, len(t5), 32)
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(**FLUX_TRANSFORMER)
        vae = _vae(
            seed + 3,
            **VAE_8X,
            latent_channels=16,
            scaling_factor=0.3611,
            shift_factor=0.1159,
            use_quant_conv=False,
            use_post_quant_conv=False,
        )
        return (
            {"transformer": transformer, "text_encoder": first, "text_encoder_2": second, "vae": vae},
            {"tokenizer": clip, "tokenizer_2": t5},
            FlowMatchEulerDiscreteScheduler(**FLOW_SCHEDULER["flux"]),
            {},
        )
    raise ErasekitError(f"no tiny model of family {family!r}; valid: {', '.join(TINY)}")


def full_size_components(
    family: str, seed: int = 0, device: str | None = None, dtype: torch.dtype = torch.float32
) -> tuple[dict, dict, object, dict]:
    """(modules, tokenizers, scheduler, options) of the shipped `family` config (models/configs/<family>) at its real
    size, with the modules' own random initialisation from `seed` (SD-1.x: 860M UNet parameters, 3.4 GB in fp32;
    FLUX.1-dev: 11.9B in its transformer). `device="meta"` builds them without memory (counting parameters). SD3's
    and FLUX's T5 tokenizer is the small shipped one (T5's own needs its SentencePiece model): its ids stay inside
    T5's vocabulary, which is all that cost measurements need. `dtype` is the dtype the parameters are made in (FLUX's
    67 GB of fp32 never exist when bf16 is asked)."""
    import diffusers
    import transformers

    if family not in FULL_SIZE:
        raise ErasekitError(f"no shipped full-size config for {family!r}; valid: {', '.join(FULL_SIZE)}")
    from erasekit.models.families import bundle_class

    config, cls = Path(str(CONFIGS / family)), bundle_class(family)
    torch.manual_seed(seed)
    modules, default = {}, torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device or "cpu"):
            for name in (cls.DENOISER, *(spec.module for spec in cls.TEXT), "vae"):
                values = json.loads((config / name / "config.json").read_text())
                if "architectures" in values:  # transformers
                    model = getattr(transformers, values["architectures"][0])
                    modules[name] = model(model.config_class(**values))
                else:
                    modules[name] = getattr(diffusers, values["_class_name"]).from_config(values)
    finally:
        torch.set_default_dtype(default)
    scheduler_config = json.loads((config / "scheduler" / "scheduler_config.json").read_text())
    scheduler = getattr(diffusers, scheduler_config["_class_name"]).from_config(scheduler_config)
    tokenizers = {}
    for spec in cls.TEXT:
        t5 = type(modules[spec.module]).__name__.startswith("T5")
        pad = "!" if family == "sd2" or spec.module == "text_encoder_2" and not t5 else None
        tokenizers[spec.tokenizer] = t5_tokenizer() if t5 else clip_tokenizer(pad_token=pad)
    options = {"force_zeros_for_empty_prompt": True} if family == "sdxl" else {}
    return modules, tokenizers, scheduler, options


def save_full_size(family: str, out: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Write `full_size_components(family)` as a diffusers pipeline folder, as a user's checkpoint would be (fp32)."""
    from erasekit.models.load import assemble

    bundle = assemble(*full_size_components(family, seed), source=f"random {family}", family=family)
    return bundle.save_pretrained(out, overwrite=overwrite)
