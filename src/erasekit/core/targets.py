"""Named parameter groups of the UNet, as the ESD / UCE literature trains them.

ESD (Gandikota et al. 2023) names its variants by group: ESD-x trains the cross-attention (`xattn`),
ESD-u everything but it (`noxattn`, which, as in the official code, also leaves the time embedding and the
output head alone), ESD-x-strict only the key/value projections (`xattn-kv`, also what UCE/TIME edit in closed
form). Names are diffusers UNet2DConditionModel parameter names.
"""

from __future__ import annotations

import torch

from erasekit.core.errors import ErasekitError

FROZEN_BY_NOXATTN = ("time_embedding.", "conv_out.", "conv_norm_out.")


def _xattn(name: str) -> bool:
    return ".attn2." in name


GROUPS = {
    "xattn": ("all cross-attention (attn2) parameters (ESD-x)", _xattn),
    "xattn-kv": ("cross-attention key/value projections attn2.to_k, attn2.to_v (ESD-x-strict, UCE)",
                 lambda n: ".attn2.to_k." in n or ".attn2.to_v." in n),
    "noxattn": ("everything but cross-attention, time embedding and output head (ESD-u)",
                lambda n: not _xattn(n) and not n.startswith(FROZEN_BY_NOXATTN)),
    "selfattn": ("self-attention (attn1) parameters", lambda n: ".attn1." in n),
    "full": ("every UNet parameter", lambda n: True),
}


def select(unet: torch.nn.Module, group: str) -> tuple[list[str], list[torch.nn.Parameter]]:
    """(names, parameters) of the UNet that belong to `group`."""
    if group not in GROUPS:
        raise ErasekitError(f"unknown parameter group {group!r}; valid: {', '.join(GROUPS)}")
    keep = GROUPS[group][1]
    pairs = [(n, p) for n, p in unet.named_parameters() if keep(n)]
    if not pairs:
        raise ErasekitError(f"parameter group {group!r} selects no parameter of this UNet")
    names, params = zip(*pairs)
    return list(names), list(params)


def cross_attention_layers(unet: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The cross-attention modules (attn2) of the UNet, in the order the UNet runs them."""
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    layers = [(n, m) for n, m in unet.named_modules() if n.endswith(".attn2")]
    return sorted(layers, key=lambda nm: order.get(nm[0].split(".")[0], 3))  # stable within each part
