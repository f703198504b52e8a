"""Writing an edited model for other tools: the family's stock diffusers pipeline folder, an SD 1.x single file (as
A1111 and ComfyUI load), the LoRA adapters alone (as the family's `load_lora_weights` reads them), or a learned word
alone (as `load_textual_inversion` reads it)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_dir, atomic_path, check_output
from erasekit.models.bundle import Bundle

EXPORT_FORMATS = ("diffusers", "single-file", "textual-inversion", "lora")
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # the file diffusers' load_lora_weights(folder) looks for
FILE_FORMATS = ("single-file", "textual-inversion")
DENOISERS = ("unet.", "transformer.")  # a LoRA export holds adapters of the denoiser only


def check_export(out: str | Path, format: str = "diffusers", overwrite: bool = False, edit: Edit | None = None) -> None:
    """Refuse, before any work, an export that cannot be written (format, file name, existing output, location,
    a textual-inversion file of an edit that holds no words)."""
    if format not in EXPORT_FORMATS:
        raise ErasekitError(f"unknown export format {format!r}; valid: {', '.join(EXPORT_FORMATS)}")
    if format in FILE_FORMATS and Path(out).suffix != ".safetensors":
        raise ErasekitError(f"{format} export writes a .safetensors file, not {out}")
    if format == "textual-inversion" and edit is not None and (edit.kind != "tokens" or len(edit.tensors) != 1):
        raise ErasekitError(
            f"textual-inversion export needs an edit of one learned word (an attack's embedding); "
            f"this edit is of kind {edit.kind!r}"
        )
    if (
        format == "lora"
        and edit is not None
        and (edit.kind != "lora" or any(not k.startswith(DENOISERS) for k in edit.tensors))
    ):
        raise ErasekitError(
            f"lora export needs a LoRA edit of the denoiser (Dark Miner's); this edit is of kind "
            f"{edit.kind!r}: export it as diffusers or single-file"
        )
    if format == "single-file" and edit is not None and edit.kind == "sampler":
        raise ErasekitError(
            "a sampler edit changes how images are sampled, which a checkpoint file cannot hold: "
            "export it as diffusers (a pipeline folder with sampler.json)"
        )
    check_output(out, overwrite, kind="file" if format in FILE_FORMATS else "folder")


def lora_state_dict(edit: Edit) -> dict[str, torch.Tensor]:
    """A LoRA edit in the layout diffusers' `load_lora_weights` reads: `<unet|transformer>.<module>.lora_A.weight`
    [r, in] and `.lora_B.weight` [out, r] (peft's names); the edit's scale is folded into B, since the loader takes
    alpha = r."""
    out = {}
    for name, (a, b) in edit._targets().items():
        module = name.removesuffix(".weight")
        out[f"{module}.lora_A.weight"] = edit.tensors[a].contiguous()
        out[f"{module}.lora_B.weight"] = (edit.lora_scale * edit.tensors[b]).contiguous()
    return out


def export(
    edit: Edit,
    base: Bundle | None,
    out: str | Path,
    format: str = "diffusers",
    force: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the edited model: `diffusers` (a pipeline folder the family's stock pipeline loads), `single-file` (one
    LDM-layout .safetensors, SD 1.x-style models), `lora` (the adapters alone) or, for a token edit,
    `textual-inversion` (the learned word alone)."""
    check_export(out, format, overwrite, edit)
    if format == "textual-inversion":  # what diffusers' load_textual_inversion reads: {"<word>": [n, D]}
        with atomic_path(out) as tmp:
            save_file({k: v.contiguous() for k, v in edit.tensors.items()}, str(tmp))
        return Path(out)
    if format == "lora":  # the adapters alone, for a stock pipeline of the same base
        with atomic_dir(out, overwrite=overwrite) as tmp:
            save_file(lora_state_dict(edit), str(tmp / LORA_WEIGHTS))
        return Path(out)
    if base is None:  # the formats above write the edit alone; these apply it to its base
        raise ErasekitError(f"{format} export applies the edit to its base model: give the base model")
    if format == "single-file" and base.family not in ("sd1", "sd2"):
        raise ErasekitError(
            f"single-file export writes SD 1.x checkpoints; export this {base.family} model as diffusers"
        )
    edited = edit.apply(base, force=force)
    if format == "diffusers":
        return edited.save_pretrained(out, overwrite=overwrite)
    from erasekit.models.ldm import to_ldm_state_dict

    state = to_ldm_state_dict(edited.denoiser, edited.vae, edited.modules["text_encoder"])
    with atomic_path(out) as tmp:
        save_file(state, str(tmp))
    return Path(out)
