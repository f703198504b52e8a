"""Images as erasekit passes them around: [B, 3, H, W] floats in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """`images` at `size` x `size`: the shorter side scaled to `size` (bicubic, antialiased), then the centre
    cropped, as classifiers and textual inversion prepare theirs. Images already of that size come back as they are."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    images = F.interpolate(
        images.float(),
        size=(max(size, round(h * scale)), max(size, round(w * scale))),
        mode="bicubic",
        antialias=True,
        align_corners=False,
    ).clamp(0, 1)
    top, left = (images.shape[-2] - size) // 2, (images.shape[-1] - size) // 2
    return images[..., top : top + size, left : left + size]


def thumbnails(images: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 3, H, W] images about `size` pixels high: small ones enlarged by a whole factor (nearest neighbour, so the
    miniature's pixels stay sharp), large ones reduced (antialiased), so that a report of 512 px images stays small."""
    h, w = images.shape[-2:]
    if h < size:
        k = size // h
        return images.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)
    if h > size:
        return F.interpolate(
            images.float(),
            size=(size, max(1, round(w * size / h))),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        ).clamp(0, 1)
    return images
