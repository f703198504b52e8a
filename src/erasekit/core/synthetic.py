"""Models with random weights, for plumbing, tests and cost measurements: nothing they draw means anything, but every
code path that runs on a real checkpoint runs on them.

- `tiny_components`: the Stable Diffusion 1.x architecture at tiny widths (same block types); milliseconds per pass.
- `full_size_components(arch)`: a real-size model of a shipped architecture ("sd1", "sd2"), built from the same
  component configs a single-file checkpoint is read with (`core/configs/<arch>`). Time and memory do not depend on
  the weights, so this is what real-size smoke tests and cost benchmarks run on.

Both are deterministic for a seed and use the real CLIP tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from erasekit.core.assets import CONFIGS, clip_tokenizer
from erasekit.core.errors import ErasekitError

UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=2, norm_num_groups=8,
)
VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8,
    sample_size=16,
)
TEXT = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=49408,
    max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 clip_sample=False, set_alpha_to_one=False, steps_offset=1)
FULL_SIZE = ("sd1", "sd2")  # the architectures whose component configs ship in core/configs


def tiny_components(seed: int = 0):
    """(tokenizer, text_encoder, unet, vae, scheduler) with random weights from `seed`."""
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT))
    unet = UNet2DConditionModel(**UNET)
    vae = AutoencoderKL(**VAE)
    return clip_tokenizer(), text_encoder, unet, vae, DDIMScheduler(**SCHEDULER)


def full_size_components(arch: str, seed: int = 0):
    """(tokenizer, text_encoder, unet, vae, scheduler) of the shipped `arch` config at its real size, with the
    modules' own random initialisation from `seed` (SD-1.x: 860M UNet parameters, 3.4 GB in fp32; SD-2.x: 866M and
    the 1024-wide OpenCLIP-H text encoder, v-prediction)."""
    if arch not in FULL_SIZE:
        raise ErasekitError(f"no shipped full-size config for {arch!r}; valid: {', '.join(FULL_SIZE)}")
    config = Path(str(CONFIGS / arch))
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(str(config / "text_encoder")))
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(config / "unet")))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(config / "vae")))
    scheduler = DDIMScheduler.from_pretrained(str(config / "scheduler"))
    tokenizer = clip_tokenizer(pad_token="!" if arch == "sd2" else None)
    return tokenizer, text_encoder, unet, vae, scheduler


def save_full_size(arch: str, out: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Write `full_size_components(arch)` as a diffusers pipeline folder, as a user's checkpoint would be (fp32)."""
    from erasekit.core.bundle import Bundle

    bundle = Bundle(*full_size_components(arch, seed), source=f"random {arch}", arch="diffusers")
    for module in (bundle.text_encoder, bundle.unet, bundle.vae):
        module.eval().requires_grad_(False)
    return bundle.save_pretrained(out, overwrite=overwrite)
