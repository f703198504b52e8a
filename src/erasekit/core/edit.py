"""The Edit: what a method produced, and the unit users share.

A folder with `edit.safetensors` (the tensors a method changed, by `component.parameter` name, or LoRA
matrices, or the vectors of new words; empty for a sampler edit, whose settings are in the manifest) and
`manifest.json` (erasekit version, method and full config, concept set,
base model source and fingerprint, tensor names and shapes, created time, metrics). Only safetensors and json are
ever read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from erasekit import __version__
from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_dir
from erasekit.core.sampler import Sampling

MANIFEST = "manifest.json"
TENSORS = "edit.safetensors"
KINDS = ("weights", "lora", "tokens", "sampler")
REQUIRED = ("erasekit_version", "method", "config", "concepts", "base", "kind", "tensors", "created")
LORA_SUFFIXES = (".lora_A", ".lora_B")


@dataclass
class Edit:
    """New values of changed parameters (kind "weights"), low-rank deltas W += scale * B @ A (kind "lora"), or new
    words for the text encoder (kind "tokens": {"<word>": [n, D]}, what textual inversion and CCE learn), or a
    change to sampling alone (kind "sampler": no tensor; `sampling` holds core.sampler.Sampling's settings)."""

    method: str
    config: dict
    concepts: dict
    base: dict  # {"source", "fingerprint", "family"}, and "resolution" when made drawing at another size
    tensors: dict[str, torch.Tensor]
    kind: str = "weights"
    lora_scale: float = 1.0
    sampling: dict = field(default_factory=dict)  # kind "sampler": the negative prompt / SLD settings
    metrics: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    erasekit_version: str = __version__

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ErasekitError(f"unknown edit kind {self.kind!r}; valid: {', '.join(KINDS)}")
        if (self.kind == "sampler") != bool(self.sampling):
            raise ErasekitError("a sampler edit (and only a sampler edit) carries sampling settings")
        if self.kind == "sampler":
            Sampling.from_dict(self.sampling)  # refuses unknown or invalid settings

    @classmethod
    def from_changes(
        cls, base, tensors: dict[str, torch.Tensor], method: str, config, concepts: dict, **kwargs
    ) -> Edit:
        """An edit of `base` from new tensor values named `component.parameter`."""
        config = asdict(config) if hasattr(config, "__dataclass_fields__") else dict(config)
        tensors = {
            k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True) for k, v in tensors.items()
        }
        where = {"source": base.source, "fingerprint": base.fingerprint(), "family": base.family}
        if base.resolution is not None:  # drawn at another size than the model's own while it was made
            where["resolution"] = base.image_size
        return cls(method=method, config=config, concepts=dict(concepts), base=where, tensors=tensors, **kwargs)

    def fingerprint(self) -> str:
        """A hash of what the edit changes: its kind, scale and every tensor's name, shape and values (so a key made
        for one edit is refused by any other, however close)."""
        head = f"{self.kind}:{self.lora_scale}"
        if self.sampling:  # only a sampler edit's: every other edit keeps the fingerprint its key files hold
            head += f":{json.dumps(self.sampling, sort_keys=True)}"
        digest = hashlib.sha256(head.encode())
        for name, tensor in sorted(self.tensors.items()):
            digest.update(f"{name}:{tuple(tensor.shape)}:".encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    # ---- files ------------------------------------------------------------------------------------
    def manifest(self) -> dict:
        return {
            "erasekit_version": self.erasekit_version,
            "method": self.method,
            "config": self.config,
            "concepts": self.concepts,
            "base": self.base,
            "kind": self.kind,
            "lora_scale": self.lora_scale,
            "tensors": {k: list(v.shape) for k, v in sorted(self.tensors.items())},
            "created": self.created,
            "metrics": self.metrics,
            **({"sampling": self.sampling} if self.sampling else {}),
        }

    def save(self, out: str | Path, overwrite: bool = False, files: tuple[Path, ...] = ()) -> Path:
        """Write the edit folder: into a temporary folder beside `out`, renamed when complete. `files` (e.g. the
        run's loss.csv) are copied in beside the edit."""
        with atomic_dir(out, overwrite=overwrite) as tmp:
            for f in files:
                if Path(f).is_file():
                    shutil.copyfile(f, tmp / Path(f).name)
            save_file(self.tensors, str(tmp / TENSORS), metadata={"format": "pt", "erasekit_kind": self.kind})
            (tmp / MANIFEST).write_text(json.dumps(self.manifest(), indent=2, sort_keys=True))
        return Path(out)

    @classmethod
    def load(cls, path: str | Path) -> Edit:
        """Read and validate an edit folder; every problem is one ErasekitError naming it."""
        path = Path(path)
        if not path.is_dir():
            raise ErasekitError(f"edit not found: {path} is not a folder with {MANIFEST} and {TENSORS}")
        for name in (MANIFEST, TENSORS):
            if not (path / name).is_file():
                raise ErasekitError(f"edit {path} is missing {name}")
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ErasekitError(f"corrupt manifest {path / MANIFEST}: {exc}") from None
        if not isinstance(manifest, dict):
            raise ErasekitError(f"corrupt manifest {path / MANIFEST}: expected a JSON object")
        missing = [k for k in REQUIRED if k not in manifest]
        if missing:
            raise ErasekitError(f"manifest {path / MANIFEST} is missing keys: {', '.join(missing)}")
        try:
            tensors = load_file(str(path / TENSORS))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ErasekitError(f"corrupt edit file {path / TENSORS}: {exc}") from None
        listed = {k: tuple(v) for k, v in manifest["tensors"].items()}
        stored = {k: tuple(v.shape) for k, v in tensors.items()}
        if listed != stored:
            diff = sorted(set(listed.items()) ^ set(stored.items()))[:3]
            raise ErasekitError(f"edit {path}: {TENSORS} does not hold the tensors {MANIFEST} lists (e.g. {diff})")
        known = {k: manifest[k] for k in REQUIRED if k != "tensors"}
        return cls(
            tensors=tensors,
            metrics=manifest.get("metrics", {}),
            lora_scale=float(manifest.get("lora_scale", 1.0)),
            sampling=manifest.get("sampling") or {},
            **known,
        )

    # ---- applying ---------------------------------------------------------------------------------
    def _targets(self) -> dict[str, tuple[str, ...]]:
        """Base parameter name -> the edit tensors that change it."""
        if self.kind in ("tokens", "sampler"):
            return {}
        if self.kind == "weights":
            return {k: (k,) for k in self.tensors}
        bases = {k[: -len(s)] for k in self.tensors for s in LORA_SUFFIXES if k.endswith(s)}
        return {b: (b + ".lora_A", b + ".lora_B") for b in sorted(bases)}

    def check(self, bundle, force: bool = False) -> None:
        """Refuse a base this edit was not made for: other fingerprint, unknown tensor, other shape."""
        family = self.base.get("family")  # edits made before model families were recorded have none
        if family is not None and family != bundle.family:
            raise ErasekitError(
                f"edit was made for an {family} model, and {bundle.source!r} is {bundle.family}: an "
                "edit names tensors of its own family's components"
            )
        recorded = self.base.get("fingerprint")
        if not force and recorded is not None and not bundle.matches(recorded):
            raise ErasekitError(
                f"edit was made for base {self.base['source']!r} (fingerprint {recorded}) "
                f"but the model {bundle.source!r} has fingerprint {bundle.fingerprint()}; pass --force to apply anyway"
            )
        if self.kind == "tokens":
            bundle.check_words(self.tensors, f"edit {self.method}")
        params = dict(bundle.named_parameters())
        for name, parts in self._targets().items():
            if name not in params:
                raise ErasekitError(f"tensor {name!r} of the edit is not in the base model {bundle.source!r}")
            want = tuple(params[name].shape)
            if self.kind == "weights":
                got = tuple(self.tensors[name].shape)
            else:
                if any(p not in self.tensors for p in parts):
                    raise ErasekitError(f"LoRA tensor {name!r} lacks its lora_A or lora_B matrix")
                a, b = self.tensors[parts[0]], self.tensors[parts[1]]
                got = (b.shape[0], a.shape[1]) if a.shape[0] == b.shape[1] else (b.shape[0], "?", a.shape[1])
            if got != want:
                raise ErasekitError(f"tensor {name!r} has shape {got} in the edit but {want} in the base model")

    def apply(self, bundle, force: bool = False, inplace: bool = False):
        """The bundle with this edit in place. Unless `inplace`, only the touched components are copied and the
        given bundle (and anything on disk) is left as it was."""
        self.check(bundle, force=force)
        if self.kind == "sampler":  # no weight changes: the bundle samples differently (core/sampler.py)
            out = replace(bundle, sampling=Sampling.from_dict(self.sampling), meta=dict(bundle.meta))
            out.meta["edit"] = {"method": self.method, "created": self.created}
            return out
        if self.kind == "tokens":
            out = bundle.add_words(self.tensors, f"edit {self.method}")
            out.meta["embedding"] = {"method": self.method, "created": self.created, "words": sorted(self.tensors)}
            return out  # meta["edit"] still names the model's own edit, if any
        targets = self._targets()
        touched = tuple(sorted({name.split(".", 1)[0] for name in targets}))
        out = bundle if inplace else bundle.clone(touched, changes=targets.__contains__)
        params = dict(out.named_parameters())
        with torch.no_grad():
            for name, parts in targets.items():
                param = params[name]
                if self.kind == "weights":
                    param.copy_(self.tensors[name].to(param.device, param.dtype))
                else:
                    a, b = (self.tensors[p].to(param.device, torch.float32) for p in parts)
                    param.add_((self.lora_scale * b @ a).reshape(param.shape).to(param.dtype))
        out.meta["edit"] = {"method": self.method, "created": self.created}
        return out


def load_embedding(path: str | Path) -> Edit:
    """A learned word to apply: a token edit folder (checked against the model it was learned on), or a
    textual-inversion .safetensors file as diffusers and A1111 write them (`{"<word>": [n, D]}` or `emb_params`),
    whose model is unknown (only its width is checked)."""
    path = Path(path)
    if path.is_dir():
        edit = Edit.load(path)
        if edit.kind != "tokens":
            raise ErasekitError(f"{path} is an edit of kind {edit.kind!r}, not a learned embedding: pass it as --edit")
        return edit
    if path.suffix.lower() != ".safetensors":
        raise ErasekitError(f"embedding {path}: give a token edit folder or a textual-inversion .safetensors file")
    if not path.is_file():
        raise ErasekitError(f"embedding not found: {path}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ErasekitError(f"corrupt embedding file {path}: {exc}") from None
    if list(tensors) == ["emb_params"]:
        tensors = {f"<{path.stem}>": tensors["emb_params"]}
    if len(tensors) != 1:
        raise ErasekitError(f"embedding file {path} holds {len(tensors)} tensors; a textual-inversion file holds one")
    tensors = {k: (v[None] if v.ndim == 1 else v).float() for k, v in tensors.items()}
    return Edit(
        method="textual-inversion",
        config={},
        concepts={},
        base={"source": str(path), "fingerprint": None},
        tensors=tensors,
        kind="tokens",
    )
