"""Seeding: one place that makes runs repeatable (same seed, same machine -> same bytes)."""

from __future__ import annotations

import torch


def step_seed(seed: int, step: int, stream: int = 0, stride: int = 7_919, modulus: int = 2**63) -> int:
    """The seed of one step's draws (and of one stream of draws within it): every training loop mixes (seed,
    stream, step) with this one formula, so a batch is a pure function of them and a resumed run repeats it."""
    return (seed * 1_000_003 + stream * stride + step) % modulus


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on `device` seeded with `seed` (CPU generators give the same noise on every machine)."""
    return torch.Generator(device=device).manual_seed(int(seed))
