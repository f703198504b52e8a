"""Conditioning: what a denoiser reads of a batch of prompts, whatever the model family.

- `tokens` [B, L, D]: the per-token states the denoiser attends to (SD's last hidden state; SDXL's two encoders'
  penultimate states side by side; SD3's CLIP states followed by T5's; FLUX's T5 states).
- `pooled` [B, P] or None: the pooled text vector of the families that read one (SDXL, SD3, FLUX).

The family's other inputs do not depend on the prompt and are derived where the denoiser is called: SDXL's time
ids from the image size, FLUX's text and image ids from the lengths, its guidance embedding from the sampling
settings. So prompts, learned words, keys and mined embeddings are all one type, and classifier-free guidance,
SLD, keys and attacks handle it without knowing the family.

It batches like a tensor along its first dimension: `cond[k]` is prompt k (a batch of one), `cond.expand(b)`
repeats a batch of one b times, `Conditioning.cat([...])` joins batches, `cond.repeat(m)` repeats the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Conditioning:
    tokens: torch.Tensor  # [B, L, D]
    pooled: torch.Tensor | None = None  # [B, P]

    def __post_init__(self):
        if self.tokens.dim() != 3:
            raise ValueError(f"conditioning tokens must be [B, L, D], got shape {tuple(self.tokens.shape)}")
        if self.pooled is not None and (self.pooled.dim() != 2 or len(self.pooled) != len(self.tokens)):
            raise ValueError(
                f"pooled conditioning must be [B, P] with B = {len(self.tokens)}, got {tuple(self.pooled.shape)}"
            )

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Conditioning:
        """The same operation on every tensor it holds (each keeps its batch dimension first)."""
        return Conditioning(fn(self.tokens), None if self.pooled is None else fn(self.pooled))

    # ---- batches ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __getitem__(self, index) -> Conditioning:
        """Rows of the batch: an int gives a batch of one (prompt `index`), a slice, list or tensor those rows."""
        if isinstance(index, int):
            if not -len(self) <= index < len(self):
                raise IndexError(f"conditioning index {index} out of range for a batch of {len(self)}")
            index = slice(index % len(self), index % len(self) + 1)
        return self.map(lambda x: x[index])

    def __iter__(self):
        """Each prompt's conditioning, a batch of one."""
        return (self[i] for i in range(len(self)))

    def expand(self, batch: int) -> Conditioning:
        """A batch of one, `batch` times (views, as `tensor.expand`)."""
        if len(self) != 1:
            raise ValueError(f"expand repeats a batch of one, not of {len(self)}")
        return self.map(lambda x: x.expand(batch, *x.shape[1:]))

    def repeat(self, times: int) -> Conditioning:
        """The whole batch `times` times over, in order (as `tensor.repeat` along the batch)."""
        return self.map(lambda x: x.repeat(times, *([1] * (x.dim() - 1))))

    def repeat_interleave(self, times: int) -> Conditioning:
        return self.map(lambda x: x.repeat_interleave(times, dim=0))

    @staticmethod
    def cat(items: Sequence[Conditioning]) -> Conditioning:
        """The batches one after the other (all with a pooled vector, or none)."""
        pooled = [c.pooled for c in items]
        if any(p is None for p in pooled) and not all(p is None for p in pooled):
            raise ValueError("cannot join conditionings with and without a pooled vector")
        return Conditioning(torch.cat([c.tokens for c in items]), None if pooled[0] is None else torch.cat(pooled))

    # ---- tensors ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @property
    def dtype(self) -> torch.dtype:
        return self.tokens.dtype

    @property
    def length(self) -> int:
        return self.tokens.shape[1]

    @property
    def width(self) -> int:
        return self.tokens.shape[2]

    def to(self, *args, **kwargs) -> Conditioning:
        return self.map(lambda x: x.to(*args, **kwargs))

    def detach(self) -> Conditioning:
        return self.map(torch.Tensor.detach)

    def clone(self) -> Conditioning:
        return self.map(torch.Tensor.clone)

    def scaled(self, factor: float) -> Conditioning:
        """factor · c, every part of it (Dark Miner's 0·c and −c)."""
        return self.map(lambda x: factor * x)

    def with_tokens(self, tokens: torch.Tensor) -> Conditioning:
        """The same pooled vector with other per-token states (a key spliced in, a mined or truncated sequence)."""
        return replace(self, tokens=tokens)

    def first(self, length: int) -> Conditioning:
        """The first `length` token positions (Dark Miner's short embeddings), the pooled vector unchanged."""
        return self.with_tokens(self.tokens[:, :length])

    @staticmethod
    def mix(weights: torch.Tensor, items: Conditioning) -> Conditioning:
        """Σ_j w_j c_j over the batch of `items`, differentiable in `weights` [R] (AP/AGE's searched concept)."""

        def weigh(x):
            return torch.einsum("r,r...->...", weights.to(x.device, x.dtype), x)[None]

        return items.map(weigh)
