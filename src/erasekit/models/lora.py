"""LoRA adapters (peft) on a student's denoiser: what Dark Miner trains on the attention values and MACE on each
concept's cross-attention keys and values."""

from __future__ import annotations

import torch

from erasekit.models.bundle import Bundle


def add_adapters(student: Bundle, rank: int, targets: list[str], seed: int) -> dict[str, torch.nn.Module]:
    """Rank-`rank` LoRA (lora_alpha = rank: scale 1) on the denoiser modules `targets` (names or name suffixes),
    B = 0 at the start, every other weight frozen; {denoiser module name: LoRA layer}."""
    from peft import LoraConfig
    from peft.tuners.lora import LoraLayer

    student.denoiser.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):  # peft draws A from the global generator: seed it, leave it as it was
        torch.manual_seed(seed)
        student.denoiser.add_adapter(
            LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets), init_lora_weights=True)
        )
    return {name: m for name, m in student.denoiser.named_modules() if isinstance(m, LoraLayer)}


def lora_tensors(student: Bundle, layers: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """The adapters as an Edit's LoRA tensors: W += B @ A (lora_alpha = rank: scale 1)."""
    out, prefix = {}, student.DENOISER
    for name, layer in layers.items():
        out[f"{prefix}.{name}.weight.lora_A"] = layer.lora_A["default"].weight.detach().clone()
        out[f"{prefix}.{name}.weight.lora_B"] = layer.lora_B["default"].weight.detach().clone()
    return out
