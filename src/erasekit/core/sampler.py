"""Sampler edits: a change to how images are sampled, not to any weight.

Two exist: a negative prompt (the unconditional half of classifier-free guidance becomes ε(z_t, c_neg), the floor
every user of SD already has) and Safe Latent Diffusion's safety guidance (Schramowski et al., CVPR 2023), which
steers each step away from a safety concept S. `Bundle.sample` applies a bundle's `Sampling`, so every image
erasekit makes (generate, evaluate, attacks, the bench) goes through it.

SLD, as diffusers' StableDiffusionPipelineSafe computes it (the paper's equation numbers):

    g      = ε(c_p) − ε(∅)                                         classifier-free guidance
    μ      = clamp(s_S |ε(c_p) − ε(S)|, max 1) where ε(c_p) − ε(S) < λ, else 0          (Eq. 6)
    γ      = μ ⊙ (ε(S) − ε(∅)) + s_m ν                                                   (Eqs. 4, 7)
    ν      ← β_m ν + (1 − β_m) γ                                                         (Eq. 8)
    ε̃      = ε(∅) + s_g (g − γ)  from step `warmup` on, ε(∅) + s_g g before            (Eq. 3)

with s_S `sld_guidance_scale`, λ `sld_threshold`, s_m `sld_momentum_scale`, β_m `sld_mom_beta`. The paper's four
hyper-parameter sets are `SLD_LEVELS` (diffusers' SafetyConfig, the same numbers). Safety guidance costs a third
UNet evaluation per step (ε(S)), batched with the other two.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch

from erasekit.core.errors import ErasekitError

SLD_LEVELS = {  # the paper's hyper-parameter sets (Table/§ "Configuration"; diffusers' SafetyConfig)
    "weak": {
        "sld_warmup_steps": 15,
        "sld_guidance_scale": 20.0,
        "sld_threshold": 0.0,
        "sld_momentum_scale": 0.0,
        "sld_mom_beta": 0.0,
    },
    "medium": {
        "sld_warmup_steps": 10,
        "sld_guidance_scale": 1000.0,
        "sld_threshold": 0.01,
        "sld_momentum_scale": 0.3,
        "sld_mom_beta": 0.4,
    },
    "strong": {
        "sld_warmup_steps": 7,
        "sld_guidance_scale": 2000.0,
        "sld_threshold": 0.025,
        "sld_momentum_scale": 0.5,
        "sld_mom_beta": 0.7,
    },
    "max": {
        "sld_warmup_steps": 0,
        "sld_guidance_scale": 5000.0,
        "sld_threshold": 1.0,
        "sld_momentum_scale": 0.5,
        "sld_mom_beta": 0.7,
    },
}
SLD_KEYS = tuple(SLD_LEVELS["strong"])
SAFE_PIPELINE = "StableDiffusionPipelineSafe"  # diffusers' SLD pipeline (diffusers.pipelines.deprecated)
CALL_FILE = "sampler.json"  # beside an exported pipeline: the safety concept and the call's keyword arguments


@dataclass(frozen=True)
class Sampling:
    """How a bundle samples: a negative prompt and/or SLD's safety concept with its guidance settings."""

    negative_prompt: str = ""
    safety_concept: str = ""  # "" turns safety guidance off
    sld_warmup_steps: int = 0
    sld_guidance_scale: float = 0.0
    sld_threshold: float = 0.0
    sld_momentum_scale: float = 0.0
    sld_mom_beta: float = 0.0
    true_cfg: float = 4.0  # a guidance-distilled model (FLUX-dev): the scale of the unconditional pass this edit adds

    def __post_init__(self):
        numbers = [
            self.sld_guidance_scale,
            self.sld_threshold,
            self.sld_momentum_scale,
            self.sld_mom_beta,
            self.true_cfg,
        ]
        if not all(math.isfinite(float(v)) for v in numbers) or self.sld_warmup_steps < 0:
            raise ErasekitError(f"invalid SLD settings {asdict(self)}: every number must be finite, warmup ≥ 0")
        if not 0 <= self.sld_mom_beta <= 1:
            raise ErasekitError(f"sld_mom_beta must lie in [0, 1], got {self.sld_mom_beta}")
        if not self.negative_prompt.strip() and not self.safety_concept.strip():
            raise ErasekitError("a sampler edit needs a negative prompt or a safety concept; it has neither")

    @property
    def safety(self) -> bool:
        """Whether safety guidance runs (diffusers: only with s_S > 1, and only under classifier-free guidance)."""
        return bool(self.safety_concept.strip()) and self.sld_guidance_scale > 1.0

    @classmethod
    def from_dict(cls, values: dict) -> Sampling:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ErasekitError(f"unknown sampler setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        return cls(**values)

    def as_dict(self) -> dict:
        """The settings, `true_cfg` only where it differs from its default (so that sampler edits made before it
        existed keep the manifests and fingerprints they had)."""
        out = asdict(self)
        return out if out["true_cfg"] != Sampling.true_cfg else {k: v for k, v in out.items() if k != "true_cfg"}

    def call_kwargs(self) -> dict:
        """The keyword arguments that make a stock diffusers pipeline sample like this (see `CALL_FILE`)."""
        kwargs = {"negative_prompt": self.negative_prompt} if self.negative_prompt else {}
        if self.safety_concept:
            kwargs.update({k: getattr(self, k) for k in SLD_KEYS})
        return kwargs


def safety_guidance(
    out_u: torch.Tensor, out_c: torch.Tensor, out_s: torch.Tensor, momentum: torch.Tensor | None, step: int, s: Sampling
) -> tuple[torch.Tensor, torch.Tensor]:
    """(g − γ or g, the new momentum ν) for one sampling step: Eqs. 3–8 above, in diffusers' order."""
    g = out_c - out_u
    if momentum is None:
        momentum = torch.zeros_like(g)
    gap = out_c - out_s
    mu = torch.clamp(gap.abs() * s.sld_guidance_scale, max=1.0)
    mu = torch.where(gap >= s.sld_threshold, torch.zeros_like(mu), mu)  # Eq. 6: only where ε(c_p) is near ε(S)
    gamma = mu * (out_s - out_u) + s.sld_momentum_scale * momentum  # Eqs. 4 and 7
    momentum = s.sld_mom_beta * momentum + (1 - s.sld_mom_beta) * gamma  # Eq. 8 (builds up during warm-up too)
    return (g - gamma if step >= s.sld_warmup_steps else g), momentum
