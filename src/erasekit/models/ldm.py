"""Single-file Stable Diffusion checkpoints (the original LDM key layout) <-> diffusers components.

Reading uses diffusers' own converters (`diffusers.loaders.single_file_utils`) on configs that
ship with erasekit (`models/configs/sd1`, `models/configs/sd2`), so nothing is fetched from a hub.
Writing (`to_ldm_state_dict`) is the inverse mapping of the original SD conversion script,
generalised to any number of blocks and layers per block, for SD 1.x-style text encoders.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from erasekit.core.errors import ErasekitError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_PREFIX = "cond_stage_model.model."
SDXL_KEY = "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Read a .safetensors file, or a .ckpt with torch's weights-only unpickler (no code runs)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        if suffix == ".ckpt":
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            return state.get("state_dict", state)
    except pickle.UnpicklingError:  # objects beyond tensors: torch's advice to unpickle them must not reach users
        raise ErasekitError(
            f"refusing {path}: it holds pickled objects besides tensors, which could run code when "
            "loaded; convert it to .safetensors with a tool you trust"
        ) from None
    except Exception as exc:  # a truncated or foreign file
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ErasekitError(f"cannot read checkpoint {path}: {type(exc).__name__}: {first}") from None
    raise ErasekitError(f"unsupported checkpoint file type {suffix!r} ({path}); expected .safetensors or .ckpt")


def newer_family(state: dict[str, torch.Tensor]) -> str | None:
    """'sdxl', 'sd3' or 'flux' when the checkpoint holds that family's denoiser (in the original layouts: an SDXL
    UNet with its label embedding, SD3's joint blocks, FLUX's double blocks), else None."""
    if SDXL_KEY in state or UNET_PREFIX + "label_emb.0.0.weight" in state:
        return "sdxl"
    if any(".joint_blocks." in k or k.startswith("joint_blocks.") for k in state):
        return "sd3"
    if any(".double_blocks." in k or k.startswith("double_blocks.") for k in state):
        return "flux"
    return None


def detect_architecture(state: dict[str, torch.Tensor]) -> str:
    """'sd1' or 'sd2' from the keys and widths of an LDM checkpoint; anything else is refused, by name where the
    checkpoint is a newer family's (those are read onto a base model's folder instead: models/load.py)."""
    newer = newer_family(state)
    if newer is not None:
        raise ErasekitError(
            f"unsupported architecture: this is a {newer.upper()} checkpoint, not SD 1.x/2.x; give the "
            "folder of its base model as well (erasekit info --config FOLDER)"
        )
    to_k = [k for k in state if k.startswith(UNET_PREFIX) and k.endswith("attn2.to_k.weight")]
    if not to_k:
        found = sorted({k.split(".")[0] for k in state})[:6]
        raise ErasekitError(
            f"unsupported architecture: no Stable Diffusion UNet (model.diffusion_model.*attn2) in checkpoint; "
            f"top-level keys found: {found}"
        )
    width = cross_attention_width(state)
    if width == 768 and any(k.startswith(CLIP_PREFIX) for k in state):
        return "sd1"
    if width == 1024 and any(k.startswith(OPEN_CLIP_PREFIX) for k in state):
        return "sd2"
    raise ErasekitError(
        f"unsupported architecture: cross-attention width {width} with text encoder "
        f"{'CLIP' if any(k.startswith(CLIP_PREFIX) for k in state) else 'OpenCLIP or none'} "
        "(SD 1.x is 768 + CLIP, SD 2.x is 1024 + OpenCLIP); for another layout give the folder of its component "
        "configs (erasekit info --config FOLDER; load_bundle(path, config=FOLDER) in Python)"
    )


def cross_attention_width(state: dict[str, torch.Tensor]) -> int | None:
    """The text width the UNet's cross-attention reads (None: no SD-style UNet in the checkpoint)."""
    to_k = next((k for k in state if k.startswith(UNET_PREFIX) and k.endswith("attn2.to_k.weight")), None)
    return None if to_k is None else int(state[to_k].shape[-1])


def from_ldm_state_dict(state, unet_config: dict, vae_config: dict, text_model) -> tuple[dict, dict, dict]:
    """Convert an LDM checkpoint into diffusers state dicts for (unet, vae, text_encoder)."""
    from diffusers.loaders import single_file_utils as sfu

    unet_sd = sfu.convert_ldm_unet_checkpoint(state, unet_config)
    vae_sd = sfu.convert_ldm_vae_checkpoint(state, vae_config)
    if any(k.startswith(OPEN_CLIP_PREFIX) for k in state):
        text_sd = sfu.convert_open_clip_checkpoint(text_model, state)
    else:
        text_sd = sfu.convert_ldm_clip_checkpoint(state)
    return unet_sd, vae_sd, _match_text_keys(text_sd, set(text_model.state_dict()))


