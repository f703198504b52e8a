"""Stable Diffusion XL: the UNet family with two CLIP encoders and micro-conditioning.

- Text: CLIP-L (`text_encoder`) and OpenCLIP-bigG with projection (`text_encoder_2`) each read the prompt (77
  tokens); their penultimate hidden states, side by side, are the per-token states (768 + 1280 = 2048 wide); the
  pooled vector is `text_encoder_2`'s projected end token.
- The UNet also reads `added_cond_kwargs`: that pooled vector and the time ids (original size, crop, target size),
  which the stock pipeline sets to (H, W, 0, 0, H, W) for an H x W image: derived here from the latent size.
- The unconditional half of guidance is zeros (tokens and pooled) when the pipeline's `force_zeros_for_empty_prompt`
  is set (SDXL-base's default), as StableDiffusionXLPipeline does with no negative prompt.
- Forward process and DDIM as SD's (ε-prediction). erasekit samples with DDIM (η = 0) and exports the DDIM
  scheduler, so that the stock pipeline of an export draws erasekit's images.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from erasekit.core.conditioning import Conditioning
from erasekit.models.bundle import _pooled
from erasekit.models.families.sd import UNetBundle
from erasekit.models.text import TextSpec


class SDXLBundle(UNetBundle):
    TEXT: ClassVar[tuple[TextSpec, ...]] = (
        TextSpec("text_encoder", "tokenizer", "penultimate"),
        TextSpec("text_encoder_2", "tokenizer_2", "penultimate", pooled="projection"),
    )
    PIPELINE: ClassVar[str] = "StableDiffusionXLPipeline"

    def join(self, parts) -> Conditioning:
        (first, _), (second, pooled) = parts
        return Conditioning(torch.cat([first, second], dim=-1), pooled)

    def unconditional(self, n: int = 1) -> Conditioning:
        if not self.meta.get("force_zeros_for_empty_prompt", True):
            return super().unconditional(n)
        empty = self.encode_prompts([""])
        return Conditioning(torch.zeros_like(empty.tokens), torch.zeros_like(empty.pooled)).expand(n)

    def added_inputs(self, z_t: torch.Tensor, cond: Conditioning) -> dict:
        h, w = (side * self.vae_scale_factor for side in z_t.shape[-2:])
        ids = torch.tensor([h, w, 0, 0, h, w], device=self.device, dtype=self.dtype).expand(len(z_t), -1)
        return {"added_cond_kwargs": {"text_embeds": _pooled(cond, self.family).to(self.dtype), "time_ids": ids}}

    def to_pipeline(self):
        import diffusers

        pipe = diffusers.StableDiffusionXLPipeline(
            **self.modules,
            **self.tokenizers,
            scheduler=self.scheduler,
            force_zeros_for_empty_prompt=self.meta.get("force_zeros_for_empty_prompt", True),
        )
        return pipe
