"""Stable Diffusion 1.x and 2.x (and the miniature, an SD-1 model): a UNet with cross-attention, one CLIP text
encoder whose last hidden state it reads, an AutoencoderKL, and DDPM's forward process with DDIM sampling.

SD-1.x predicts the noise ε; SD-2.x (768) predicts v = sqrt(ᾱ) ε − sqrt(1 − ᾱ) x0 (`prediction_type` of its
scheduler). The forward process is z_t = sqrt(ᾱ_t) z_0 + sqrt(1 − ᾱ_t) ε.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from diffusers import DDIMScheduler

from erasekit.core.conditioning import Conditioning
from erasekit.models.bundle import Bundle, _as_batch
from erasekit.models.text import TextSpec


class UNetBundle(Bundle):
    """The DDPM families' shared half: a UNet's call, ε/v/x0 conversions, the forward process and DDIM."""

    DENOISER: ClassVar[str] = "unet"

    def model_output(self, z_t: torch.Tensor, t, cond: Conditioning, guidance: float | None = None) -> torch.Tensor:
        t = _as_batch(t, z_t.shape[0], self.device)
        return self.denoiser(
            z_t.to(self.dtype), t, encoder_hidden_states=cond.tokens.to(self.dtype), **self.added_inputs(z_t, cond)
        ).sample

    def added_inputs(self, z_t: torch.Tensor, cond: Conditioning) -> dict:
        """Keyword arguments of the UNet call beyond the text's states (SDXL's pooled vector and time ids)."""
        return {}

    @property
    def predicts_v(self) -> bool:
        return self.scheduler.config.prediction_type == "v_prediction"

    def _alpha(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        a = self.scheduler.alphas_cumprod.to(like.device)[t.long()]
        return a.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def convert(self, out: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor, quantity: str) -> torch.Tensor:
        a = self._alpha(t, out)
        eps = a.sqrt() * out + (1 - a).sqrt() * z_t if self.predicts_v else out  # eps = sqrt(a) v + sqrt(1-a) z_t
        if quantity == "eps":
            return eps
        x0 = (z_t - (1 - a).sqrt() * eps) / a.sqrt()
        return x0 if quantity == "x0" else eps - x0

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """z_t = sqrt(ᾱ_t) z_0 + sqrt(1 − ᾱ_t) ε (the forward process at training timestep t)."""
        t = torch.as_tensor(t, device=z0.device).long().reshape(-1).expand(z0.shape[0])
        return self.scheduler.add_noise(z0, noise, t)

    def x0_scale(self, t: torch.Tensor) -> torch.Tensor:
        """sqrt((1 − ᾱ_t) / ᾱ_t): x̂0 = (z_t − sqrt(1 − ᾱ_t) ε) / sqrt(ᾱ_t)."""
        a = self.scheduler.alphas_cumprod.to(t.device)[t.long()].float().reshape(-1, 1, 1, 1)
        return ((1 - a) / a).sqrt()

    def sampler(self, steps: int):
        scheduler = DDIMScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)
        return scheduler


class SDBundle(UNetBundle):
    """SD 1.x / 2.x: one CLIP encoder, its last hidden state (SD-2.x's OpenCLIP-H too, as diffusers converts it)."""

    TEXT: ClassVar[tuple[TextSpec, ...]] = (TextSpec("text_encoder", "tokenizer", "last"),)
    PIPELINE: ClassVar[str] = "StableDiffusionPipeline"

    def to_pipeline(self):
        """StableDiffusionPipeline (no safety checker), or StableDiffusionPipelineSafe with its safety concept set
        when the bundle samples with SLD."""
        import diffusers

        from erasekit.core.sampler import SAFE_PIPELINE

        concept = self.sampling.safety_concept if self.sampling is not None else ""
        safe = bool(concept)
        cls = getattr(diffusers, SAFE_PIPELINE if safe else self.PIPELINE)
        pipe = cls(
            **self.modules,
            **self.tokenizers,
            scheduler=self.scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        if safe:
            pipe.safety_concept = concept
        return pipe
