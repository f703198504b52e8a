"""Loading a model of any family: `load_bundle(source)`.

source is "mini" (the embedded miniature), "tiny" / "tiny-sd1" / "tiny-sdxl" / "tiny-sd3" / "tiny-flux" (random
models for plumbing), a hub id, a local diffusers folder, or a single .safetensors / .ckpt checkpoint. A folder's
family is its pipeline class (model_index.json); its components are read with the classes that file names, from
diffusers and transformers only, in the asked dtype (never materialised in fp32 first). Anything else (a video
model, a pipeline of another kind) is refused with the class that was found.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from erasekit.core.assets import CONFIGS, mini_path
from erasekit.core.errors import ErasekitError
from erasekit.core.sampler import CALL_FILE, Sampling
from erasekit.models import ldm
from erasekit.models.bundle import Bundle
from erasekit.models.families import PIPELINES, bundle_class
from erasekit.models.synthetic import TINY, tiny_components
from erasekit.models.text import clip_tokenizer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TINY_SOURCES = {"tiny": "sd1", "tiny-sd1": "sd1", "tiny-sdxl": "sdxl", "tiny-sd3": "sd3", "tiny-flux": "flux"}
LIBRARIES = ("diffusers", "transformers")  # the only libraries a folder's components are read from
OPTIONS = ("force_zeros_for_empty_prompt",)  # pipeline settings (model_index.json) a bundle keeps in its meta


def resolve_dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ErasekitError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def assemble(
    modules: dict,
    tokenizers: dict,
    scheduler,
    options: dict,
    source: str,
    family: str,
    scale: str | None = None,
    sampling: Sampling | None = None,
) -> Bundle:
    """A Bundle of `family` over these components: the scheduler of its kind (DDIM for the UNet families, the
    flow-matching one for SD3 and FLUX), its scale recognised from its layout unless given."""
    from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

    cls = bundle_class(family)
    kind = FlowMatchEulerDiscreteScheduler if cls.DENOISER == "transformer" else DDIMScheduler
    if type(scheduler) is not kind:
        scheduler = kind.from_config(scheduler.config)
    order = (cls.DENOISER, *(spec.module for spec in cls.TEXT), "vae")
    missing = [name for name in order if modules.get(name) is None]
    if missing:
        raise ErasekitError(f"{source}: a {family} model needs {', '.join(missing)}, which it does not have")
    modules = {name: modules[name] for name in order}
    tokenizers = {spec.tokenizer: tokenizers[spec.tokenizer] for spec in cls.TEXT}
    for module in modules.values():
        module.eval().requires_grad_(False)
    scale = scale or recognised_scale(family, modules[cls.DENOISER].config)
    meta = {k: v for k, v in options.items() if k in OPTIONS}
    return cls(modules, tokenizers, scheduler, source=source, family=family, scale=scale, meta=meta, sampling=sampling)


def recognised_scale(family: str, denoiser_config) -> str:
    """mini: the shipped miniature's layout (every edit or export of it has it); tiny: a tiny model's; else full."""
    if family == "sd1" and _same_layout(denoiser_config, _config(mini_path() / "unet")):
        return "mini"
    if family in TINY and _same_layout(denoiser_config, TINY[family]):
        return "tiny"
    return "full"


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _same_layout(config: Mapping[str, object], reference: Mapping[str, object]) -> bool:
    keys = [
        k
        for k in (
            "cross_attention_dim",
            "block_out_channels",
            "sample_size",
            "in_channels",
            "num_layers",
            "attention_head_dim",
            "joint_attention_dim",
        )
        if k in reference
    ]
    as_list = lambda v: list(v) if isinstance(v, (list, tuple)) else [v]  # noqa: E731
    return all(as_list(config.get(k)) == as_list(reference[k]) for k in keys)


# ---- folders and hub ids ----------------------------------------------------------------------------
def _index(path: str, hub: bool, kwargs: dict) -> dict:
    """The folder's model_index.json."""
    if not hub:
        index = Path(path) / "model_index.json"
        if not index.is_file():
            raise ErasekitError(f"not a diffusers pipeline folder: {path} has no model_index.json")
        return json.loads(index.read_text())
    from diffusers import DiffusionPipeline

    return dict(DiffusionPipeline.load_config(path, **kwargs))


def _family(index: dict, path: str) -> str:
    """The family of a pipeline class; SD-1.x and SD-2.x by their text encoder's width (768 / 1024)."""
    cls = index.get("_class_name", "?")
    family = PIPELINES.get(cls)
    if family is None:
        raise ErasekitError(
            f"unsupported architecture: {cls} in {path} (erasekit supports the Stable Diffusion "
            "1.x/2.x, SDXL, SD3 and FLUX pipelines)"
        )
    return family


