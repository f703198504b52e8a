"""FLUX.1: an MMDiT transformer (double then single blocks) trained by rectified flow, guidance-distilled (dev).

- Text: CLIP-L gives only the pooled vector (its final-layer-normed end token, no projection); T5-XXL's last hidden
  state (512 tokens, no attention mask) is the per-token states.
- Latents are 16 channels, packed into 2x2 patches ([B, h/2 · w/2, 64]) for the transformer and unpacked here, with
  the image ids (0, row, col) of the packed grid and zero text ids.
- FLUX.1-dev has no unconditional pass: the guidance scale enters the transformer as an embedding (`guidance` of
  `sample`, 3.5 by default in the pipeline). Predictions for training (`eps`, `predict` without guidance) use that
  default embedding. Classifier-free guidance in the usual sense ("true CFG": a second pass on the negative prompt)
  runs only when a sampler edit asks for it, at its `true_cfg` scale; that is what a negative prompt and SLD mean
  here. FLUX.1-schnell has no guidance embedding.
- The transformer is called with timestep σ = t / 1000 (it multiplies by 1000 itself); sampling uses sigmas
  linspace(1, 1/N, N) shifted by μ of the image's token count, as FluxPipeline does.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from erasekit.core.conditioning import Conditioning
from erasekit.models.bundle import _as_batch, _pooled
from erasekit.models.families.flow import FlowBundle
from erasekit.models.text import TextSpec

T5_TOKENS = 512  # FluxPipeline's max_sequence_length default
GUIDANCE = 3.5  # FluxPipeline's guidance_scale default: the embedded guidance of training-time predictions


def calculate_shift(image_tokens: int, config) -> float:
    """μ, linear in the number of image tokens (diffusers' calculate_shift, with the scheduler's settings)."""
    base, top = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    low, high = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    m = (high - low) / (top - base)
    return image_tokens * m + (low - m * base)


def pack(z: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B, (h/2)(w/2), 4C], each token's channels in (c, dy, dx) order."""
    b, c, h, w = z.shape
    return z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b, _, d = tokens.shape
    return tokens.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, d // 4, h, w)


def image_ids(h: int, w: int, device, dtype) -> torch.Tensor:
    """[(h/2)(w/2), 3]: (0, row, column) of each packed token."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] += torch.arange(h // 2)[:, None]
    ids[..., 2] += torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device, dtype)


class FluxBundle(FlowBundle):
    TEXT: ClassVar[tuple[TextSpec, ...]] = (
        TextSpec("text_encoder", "tokenizer", "last", pooled="pooler"),
        TextSpec("text_encoder_2", "tokenizer_2", "last", max_length=T5_TOKENS),
    )
    MAIN_TEXT: ClassVar[int] = 1  # the T5 tokens are what the transformer attends to
    PIPELINE: ClassVar[str] = "FluxPipeline"
    TAIL_TEXT: ClassVar[int] = 1  # T5

    @property
    def native_size(self) -> int:
        """The VAE's sample size: FLUX.1's 1024 px (FluxPipeline's default), a tiny model's own."""
        return self.vae.config.sample_size

    @property
    def guidance_embedded(self) -> bool:
        return bool(self.denoiser.config.guidance_embeds)

    def join(self, parts) -> Conditioning:
        (_, pooled), (t5, _) = parts
        return Conditioning(t5, pooled)

    def model_output(self, z_t: torch.Tensor, t, cond: Conditioning, guidance: float | None = None) -> torch.Tensor:
        b, _, h, w = z_t.shape
        sigma = _as_batch(t, b, self.device).to(self.dtype) / self.train_steps
        embedded = None
        if self.guidance_embedded:
            embedded = torch.full(
                (b,), GUIDANCE if guidance is None else guidance, device=self.device, dtype=torch.float32
            )
        out = self.denoiser(
            hidden_states=pack(z_t.to(self.dtype)),
            timestep=sigma,
            guidance=embedded,
            pooled_projections=_pooled(cond, self.family).to(self.dtype),
            encoder_hidden_states=cond.tokens.to(self.dtype),
            txt_ids=torch.zeros(cond.length, 3, device=self.device, dtype=self.dtype),
            img_ids=image_ids(h, w, self.device, self.dtype),
            return_dict=False,
        )[0]
        return unpack(out, h, w)

    def cfg_scale(self, guidance: float | None) -> float:
        """A guidance-distilled FLUX runs an unconditional pass only for a sampler edit (at its true_cfg scale)."""
        if not self.guidance_embedded:
            return super().cfg_scale(guidance)
        return self.sampling.true_cfg if self.sampling is not None else 1.0

    def embedded_guidance(self, guidance: float | None) -> float | None:
        return guidance if self.guidance_embedded else None

    def schedule_options(self, steps: int) -> dict:
        _, h, w = self.latent_shape
        sigmas = np.linspace(1.0, 1 / steps, steps)
        return {"sigmas": sigmas, "mu": calculate_shift((h // 2) * (w // 2), self.scheduler.config)}
