"""Seeded generation and image grids."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from erasekit.core.bundle import Bundle
from erasekit.core.errors import ErasekitError


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [0, 1] -> uint8 [B, H, W, 3]."""
    return (images.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def grid(images: torch.Tensor, nrow: int = 8, upscale: int = 1) -> Image.Image:
    """One PIL image with the batch laid out in rows of `nrow` (nearest-neighbour upscaled)."""
    arr = to_uint8(images)
    b, h, w, _ = arr.shape
    rows = -(-b // nrow)
    canvas = np.full((rows * h, nrow * w, 3), 255, np.uint8)
    for i, im in enumerate(arr):
        r, c = divmod(i, nrow)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = im
    out = Image.fromarray(canvas)
    return out.resize((out.width * upscale, out.height * upscale), Image.NEAREST) if upscale > 1 else out


def generate_batched(bundle: Bundle, prompts: list[str], seeds: list[int], steps: int = 25, guidance: float = 5.0,
                     batch: int = 64) -> torch.Tensor:
    """Images in [0, 1] for (prompt, seed) pairs, `batch` at a time."""
    if len(prompts) != len(seeds):
        raise ErasekitError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    out = [bundle.generate(prompts[i : i + batch], seeds[i : i + batch], steps=steps, guidance=guidance)
           for i in range(0, len(prompts), batch)]
    return torch.cat(out)


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Save to a temporary name and rename, so an interrupted save leaves nothing half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format=path.suffix.lstrip(".").upper().replace("JPG", "JPEG") or "PNG")
    os.replace(tmp, path)
    return path
