"""Seeding: one place that makes runs repeatable (same seed, same machine -> same bytes)."""

from __future__ import annotations

import torch


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on `device` seeded with `seed` (CPU generators give the same noise on every machine)."""
    return torch.Generator(device=device).manual_seed(int(seed))
