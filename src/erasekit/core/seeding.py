"""Seeding: one place that makes runs repeatable (same seed, same machine -> same bytes)."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on `device` seeded with `seed` (CPU generators give the same noise on every machine)."""
    return torch.Generator(device=device).manual_seed(int(seed))
