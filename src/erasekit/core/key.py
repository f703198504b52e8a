"""The key of a hidden concept (Hide & Recover, talk Eqs. 15–16): a learnable prompt p_{c_e} kept apart from the
model it unlocks.

Where p sits: in the conditioning's per-token states, the space the denoiser's attention reads. p is k vectors of
the conditioning's width that take the last k of its L positions (padding there for any prompt that leaves them
free; with T5-read families, T5's padding), so that
- it enters the cross-attention module directly, as the paper puts it, and needs no text-encoder pass to train;
- the conditioning keeps its shape [B, L, D]: classifier-free guidance, every sampler and a stock diffusers
  pipeline (`prompt_embeds=`) take a keyed prompt as they take any other;
- the ρ-ball of Eq. 16 is measured where the model reads p: around c_e's own conditioning at those positions,
  which is also where hiding starts p.

The file, `key.safetensors`: one tensor [k, D] per hidden concept (named by the concept), and in the safetensors
metadata, under `erasekit_key`, a JSON manifest: the concepts, where p is inserted, the fingerprints of the Edit it
unlocks, of the model with that edit applied and of the base, the method that made it (`hide`, Eq. 15, or
`recover`, Eq. 16) with its config.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from erasekit import __version__
from erasekit.core.conditioning import Conditioning
from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_path, check_output

KEY_FILE = "key.safetensors"
META = "erasekit_key"
INSERT = "encoder-output-tail"  # p replaces the last k of the L conditioning positions
REQUIRED = ("format", "concepts", "insert", "tokens", "edit", "model", "base", "method", "config")


def splice(cond: Conditioning, p: torch.Tensor) -> Conditioning:
    """c ⊕ p: the conditioning with the last k positions of its per-token states replaced by p [k, D]
    (differentiable in p); its pooled vector, where the family has one, is the prompt's own."""
    k, tokens = p.shape[0], cond.tokens
    return cond.with_tokens(
        torch.cat([tokens[:, : tokens.shape[1] - k], p.to(tokens.dtype).expand(tokens.shape[0], -1, -1)], dim=1)
    )


def tail(cond: Conditioning, k: int) -> torch.Tensor:
    """A conditioning's own vectors at the key's positions [k, D] (c_e in Eq. 16's ball ||p − c_e|| ≤ ρ)."""
    return cond.tokens[0, cond.length - k :]


def check_room(bundle, prompts: list[str], k: int) -> None:
    """Refuse a prompt whose tokens (with start and end) reach the k positions the key takes: the last positions of
    the text encoder whose sequence ends the conditioning (CLIP's for SD and SDXL, T5's for SD3 and FLUX)."""
    text = bundle.tail_text
    limit = text.max_length - k
    for prompt in prompts:
        n = text.count(prompt)
        if n > limit:
            raise ErasekitError(
                f"prompt {prompt!r} has {n} tokens; with a key of {k} vectors it may have at most {limit}"
            )


def mentions(prompt: str, concept: str) -> bool:
    """Whether `prompt` names `concept` as a word (or words), case aside."""
    return re.search(rf"(?<!\w){re.escape(concept.lower())}(?!\w)", prompt.lower()) is not None


