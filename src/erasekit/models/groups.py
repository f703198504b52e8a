"""Named parameter groups of a model's denoiser, as the erasure literature trains them, per family.

UNet families (SD 1.x/2.x, SDXL). ESD (Gandikota et al. 2023) names its variants by group: ESD-x trains the
cross-attention (`xattn`), ESD-u everything but it (`noxattn`, which, as in the official code, also leaves the time
embedding and the output head alone), ESD-x-strict only the key/value projections (`xattn-kv`, also what UCE/TIME
edit in closed form).

MMDiT families (SD3, FLUX): text and image meet in the joint attention blocks, whose text stream plays the role of
cross-attention. `xattn` is that text stream (`attn.add_q_proj`, `add_k_proj`, `add_v_proj`, `to_add_out`),
`xattn-kv` its key/value projections, `selfattn` the joint attention's image stream (`attn.to_q/k/v/out`),
`image-stream` every image-stream parameter of the joint blocks, `single` FLUX's single blocks, and `noxattn`
everything but the text stream, the embedders and the output head.
Names are the denoiser's own parameter names (diffusers' UNet2DConditionModel, SD3Transformer2DModel,
FluxTransformer2DModel).
"""

from __future__ import annotations

import torch

from erasekit.core.errors import ErasekitError

FROZEN_BY_NOXATTN = ("time_embedding.", "conv_out.", "conv_norm_out.")
FROZEN_BY_NOXATTN_MMDIT = (
    "time_text_embed.",
    "context_embedder.",
    "x_embedder.",
    "pos_embed.",
    "norm_out.",
    "proj_out.",
)
TEXT_STREAM = (".attn.add_q_proj.", ".attn.add_k_proj.", ".attn.add_v_proj.", ".attn.to_add_out.")
IMAGE_ATTENTION = (".attn.to_q.", ".attn.to_k.", ".attn.to_v.", ".attn.to_out.")


def _xattn(name: str) -> bool:
    return ".attn2." in name


def _joint(name: str) -> bool:
    return name.startswith("transformer_blocks.")


def _text_stream(name: str) -> bool:
    return _joint(name) and any(p in name for p in TEXT_STREAM)


UNET_GROUPS = {
    "xattn": ("all cross-attention (attn2) parameters (ESD-x)", _xattn),
    "xattn-kv": (
        "cross-attention key/value projections attn2.to_k, attn2.to_v (ESD-x-strict, UCE)",
        lambda n: ".attn2.to_k." in n or ".attn2.to_v." in n,
    ),
    "noxattn": (
        "everything but cross-attention, time embedding and output head (ESD-u)",
        lambda n: not _xattn(n) and not n.startswith(FROZEN_BY_NOXATTN),
    ),
    "selfattn": ("self-attention (attn1) parameters", lambda n: ".attn1." in n),
    "full": ("every UNet parameter", lambda n: True),
}
MMDIT_GROUPS = {
    "xattn": (
        "the joint blocks' text stream: attn.add_q/k/v_proj, to_add_out (the cross-attention's role)",
        _text_stream,
    ),
    "xattn-kv": (
        "the joint blocks' text keys and values: attn.add_k_proj, attn.add_v_proj",
        lambda n: _joint(n) and (".attn.add_k_proj." in n or ".attn.add_v_proj." in n),
    ),
    "noxattn": (
        "everything but the text stream, the embedders and the output head",
        lambda n: not _text_stream(n) and not n.startswith(FROZEN_BY_NOXATTN_MMDIT),
    ),
    "selfattn": (
        "the joint attention's image stream: attn.to_q/k/v/out",
        lambda n: _joint(n) and any(p in n for p in IMAGE_ATTENTION),
    ),
    "image-stream": (
        "every image-stream parameter of the joint blocks (attention, feed-forward, norms)",
        lambda n: _joint(n) and not _text_stream(n) and ".ff_context." not in n and ".norm1_context." not in n,
    ),
    "single": (
        "FLUX's single blocks (text and image in one stream)",
        lambda n: n.startswith("single_transformer_blocks."),
    ),
    "full": ("every transformer parameter", lambda n: True),
}
GROUPS = {**MMDIT_GROUPS, **UNET_GROUPS}  # every group name any family has (the descriptions: the UNet's)


def groups_of(denoiser: torch.nn.Module) -> dict:
    """The groups of this denoiser's kind."""
    return MMDIT_GROUPS if is_transformer(denoiser) else UNET_GROUPS


def is_transformer(denoiser: torch.nn.Module) -> bool:
    return hasattr(denoiser, "transformer_blocks")


def select(denoiser: torch.nn.Module, group: str) -> tuple[list[str], list[torch.nn.Parameter]]:
    """(names, parameters) of the denoiser that belong to `group`."""
    groups = groups_of(denoiser)
    if group not in groups:
        raise ErasekitError(f"unknown parameter group {group!r}; valid: {', '.join(groups)}")
    keep = groups[group][1]
    pairs = [(n, p) for n, p in denoiser.named_parameters() if keep(n)]
    if not pairs:
        raise ErasekitError(f"parameter group {group!r} selects no parameter of this {type(denoiser).__name__}")
    names, params = zip(*pairs, strict=True)
    return list(names), list(params)


def trainable(bundle, group: str):
    """(a copy of `bundle` whose denoiser's `group` is its own, the group's names, its parameters): only the group is
    copied, in fp32 (the master weights when the model is in half precision), and requires grad; the rest of the
    denoiser is the given bundle's own frozen tensors. What a fine-tuning method's student and the relearning
    attack train."""
    names = {f"{bundle.DENOISER}.{name}" for name in select(bundle.denoiser, group)[0]}
    copy = bundle.clone((bundle.DENOISER,), changes=names.__contains__)
    names_, params = select(copy.denoiser, group)
    for p in params:
        if p.dtype in (torch.bfloat16, torch.float16):
            p.data = p.data.float()
        p.requires_grad_(True)
    return copy, names_, params


def cross_attention_layers(denoiser: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The attention modules where text meets image, in the order the denoiser runs them: a UNet's cross-attention
    (attn2), an MMDiT's joint attention (the joint blocks' attn)."""
    if is_transformer(denoiser):
        return [
            (n, m)
            for n, m in denoiser.named_modules()
            if _joint(n + ".") and n.endswith(".attn") and hasattr(m, "add_k_proj")
        ]
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    layers = [(n, m) for n, m in denoiser.named_modules() if n.endswith(".attn2")]
    return sorted(layers, key=lambda nm: order.get(nm[0].split(".")[0], 3))  # stable within each part