def _load_folder(path: str, hub: bool, dtype: torch.dtype) -> tuple[dict, dict, Any, dict, str]:
    """(modules, tokenizers, scheduler, pipeline options, family) of a diffusers folder or hub id."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    kwargs = {} if hub and not offline else {"local_files_only": True}
    try:
        index = _index(path, hub, kwargs)
        family = _family(index, path)
        cls = bundle_class("sd1" if family == "sd" else family)
        wanted = [cls.DENOISER, "vae", *(s.module for s in cls.TEXT)]
        if not hub:
            for name in wanted + [s.tokenizer for s in cls.TEXT]:
                if not (Path(path) / name).is_dir():
                    raise ErasekitError(f"not a complete {family} diffusers folder: {path} has no {name}/")
        modules = {name: _component(index, name, path, {**kwargs, "torch_dtype": dtype}) for name in wanted}
        tokenizers = {s.tokenizer: _component(index, s.tokenizer, path, kwargs) for s in cls.TEXT}
        scheduler = _component(index, "scheduler", path, kwargs)
    except (OSError, ValueError) as exc:
        why = "HF_HUB_OFFLINE is set and it is not cached" if offline else "no network, or a wrong id?"
        where = f"hub model {path!r} ({why})" if hub else f"diffusers folder {path}"
        raise ErasekitError(f"cannot load {where}: {str(exc).splitlines()[0]}") from None
    if family == "sd":
        family = "sd2" if modules["text_encoder"].config.hidden_size == 1024 else "sd1"
    return modules, tokenizers, scheduler, {k: index[k] for k in OPTIONS if k in index}, family


def _component(index: dict, name: str, path: str, kwargs: dict):
    """One component, read with the class model_index.json names for it (from diffusers or transformers)."""
    entry = index.get(name)
    if not isinstance(entry, (list, tuple)) or len(entry) != 2 or entry[0] is None:
        raise ErasekitError(f"{path}: its model_index.json lists no {name}")
    library, cls = entry
    if library not in LIBRARIES:
        raise ErasekitError(
            f"{path}: {name} is a {library}.{cls}; erasekit reads components from {' and '.join(LIBRARIES)} only"
        )
    found = getattr(importlib.import_module(library), cls, None)
    if found is None:
        raise ErasekitError(f"{path}: {name} class {cls} is not in the installed {library}")
    if "Tokenizer" in cls or "Scheduler" in cls:
        kwargs = {k: v for k, v in kwargs.items() if k != "torch_dtype"}
    return found.from_pretrained(path, subfolder=name, **kwargs)


def _folder_sampling(path: Path) -> Sampling | None:
    """The sampler edit an exported folder carries in `sampler.json` (None without one)."""
    file = path / CALL_FILE
    if not file.is_file():
        return None
    try:
        return Sampling.from_dict(json.loads(file.read_text())["sampling"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ErasekitError(f"corrupt {file}: {exc}") from None


# ---- single files -----------------------------------------------------------------------------------
def _load_single_file(path: Path, config: str | Path | None, dtype: torch.dtype) -> tuple[dict, dict, Any, dict, str]:
    """(modules, tokenizers, scheduler, options, family) of a single checkpoint file, in `dtype`.

    SD 1.x / 2.x (and the miniature's export): the whole model, read with diffusers' converters into modules built
    without weights (accelerate's empty init: no random initialisation of a billion parameters only to overwrite
    them). SDXL, SD3 and FLUX: their denoiser (what their single files hold for certain; FLUX's hold nothing else),
    read with diffusers' `from_single_file` onto the diffusers folder of the base model named by `config`, which
    gives every other component."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    state = ldm.read_checkpoint(path)
    newer = ldm.newer_family(state)
    if newer is not None:
        del state
        return _denoiser_file(path, newer, config, dtype)
    if config is None:
        family, config = _recognise(state)
    else:
        family, config = "sd1", Path(config)
    unet_cfg = UNet2DConditionModel.load_config(str(config / "unet"))
    vae_cfg = AutoencoderKL.load_config(str(config / "vae"))
    with init_empty_weights():
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(str(config / "text_encoder")))
        unet = UNet2DConditionModel.from_config(unet_cfg)
        vae = AutoencoderKL.from_config(vae_cfg)
    if text_encoder.config.hidden_size == 1024:
        family = "sd2"
    unet_sd, vae_sd, text_sd = ldm.from_ldm_state_dict(state, unet_cfg, vae_cfg, text_encoder)
    del state
    for module, sd, name in [(unet, unet_sd, "UNet"), (vae, vae_sd, "VAE"), (text_encoder, text_sd, "text encoder")]:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
        missing, unexpected = module.load_state_dict(sd, strict=True, assign=True)
        if missing or unexpected:
            raise ErasekitError(
                f"checkpoint {path.name} does not match the {family} {name} config: "
                f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
            )
    scheduler = DDIMScheduler.from_pretrained(str(config / "scheduler"))
    tok_dir = config / "tokenizer" if (config / "tokenizer").exists() else None
    tokenizer = clip_tokenizer(tok_dir, pad_token="!" if family == "sd2" else None)
    return {"unet": unet, "text_encoder": text_encoder, "vae": vae}, {"tokenizer": tokenizer}, scheduler, {}, family


def _denoiser_file(path: Path, family: str, config: str | Path | None, dtype: torch.dtype):
    """An SDXL / SD3 / FLUX checkpoint's denoiser on the components of the base model's diffusers folder."""
    cls = bundle_class(family)
    if config is None:
        raise ErasekitError(
            f"{path.name} is a {family} checkpoint: give the diffusers folder of its base model "
            f"(load_bundle(path, config=FOLDER) in Python, `erasekit info FILE --config FOLDER`); the checkpoint "
            f"replaces its {cls.DENOISER}, the folder gives the text encoders, tokenizers, VAE and scheduler. The "
            f"other commands take the combined model as a diffusers folder: save it once with diffusers' "
            f"from_single_file(...).save_pretrained(...)"
        )
    modules, tokenizers, scheduler, options, found = _load_folder(str(config), False, dtype)
    if found != family:
        raise ErasekitError(f"{path.name} is a {family} checkpoint but {config} is a {found} model")
    try:
        modules[cls.DENOISER] = type(modules[cls.DENOISER]).from_single_file(
            str(path), config=str(config), subfolder=cls.DENOISER, local_files_only=True, torch_dtype=dtype
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ErasekitError(
            f"cannot read the {family} {cls.DENOISER} of {path.name}: {(str(exc).strip().splitlines() or [''])[0]}"
        ) from None
    return modules, tokenizers, scheduler, options, family


def _recognise(state: dict[str, torch.Tensor]) -> tuple[str, Path]:
    """The family of a single-file checkpoint and the folder of its component configs: SD 1.x / 2.x, or the
    miniature (a single-file export of it, or of an edit of it)."""
    try:
        family = ldm.detect_architecture(state)
        return family, Path(str(CONFIGS / family))
    except ErasekitError:
        mini_unet = mini_path() / "unet" / "config.json"
        if mini_unet.exists() and ldm.cross_attention_width(state) == json.loads(mini_unet.read_text()).get(
            "cross_attention_dim"
        ):
            return "sd1", mini_path()
        raise


# ---- load_bundle ------------------------------------------------------------------------------------
def load_bundle(
    source: str | Path = "mini",
    device=None,
    dtype=None,
    config: str | Path | None = None,
    prediction_type: str | None = None,
) -> Bundle:
    """Load a model. `config` overrides the shipped SD 1.x/2.x component configs for a single-file checkpoint;
    `prediction_type` ("epsilon" / "v_prediction") overrides the scheduler's (e.g. SD 2.x-base is epsilon)."""
    device, torch_dtype = resolve_device(device), resolve_dtype(dtype)
    source = str(source)
    if not source.strip():
        raise ErasekitError("empty model source; use 'mini', a hub id, a diffusers folder or a .safetensors file")
    path = Path(source).expanduser()
    sampling: Sampling | None = None
    options: dict = {}
    scale: str | None = None
    if source in TINY_SOURCES:
        family = TINY_SOURCES[source]
        modules, tokenizers, scheduler, options = tiny_components(family)
        scale = "tiny"
    elif source == "mini":
        if not (mini_path() / "model_index.json").exists():
            raise ErasekitError(
                f"the miniature is not installed at {mini_path()}; build it with `erasekit world train`"
            )
        modules, tokenizers, scheduler, options, family = _load_folder(str(mini_path()), False, torch_dtype)
        scale = "mini"
    elif path.is_file():
        modules, tokenizers, scheduler, options, family = _load_single_file(path, config, torch_dtype)
    elif path.is_dir():
        modules, tokenizers, scheduler, options, family = _load_folder(str(path), False, torch_dtype)
        sampling = _folder_sampling(path)
    elif source.count("/") == 1 and not source.startswith((".", "/", "~")) and not path.suffix:
        modules, tokenizers, scheduler, options, family = _load_folder(source, True, torch_dtype)
    else:
        raise ErasekitError(
            f"model source not found: {source!r} (expected 'mini', 'tiny' or tiny-sdxl / tiny-sd3 / tiny-flux, a hub "
            "id like owner/name, a diffusers folder, or a .safetensors/.ckpt file)"
        )
    if prediction_type:
        scheduler = type(scheduler).from_config(scheduler.config, prediction_type=prediction_type)
    for module in modules.values():  # cast tensor by tensor on the way: the device never holds fp32
        module.to(device=device, **({"dtype": torch_dtype} if module.dtype != torch_dtype else {}))
    return assemble(modules, tokenizers, scheduler, options, source, family, scale, sampling)