@dataclass
class Key:
    """p_{c_e} for each hidden concept ({concept: [k, D]}), and what it unlocks (see the module docstring)."""

    prompts: dict[str, torch.Tensor]
    edit: str  # fingerprint of the Edit it unlocks (`Edit.fingerprint`)
    model: str  # fingerprint of the base with that edit applied (`Bundle.fingerprint`; `Bundle.matches` checks it)
    base: dict  # the base's {"source", "fingerprint"}
    method: str  # "hide" (learned with the edit, Eq. 15) or "recover" (Eq. 16)
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    erasekit_version: str = __version__

    @property
    def concepts(self) -> list[str]:
        return list(self.prompts)

    @property
    def tokens(self) -> int:
        return next(iter(self.prompts.values())).shape[0]

    def manifest(self) -> dict:
        return {
            "format": "erasekit-key",
            "concepts": self.concepts,
            "insert": INSERT,
            "tokens": self.tokens,
            "edit": self.edit,
            "model": self.model,
            "base": self.base,
            "method": self.method,
            "config": self.config,
            "metrics": self.metrics,
            "created": self.created,
            "erasekit_version": self.erasekit_version,
        }

    # ---- files ------------------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        check_key_path(path, overwrite)
        tensors = {c: p.detach().to("cpu", torch.float32).contiguous() for c, p in self.prompts.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={META: json.dumps(self.manifest(), sort_keys=True)})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Key:
        """Read and validate a key file; every problem is one ErasekitError naming it."""
        path = Path(path)
        if path.is_dir():
            path = path / KEY_FILE
        if not path.is_file():
            raise ErasekitError(f"key not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                prompts = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118  (a safetensors handle, not a dict)
        except (SafetensorError, OSError, ValueError) as exc:
            raise ErasekitError(f"corrupt key file {path}: {exc}") from None
        if META not in meta:
            raise ErasekitError(f"{path} is not an erasekit key (no {META} manifest in its metadata)")
        try:
            manifest = json.loads(meta[META])
        except json.JSONDecodeError as exc:
            raise ErasekitError(f"corrupt key manifest in {path}: {exc}") from None
        missing = [k for k in REQUIRED if k not in manifest] if isinstance(manifest, dict) else list(REQUIRED)
        if missing:
            raise ErasekitError(f"key manifest in {path} is missing {', '.join(missing)}")
        if manifest["insert"] != INSERT:
            raise ErasekitError(f"key {path} is inserted as {manifest['insert']!r}; this erasekit reads {INSERT!r}")
        shapes = {tuple(p.shape) for p in prompts.values()}
        if (
            sorted(prompts) != sorted(manifest["concepts"])
            or len(shapes) != 1
            or next(iter(shapes))[0] != manifest["tokens"]
            or len(next(iter(shapes))) != 2
        ):
            raise ErasekitError(
                f"key {path}: its tensors {sorted(prompts)} of shapes {sorted(shapes)} do not match "
                f"its manifest ({manifest['concepts']}, {manifest['tokens']} vectors each)"
            )
        return cls(
            prompts={c: prompts[c] for c in manifest["concepts"]},
            edit=manifest["edit"],
            model=manifest["model"],
            base=manifest["base"],
            method=manifest["method"],
            config=manifest["config"],
            metrics=manifest.get("metrics", {}),
            created=manifest.get("created", ""),
            erasekit_version=manifest.get("erasekit_version", ""),
        )

    # ---- using it ---------------------------------------------------------------------------------
    def check(self, model, edit=None) -> None:
        """Refuse a model this key does not unlock: with `edit` (the Edit applied to make `model`), that edit's
        fingerprint must be the key's; without, `model` itself must be the hidden model (an exported one)."""
        if edit is not None:
            if edit.fingerprint() != self.edit:
                raise ErasekitError(
                    f"this key unlocks the edit with fingerprint {self.edit} (hidden: "
                    f"{', '.join(self.concepts)}), not this edit ({edit.method}, fingerprint "
                    f"{edit.fingerprint()})"
                )
        elif not model.matches(self.model):
            raise ErasekitError(
                f"this key unlocks the hidden model with fingerprint {self.model} (hidden: "
                f"{', '.join(self.concepts)}), not {model.source!r} (fingerprint {model.fingerprint()})"
                "; pass the edit it was made with as --edit"
            )
        width = model.conditioning_width
        if next(iter(self.prompts.values())).shape[1] != width:
            raise ErasekitError(
                f"this key's vectors are {self.prompts[self.concepts[0]].shape[1]}-d, the model's "
                f"conditioning is {width}-d"
            )

    def concept_in(self, prompt: str) -> str:
        """The hidden concept `prompt` names (the key to splice into it); one clear error if none or several."""
        named = [c for c in self.concepts if mentions(prompt, c)]
        if len(named) != 1:
            what = "names none" if not named else f"names several ({', '.join(named)})"
            raise ErasekitError(
                f"the prompt {prompt!r} {what} of the concepts this key unlocks "
                f"({', '.join(self.concepts)}); a key brings back only its own concept"
            )
        return named[0]

    def conditioning(self, bundle, prompts: list[str], concepts: list[str | None] | None = None) -> Conditioning:
        """The prompts' conditioning with each one's key spliced in: the key of `concepts[i]` (None: no key), or by
        default of the hidden concept each prompt names."""
        concepts = [self.concept_in(p) for p in prompts] if concepts is None else list(concepts)
        check_room(bundle, [p for p, c in zip(prompts, concepts, strict=True) if c is not None], self.tokens)
        cond = bundle.encode_prompts(prompts)
        return Conditioning.cat(
            [
                cond[i] if concept is None else splice(cond[i], self.prompts[concept].to(cond.device))
                for i, concept in enumerate(concepts)
            ]
        )


def check_key_path(path: str | Path, overwrite: bool = False) -> None:
    """Refuse, before any work, a key output that cannot be written."""
    if Path(path).suffix != ".safetensors":
        raise ErasekitError(f"a key is written to a .safetensors file, not {path}")
    check_output(path, overwrite, kind="file")