def _match_text_keys(text_sd: dict, model_keys: set[str]) -> dict:
    """Checkpoints say `text_model.encoder...`; transformers >= 5 names CLIPTextModel's parameters without
    the `text_model.` level. Rename to whatever the installed model expects."""
    text_sd = {k: v for k, v in text_sd.items() if not k.endswith("position_ids")}
    if any(k.startswith("text_model.") for k in model_keys):
        return {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in text_sd.items()}
    return {k.removeprefix("text_model."): v for k, v in text_sd.items()}


def _unet_prefix_map(config: dict) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) pairs for a UNet2DConditionModel config (original script, generalised)."""
    n_layers = config["layers_per_block"]
    n_blocks = len(config["block_out_channels"])
    pairs = []
    for i in range(n_blocks):
        for j in range(n_layers):
            ldm = f"input_blocks.{(n_layers + 1) * i + j + 1}"
            pairs += [(f"down_blocks.{i}.resnets.{j}.", f"{ldm}.0."), (f"down_blocks.{i}.attentions.{j}.", f"{ldm}.1.")]
        if i < n_blocks - 1:
            pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(n_layers + 1) * (i + 1)}.0.op."))
        has_attn = "CrossAttn" in config["up_block_types"][i]
        for j in range(n_layers + 1):
            ldm = f"output_blocks.{(n_layers + 1) * i + j}"
            pairs += [(f"up_blocks.{i}.resnets.{j}.", f"{ldm}.0."), (f"up_blocks.{i}.attentions.{j}.", f"{ldm}.1.")]
        if i < n_blocks - 1:
            up = f"output_blocks.{(n_layers + 1) * i + n_layers}.{2 if has_attn else 1}."
            pairs.append((f"up_blocks.{i}.upsamplers.0.", up))
    pairs += [("mid_block.attentions.0.", "middle_block.1.")]
    pairs += [(f"mid_block.resnets.{j}.", f"middle_block.{2 * j}.") for j in range(2)]
    pairs += [
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("add_embedding.linear_1.", "label_emb.0.0."),  # SDXL's pooled-text and time-id embedding
        ("add_embedding.linear_2.", "label_emb.0.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
    ]
    return pairs


UNET_RESNET = [
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
]
VAE_ATTN = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]


def _rename(key: str, pairs: list[tuple[str, str]]) -> str:
    for new, old in pairs:
        if key.startswith(new):
            return old + key[len(new) :]
    return key


def _unet_to_ldm(unet_sd: dict, config: dict) -> dict:
    pairs = _unet_prefix_map(config)
    out = {}
    for key, value in unet_sd.items():
        for new_prefix, old_prefix in pairs:
            if key.startswith(new_prefix):
                rest = key[len(new_prefix) :]
                if ".resnets." in new_prefix:
                    rest = _rename(rest, UNET_RESNET)
                key = old_prefix + rest
                break
        out[UNET_PREFIX + key] = value
    return out


def _vae_to_ldm(vae_sd: dict, config: dict) -> dict:
    n_blocks = len(config["block_out_channels"])
    pairs = []
    for i in range(n_blocks):
        pairs += [
            (f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."),
            (f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."),
            (f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n_blocks - 1 - i}.block."),
            (f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n_blocks - 1 - i}.upsample."),
        ]
    for part in ("encoder", "decoder"):
        pairs += [(f"{part}.mid_block.resnets.{i}.", f"{part}.mid.block_{i + 1}.") for i in range(2)]
        pairs += [
            (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."),
            (f"{part}.conv_norm_out.", f"{part}.norm_out."),
        ]
    out = {}
    for key, value in vae_sd.items():
        new = _rename(key, pairs).replace("conv_shortcut.", "nin_shortcut.")
        if ".mid.attn_1." in new:
            head, tail = new.split(".mid.attn_1.")
            new = f"{head}.mid.attn_1.{_rename(tail, VAE_ATTN)}"
            if new.endswith("weight") and value.ndim == 2:  # LDM stores these as 1x1 convolutions
                value = value[:, :, None, None]
        out[VAE_PREFIX + new] = value
    return out


def to_ldm_state_dict(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """One LDM-layout state dict (what A1111/ComfyUI and `from_single_file` read) from diffusers modules."""
    if text_encoder.config.hidden_act != "quick_gelu":
        raise ErasekitError("single-file export supports SD 1.x-style CLIP text encoders only; use format=diffusers")
    state = _unet_to_ldm(unet.state_dict(), dict(unet.config))
    state.update(_vae_to_ldm(vae.state_dict(), dict(vae.config)))
    text_sd = {
        k if k.startswith("text_model.") else "text_model." + k: v for k, v in text_encoder.state_dict().items()
    }  # the layout SD 1.x checkpoints use
    state.update({CLIP_PREFIX + k: v for k, v in text_sd.items()})
    return {k: v.detach().contiguous() for k, v in state.items()}
