"""Cross-attention maps of chosen tokens, recorded while the UNet runs: what Forget-Me-Not and MACE minimise.
(The UNet families only: an MMDiT's joint attention has no attention map of image on text alone.)

`AttentionProbe(unet)` swaps every cross-attention layer's processor for one that computes the attention
probabilities softmax(QKᵀ/√d) explicitly (as diffusers' plain AttnProcessor does) and keeps, per layer, the
probabilities that land on the chosen token positions, optionally only at the pixels of a mask (MACE's
segmentation masks, resized to each layer's resolution). `close()` restores the layers' own processors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from erasekit.models.groups import cross_attention_layers

UNET_FAMILIES = ("sd1", "sd2", "sdxl")  # the families with cross-attention maps to probe
WHY_UNET = (
    "its loss is a UNet cross-attention map, and an MMDiT's joint attention has no map of the image on the text alone"
)


class _Processor:
    def __init__(self, probe: AttentionProbe):
        self.probe = probe

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        b, n, _ = hidden_states.shape
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        key, value = attn.head_to_batch_dim(attn.to_k(context)), attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, attn.prepare_attention_mask(attention_mask, n, b))
        self.probe.record(probs.view(b, attn.heads, n, -1))
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out))


class AttentionProbe:
    """Records the cross-attention probabilities [B, heads, pixels, tokens] at `positions` (and `mask`)."""

    def __init__(self, unet: torch.nn.Module):
        self.layers = [m for _, m in cross_attention_layers(unet)]
        self.saved = [m.processor for m in self.layers]
        for m in self.layers:
            m.set_processor(_Processor(self))
        self.positions: torch.Tensor | None = None  # bool [B, L]
        self.mask: torch.Tensor | None = None  # [B, 1, H, W] in {0, 1}, or None for every pixel
        self.maps: list[torch.Tensor] = []

    def watch(self, positions: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Record the next forward pass's attention on token `positions` (bool [B, L]), at `mask`'s pixels."""
        self.positions, self.mask, self.maps = positions, mask, []

    def record(self, probs: torch.Tensor) -> None:
        if self.positions is None:
            return
        b, _, n, _ = probs.shape
        # positions and mask are made on the CPU; the maps live where the UNet runs
        chosen = probs * self.positions[:, None, None, :].to(probs.device, probs.dtype)  # [B, heads, pixels, L]
        if self.mask is not None:
            side = int(round(n**0.5))
            where = F.interpolate(self.mask.to(probs.device).float(), size=(side, side), mode="nearest")
            where = where.reshape(b, 1, n, 1)
            chosen = chosen * (where > 0.5).to(probs.dtype)
        self.maps.append(chosen)

    def norm_of_all(self) -> torch.Tensor:
        """||all recorded probabilities||₂ over every layer together (Forget-Me-Not's attention re-steering loss)."""
        return torch.cat([m.reshape(-1) for m in self.maps]).norm()

    def sum_of_norms(self) -> torch.Tensor:
        """Σ_layers ||recorded probabilities||₂ (MACE's attention loss)."""
        return sum(m.norm() for m in self.maps)

    def close(self) -> None:
        for m, p in zip(self.layers, self.saved, strict=True):
            m.set_processor(p)
        self.positions, self.maps = None, []


def token_positions(bundle, prompts: list[str], words: list[str], pooler: bool) -> torch.Tensor:
    """bool [B, L]: where each prompt holds its word's tokens (`words[i]` in `prompts[i]`) in the main text
    encoder's sequence, which starts the conditioning (SD and SDXL: CLIP's 77 positions), and with `pooler` its
    end-of-text token, the one CLIP pools (the official Forget-Me-Not and MACE `use_pooler`). Their code marks
    every end-of-text id, which under SD 2.x's tokenizer (the official configs' model, padding "!") is that one
    token, but under SD 1.x's and the miniature's (padding = end-of-text) is the whole padding too: minimising
    attention on ~70 of 77 positions rewrites every prompt's attention, so we keep the pooled token alone."""
    tokenizer, length = bundle.text.tokenizer, bundle.text.max_length
    ids = tokenizer(prompts, padding="max_length", max_length=length, truncation=True).input_ids
    out = torch.zeros(len(prompts), length, dtype=torch.bool)
    eos = tokenizer.eos_token_id
    for i, (row, word) in enumerate(zip(ids, words, strict=True)):
        target = tokenizer(word, add_special_tokens=False).input_ids
        for j in range(len(row) - len(target) + 1):
            if row[j : j + len(target)] == target:
                out[i, j : j + len(target)] = True
        if pooler and eos in row:
            out[i, row.index(eos)] = True
    return out
