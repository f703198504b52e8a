"""Prompts as token sequences an attack can edit: placeholder words with learned vectors, and slots of free tokens.
All of it works on the model's main text encoder (`bundle.text`: CLIP for SD and SDXL, T5 for FLUX); the family's
other encoders read the prompt's text.

- `add_tokens(bundle, {"<name>": [n, D]})`: a bundle whose main tokenizer knows the new word and whose main text
  encoder embeds it as the given vectors. A word of n vectors becomes the tokens `<name>`, `<name>_1`, ... `<name>_{n-1}`
  and a prompt's `<name>` expands to all of them, exactly as diffusers' `load_textual_inversion` does, so an
  embedding learned here replays in a stock pipeline.
- `slotted(bundle, prompt, prefix, every)`: token ids of a prompt with free positions (UnlearnDiffAtk's prefix,
  P4D-N's n tokens, P4D-K's token after every k), and `splice` puts vectors (soft or projected) into them.
- `decode(bundle, ids)`: the text of a hard-token prompt, which is what an attack hands back: the images that
  count are the ones its text generates.
"""

from __future__ import annotations

import copy
import re

import torch

from erasekit.core.errors import ErasekitError


def vector_names(name: str, n: int) -> list[str]:
    """The tokens a word of n vectors is stored as (diffusers' naming)."""
    return [name] + [f"{name}_{i}" for i in range(1, n)]


def expand(prompt: str, words: dict[str, list[str]]) -> str:
    """`prompt` with every multi-vector word written as its tokens ("<w>" -> "<w> <w>_1 <w>_2")."""
    for name, names in words.items():
        if len(names) > 1:
            prompt = re.sub(rf"(?<!\S){re.escape(name)}(?!\S|_\d)", " ".join(names), prompt)
    return prompt


def without(prompt: str, words: dict[str, list[str]]) -> str:
    """`prompt` with the learned words left out (what a text encoder that has no vector for them reads)."""
    for names in words.values():
        for token in sorted(names, key=len, reverse=True):
            prompt = re.sub(rf"(?<!\S){re.escape(token)}(?!\S)", " ", prompt)
    return " ".join(prompt.split())


def check_vectors(bundle, vectors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse vectors of another width than this text encoder's, or a word the tokenizer already has."""
    width = bundle.text.width
    for name, value in vectors.items():
        if value.ndim != 2 or value.shape[1] != width:
            raise ErasekitError(
                f"{what}: embedding {name!r} has shape {tuple(value.shape)} but the text encoder of "
                f"{bundle.source!r} embeds tokens in {width} dimensions; it was learned for another "
                "text encoder"
            )
        if not name.strip() or any(ch.isspace() for ch in name):
            raise ErasekitError(f"{what}: token name {name!r} must be one word")
        taken = [t for t in vector_names(name, len(value)) if t in bundle.text.tokenizer.get_vocab()]
        if taken:
            raise ErasekitError(
                f"{what}: the tokenizer already has the token {taken[0]!r}; give the embedding another name"
            )


def with_words(bundle, words: dict[str, int]):
    """A shallow copy of `bundle` whose own tokenizer also knows each word (of n vectors), its text encoder shared
    and unchanged: enough to tokenize prompts that name words still being learned."""
    tokenizer = copy.deepcopy(bundle.text.tokenizer)
    known = dict(bundle.meta.get("words", {}))
    for name, n in words.items():
        known[name] = vector_names(name, n)
        tokenizer.add_tokens(known[name])
    out = bundle.with_tokenizers(**{bundle.text.spec.tokenizer: tokenizer})
    out.meta["words"] = known
    return out


def add_tokens(bundle, vectors: dict[str, torch.Tensor], what: str = "embedding"):
    """A copy of `bundle` (its own tokenizer and text encoder) that knows each word of `vectors`."""
    check_vectors(bundle, vectors, what)
    words = with_words(bundle, {name: len(value) for name, value in vectors.items()})
    main = bundle.text.spec.module
    table = bundle.text.module.get_input_embeddings().weight
    name = next(f"{main}.{n}" for n, p in bundle.text.module.named_parameters() if p is table)
    out = words.clone((main,), changes=name.__eq__)  # only the token table grows; the layers are shared
    out.text.module.resize_token_embeddings(len(out.text.tokenizer), mean_resizing=False)  # rows set below
    table = out.text.module.get_input_embeddings().weight
    with torch.no_grad():
        for name, value in vectors.items():
            ids = out.text.tokenizer.convert_tokens_to_ids(out.meta["words"][name])
            table[ids] = value.to(table.device, table.dtype)
    return out


def slotted(bundle, prompt: str, prefix: int = 0, every: int = 0) -> tuple[torch.Tensor, list[int]]:
    """Token ids [L] of `prompt` with `prefix` free positions before it and, with `every` = k, one after each k of
    its tokens; and the free positions. Free positions hold the end token until `splice` fills them."""
    text = bundle.text
    words = text.ids(expand(prompt, bundle.meta.get("words", {})))
    start = [] if text.bos_id is None else [text.bos_id]  # T5 has no start token
    body, slots = [], []
    for i, token in enumerate(words):
        body.append(token)
        if every and (i + 1) % every == 0:
            slots.append(len(body) + prefix + len(start))
            body.append(None)
    ids = start + [None] * prefix + body
    slots = list(range(len(start), len(start) + prefix)) + slots
    length = text.max_length
    if len(ids) + 1 > length:
        raise ErasekitError(
            f"prompt {prompt!r} with {len(slots)} free tokens is longer than the text encoder's {length} tokens"
        )
    ids = ids + [text.eos_id] + [text.pad_id] * (length - len(ids) - 1)
    ids = [text.eos_id if t is None else t for t in ids]
    return torch.tensor(ids, device=bundle.device), slots


def splice(bundle, ids: torch.Tensor, slots: list[int], vectors: torch.Tensor) -> torch.Tensor:
    """Raw token embeddings [B, L, D] of `ids` ([L] or [B, L]) with `vectors` ([S, D] or [B, S, D]) in `slots`;
    differentiable in `vectors`."""
    ids = ids if ids.ndim == 2 else ids[None]
    vectors = vectors if vectors.ndim == 3 else vectors[None]
    base = bundle.text.token_embeddings(ids).detach()
    if not slots:
        return base
    out = base.clone()
    out[:, slots] = vectors.to(base.dtype).expand(base.shape[0], -1, -1)
    return out


def decode(bundle, ids: torch.Tensor) -> str:
    """The text of a token sequence, without its start, end and padding tokens."""
    return bundle.text.decode(ids)


def word_ids(bundle, words) -> list[int]:
    """The token ids of single-token words (the search space a vocabulary restricts an attack to)."""
    out = []
    for word in words:
        out += [i for i in bundle.text.ids(word) if i not in out]
    return out


def fix_articles(text: str) -> str:
    """ "a" or "an" as the word after it begins (what a prompt rewritten word by word needs)."""
    words = text.split()
    return " ".join(
        ("an" if words[i + 1][0] in "aeiou" else "a") if w in ("a", "an") and i + 1 < len(words) else w
        for i, w in enumerate(words)
    )
