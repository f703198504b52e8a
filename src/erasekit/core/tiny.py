"""A tiny random model with the Stable Diffusion 1.x architecture (same block types, small widths).

For plumbing tests and `erasekit info tiny`: it draws nothing meaningful, but every code path that runs on
SD runs on it in milliseconds. Built deterministically (seed 0) with the real CLIP tokenizer.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from erasekit.core.assets import clip_tokenizer

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


def tiny_components(seed: int = 0):
    """(tokenizer, text_encoder, unet, vae, scheduler) with random weights from `seed`."""
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT))
    unet = UNet2DConditionModel(**UNET)
    vae = AutoencoderKL(**VAE)
    return clip_tokenizer(), text_encoder, unet, vae, DDIMScheduler(**SCHEDULER)
