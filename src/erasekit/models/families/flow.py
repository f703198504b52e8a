"""The rectified-flow families' shared half (SD3, FLUX): a transformer that predicts the flow velocity, the
flow-matching forward process and the Euler sampler of diffusers' FlowMatchEulerDiscreteScheduler.

    z_σ = (1 − σ) z_0 + σ ε,    σ = t / 1000 ∈ [0, 1)          the forward process
    v   = ε − z_0                                               what the transformer predicts
    ε   = z_σ + (1 − σ) v,      z_0 = z_σ − σ v                 the conversions methods ask for

Training timesteps are uniform over t ∈ [0, 1000), as for the UNet families, so that every method draws t the same
way; sampling uses the family's own shifted schedule (SD3: a static shift; FLUX: shifted by the image's size).
Latents stay [B, C, h, w] above this layer, FLUX's 2x2 packing included.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from erasekit.models.bundle import Bundle


class FlowBundle(Bundle):
    DENOISER: ClassVar[str] = "transformer"
    PREDICTS: ClassVar[str] = "velocity"

    @property
    def patch(self) -> int:
        return self.denoiser.config.patch_size if hasattr(self.denoiser.config, "patch_size") else 2

    @property
    def resolution_step(self) -> int:
        return self.vae_scale_factor * 2  # the latent grid must split into 2x2 patches

    def to_latents(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.vae.config.shift_factor) * self.vae.config.scaling_factor

    def from_latents(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.vae.config.scaling_factor + self.vae.config.shift_factor

    def _sigma(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(t, device=like.device).float() / self.train_steps
        return sigma.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def convert(self, out: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor, quantity: str) -> torch.Tensor:
        s = self._sigma(t, out)
        if quantity == "velocity":
            return out
        return z_t + (1 - s) * out if quantity == "eps" else z_t - s * out

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """z_σ = (1 − σ) z_0 + σ ε with σ = t / 1000 (FlowMatchEulerDiscreteScheduler.scale_noise)."""
        s = self._sigma(torch.as_tensor(t, device=z0.device).reshape(-1).expand(z0.shape[0]), z0)
        return (1 - s) * z0 + s * noise

    def x0_scale(self, t: torch.Tensor) -> torch.Tensor:
        """σ / (1 − σ): z_0 = (z_σ − σ ε) / (1 − σ)."""
        s = self._sigma(t, torch.zeros(1, 1, 1, 1, device=t.device))
        return s / (1 - s)

    def sampler(self, steps: int):
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(steps, device=self.device, **self.schedule_options(steps))
        return scheduler

    def schedule_options(self, steps: int) -> dict:
        """Extra arguments of `set_timesteps` (FLUX's sigmas and the shift μ of its image size)."""
        return {}
