"""The text side of a model: one `TextEncoder` per encoder, with its tokenizer.

A family declares its encoders (`TextSpec`: which module, which tokenizer, which hidden layer it reads, whether it
gives the pooled vector) and how their outputs join into a `Conditioning`; methods and attacks that optimise tokens
work on one encoder (the family's main one unless they name another) and leave the rest to read the prompt.

CLIP encoders (SD's, SDXL's two, SD3's two, FLUX's pooled one) and T5 encoders (SD3, FLUX) are supported. Encoding
from raw token embeddings (what attacks and learned words optimise) runs the encoder's own layers on them, so it is
the same computation as from ids, position embeddings and CLIP's causal mask included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from erasekit.core.assets import ASSETS

LAYERS = ("last", "penultimate")
POOLED = (None, "pooler", "projection")


@dataclass(frozen=True)
class TextSpec:
    """One encoder of a family: its module and tokenizer names (diffusers' component names), the hidden layer the
    denoiser reads, and where its pooled vector comes from (None: it gives none)."""

    module: str = "text_encoder"
    tokenizer: str = "tokenizer"
    layer: str = "last"  # last (final layer norm applied) | penultimate (SDXL, SD3: hidden_states[-2])
    pooled: str | None = None  # None | pooler (CLIPTextModel's pooler_output) | projection (text_embeds)
    max_length: int | None = None  # tokens per prompt (None: the tokenizer's model_max_length)


class TextEncoder:
    """A view of one text encoder of a bundle and its tokenizer (it follows the bundle's current modules)."""

    def __init__(self, bundle, spec: TextSpec):
        self.bundle, self.spec = bundle, spec

    @property
    def name(self) -> str:
        return self.spec.module

    @property
    def module(self) -> torch.nn.Module:
        return self.bundle.modules[self.spec.module]

    @property
    def tokenizer(self):
        return self.bundle.tokenizers[self.spec.tokenizer]

    @property
    def is_t5(self) -> bool:
        return type(self.module).__name__.startswith("T5")

    @property
    def max_length(self) -> int:
        return self.spec.max_length or self.tokenizer.model_max_length

    @property
    def width(self) -> int:
        """The width of its raw token embeddings (what attacks and learned words live in)."""
        return self.module.get_input_embeddings().weight.shape[1]

    @property
    def vocabulary_size(self) -> int:
        return len(self.tokenizer)

    @property
    def bos_id(self) -> int | None:
        return self.tokenizer.bos_token_id if not self.is_t5 else None  # T5 has no start token

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    # ---- tokens -----------------------------------------------------------------------------------
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Token ids [B, L], padded and truncated to `max_length` as the family's pipeline does."""
        ids = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        ).input_ids
        return ids.to(self.bundle.device)

    def ids(self, text: str) -> list[int]:
        """The ids of `text` alone, without start, end or padding."""
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def count(self, prompt: str) -> int:
        """Tokens of `prompt` with its special tokens, untruncated."""
        return len(self.tokenizer(prompt, truncation=False).input_ids)

    def whole_word(self, token: str) -> bool:
        """Whether a vocabulary entry is a whole word's last piece (CLIP's BPE marks word ends with </w>) or a
        word's start (SentencePiece's ▁): the tokens a hard-token search may use so that its text reads back."""
        return token.startswith("▁") if self.is_t5 else token.endswith("</w>")

    def word_ids(self) -> list[int]:
        """The ids of every whole-word token, special tokens left out."""
        special = {self.bos_id, self.eos_id, self.pad_id}
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(self.vocabulary_size)))
        return [i for i, t in enumerate(tokens) if t is not None and self.whole_word(t) and i not in special]

    def rows(self, ids: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Each token id alone as a prompt's ids [V, L] (start, the token, end, padding) and the token's position."""
        start = [] if self.bos_id is None else [self.bos_id]
        head = torch.tensor(start, dtype=torch.long).expand(len(ids), -1)
        tail = torch.tensor([self.eos_id] + [self.pad_id] * (self.max_length - len(start) - 2), dtype=torch.long)
        return torch.cat([head, ids.reshape(-1, 1).cpu().long(), tail.expand(len(ids), -1)], 1), len(start)

    def tokens(self, ids: list[int]) -> list[str]:
        """The vocabulary entries of token ids."""
        return self.tokenizer.convert_ids_to_tokens(list(ids))

    def token_ids(self, tokens: list[str]) -> list[int]:
        """The ids of vocabulary entries (a learned word's tokens)."""
        return self.tokenizer.convert_tokens_to_ids(list(tokens))

    def unpadded(self, prompts: list[str]) -> list[list[int]]:
        """Each prompt's ids with its special tokens, truncated to `max_length`, not padded."""
        return self.tokenizer(list(prompts), truncation=True, max_length=self.max_length).input_ids

    def decode(self, ids: torch.Tensor) -> str:
        return self.tokenizer.decode(ids.tolist(), skip_special_tokens=True).strip()

    def token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """Raw token embeddings [B, L, D] (before any position embedding)."""
        return self.module.get_input_embeddings()(ids.to(self.bundle.device))

    # ---- encoding ---------------------------------------------------------------------------------
    def sentence(self, ids: torch.Tensor, embeds: torch.Tensor | None = None) -> torch.Tensor:
        """One vector per prompt [B, D]: CLIP's pooler output (the final layer's state at the end token, before any
        projection), or a T5's last states averaged over the prompt's tokens (MMA-Diffusion's objective reads it).
        `embeds`: raw token embeddings in place of `ids`, as `encode`."""
        ids = ids.to(self.bundle.device)
        if self.is_t5:
            last, _ = self.encode(ids, embeds)
            mask = (ids != self.pad_id).to(last.dtype)[..., None]
            return (last * mask).sum(1) / mask.sum(1).clamp(min=1)
        clip = getattr(self.module, "text_model", self.module)
        if embeds is None:
            return clip(ids).pooler_output
        return _clip_from_embeddings(clip, embeds, ids)[1]

    def encode(self, ids: torch.Tensor, embeds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(states [B, L, D] of the spec's layer, pooled [B, P] or None) for token ids [B, L], or for raw token
        embeddings `embeds` in their place (then `ids` still says where CLIP's end token is, which it pools)."""
        ids = ids.to(self.bundle.device)
        if self.is_t5:
            kwargs = {"input_ids": ids} if embeds is None else {"inputs_embeds": embeds.to(self.module.dtype)}
            return self.module(**kwargs).last_hidden_state, None
        clip = getattr(self.module, "text_model", self.module)  # CLIPTextModelWithProjection wraps a CLIPTextModel
        if embeds is None:
            out = clip(ids, output_hidden_states=self.spec.layer == "penultimate")
            last, pooled, hidden = out.last_hidden_state, out.pooler_output, out.hidden_states
        else:
            last, pooled, hidden = _clip_from_embeddings(clip, embeds, ids)
        states = last if self.spec.layer == "last" else hidden[-2]
        if self.spec.pooled is None:
            return states, None
        if self.spec.pooled == "projection":
            pooled = self.module.text_projection(pooled)
        return states, pooled


def clip_tokenizer(path: Path | None = None, pad_token: str | None = None):
    """The CLIP BPE tokenizer (49,408 ids, as SD's): the shipped files, or those in `path`."""
    from transformers import CLIPTokenizer

    path = path or Path(str(ASSETS / "clip_tokenizer"))
    kwargs = {"pad_token": pad_token} if pad_token else {}
    return CLIPTokenizer.from_pretrained(str(path), **kwargs)


def last_states(module: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """A text encoder's last hidden state [B, L, D] for token ids (what the world's training of its miniature
    reads while the encoder itself trains)."""
    return module(ids).last_hidden_state


def _clip_from_embeddings(clip, embeds: torch.Tensor, ids: torch.Tensor):
    """CLIPTextModel's forward (transformers 5) from raw token embeddings: (last hidden state, pooled at the end
    token of `ids`, every layer's hidden states)."""
    from transformers.masking_utils import create_causal_mask

    hidden = clip.embeddings(inputs_embeds=embeds.to(device=ids.device, dtype=clip.dtype))
    mask = create_causal_mask(config=clip.config, inputs_embeds=hidden, attention_mask=None, past_key_values=None)
    states = [hidden]  # as transformers' hidden_states: the embeddings, then every layer's output
    for layer in clip.encoder.layers:
        states.append(layer(states[-1], mask, is_causal=True))
    last = clip.final_layer_norm(states[-1])
    end = clip.eos_token_id
    where = ids.int().argmax(-1) if end == 2 else (ids.int() == end).int().argmax(-1)  # as CLIPTextModel pools
    pooled = last[torch.arange(len(last), device=last.device), where]
    return last, pooled, states
