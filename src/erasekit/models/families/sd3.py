"""Stable Diffusion 3: an MMDiT transformer (joint text-image attention blocks) trained by rectified flow.

- Text: CLIP-L and OpenCLIP-bigG (both with projection) read the prompt (77 tokens); their penultimate states side
  by side (2048 wide) are zero-padded to T5's width and followed by T5-XXL's last hidden state (256 tokens, no
  attention mask): [77 + 256, 4096] per prompt. The pooled vector is both CLIPs' projected end tokens, side by side.
- The unconditional half of guidance is the encoded empty prompt (SD3 never zeroes it).
- The transformer is called with timestep t = 1000 σ; sampling uses the scheduler's static shift (3.0).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from erasekit.core.conditioning import Conditioning
from erasekit.models.bundle import _as_batch, _pooled
from erasekit.models.families.flow import FlowBundle
from erasekit.models.text import TextSpec

T5_TOKENS = 256  # StableDiffusion3Pipeline's max_sequence_length default


class SD3Bundle(FlowBundle):
    TEXT: ClassVar[tuple[TextSpec, ...]] = (
        TextSpec("text_encoder", "tokenizer", "penultimate", pooled="projection"),
        TextSpec("text_encoder_2", "tokenizer_2", "penultimate", pooled="projection"),
        TextSpec("text_encoder_3", "tokenizer_3", "last", max_length=T5_TOKENS),
    )
    PIPELINE: ClassVar[str] = "StableDiffusion3Pipeline"
    TAIL_TEXT: ClassVar[int] = 2  # T5's positions follow the CLIP ones

    @property
    def native_size(self) -> int:
        return self.denoiser.config.sample_size * self.vae_scale_factor

    def join(self, parts) -> Conditioning:
        (first, pooled_1), (second, pooled_2), (t5, _) = parts
        clip = torch.cat([first, second], dim=-1)
        clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return Conditioning(torch.cat([clip, t5], dim=-2), torch.cat([pooled_1, pooled_2], dim=-1))

    def model_output(self, z_t: torch.Tensor, t, cond: Conditioning, guidance: float | None = None) -> torch.Tensor:
        t = _as_batch(t, z_t.shape[0], self.device)
        return self.denoiser(
            hidden_states=z_t.to(self.dtype),
            timestep=t,
            encoder_hidden_states=cond.tokens.to(self.dtype),
            pooled_projections=_pooled(cond, self.family).to(self.dtype),
            return_dict=False,
        )[0]
