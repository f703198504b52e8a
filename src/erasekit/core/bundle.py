"""The Bundle: the parts of a Stable-Diffusion-style model that every method needs, and what they do together.

`load_bundle(source)` takes "mini" (the embedded miniature), "tiny" (a random SD-shaped model for plumbing),
a hub id, a local diffusers folder, or a single .safetensors / .ckpt checkpoint (SD 1.x / 2.x).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from erasekit.core import ldm
from erasekit.core.assets import CONFIGS, clip_tokenizer, mini_path
from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_dir
from erasekit.core.sampler import CALL_FILE, SAFE_PIPELINE, Sampling, safety_guidance
from erasekit.core.seeding import make_generator

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPONENTS = ("unet", "text_encoder", "vae")
FINGERPRINT_PREFIX = "v2:"  # version 1 (erasekit 0.1.0) had none
SAMPLES = 8  # values of each tensor a fingerprint reads


def sample_indices(numel: int) -> list[int]:
    """The positions a fingerprint reads in a flattened tensor of `numel` values: min(numel, 8) evenly spaced, the
    first and the last included, each the nearest integer to i (numel − 1) / (steps − 1). Integer arithmetic: exact
    at any size (with steps − 1 = 7, odd, no position falls halfway)."""
    steps = min(numel, SAMPLES)
    if steps <= 1:
        return [0] * steps
    return [(2 * i * (numel - 1) + steps - 1) // (2 * (steps - 1)) for i in range(steps)]


def _linspace_indices(numel: int) -> list[int] | None:
    """Version 1's positions (erasekit 0.1.0): float32 linspace, rounded; None where one falls past the end."""
    idx = torch.linspace(0, numel - 1, steps=min(numel, SAMPLES)).round().long().tolist()
    return idx if all(i < numel for i in idx) else None


def _digest(state: dict[str, torch.Tensor], indices) -> str | None:
    """16 hex digits of sha256 over each tensor's name, shape and values at `indices(numel)` (rounded to bf16);
    None when `indices` has no positions for some tensor."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        flat = tensor.detach().reshape(-1)
        idx = indices(flat.numel())
        if idx is None:
            return None
        sample = flat[torch.tensor(idx, dtype=torch.long, device=flat.device)]
        digest.update(f"{name}:{tuple(tensor.shape)}:".encode())
        digest.update(sample.float().to(torch.bfloat16).float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Bundle:
    """Tokenizer, text encoder, UNet, VAE and scheduler of one model, on one device and dtype."""

    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler: DDIMScheduler
    source: str
    arch: str
    meta: dict = field(default_factory=dict)
    sampling: Sampling | None = None  # a sampler edit (negative prompt, SLD) that `sample` applies
    resolution: int | None = None  # image side in pixels that `sample` draws at (None: the model's own)

    @property
    def device(self) -> torch.device:  # the first parameter's: diffusers' unet.device walks every module (~1 ms)
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:  # likewise: called several times per UNet pass
        return next(self.unet.parameters()).dtype

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size if self.resolution is None else self.resolution // self.vae_scale_factor
        return (self.unet.config.in_channels, size, size)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def image_size(self) -> int:
        """The side of the images `sample` draws, in pixels."""
        return self.latent_shape[1] * self.vae_scale_factor

    @property
    def image_batch(self) -> int:
        """Images generated at once: up to 64, fewer as latents grow (8 at SD-1.x's 4x64x64, 3 at SD-2.x's 96x96),
        so that a guided UNet batch fits a consumer GPU."""
        return max(1, min(64, 2**17 // math.prod(self.latent_shape)))

    def at_resolution(self, resolution: int | None) -> "Bundle":
        """This model drawing `resolution` x `resolution` images (None: its own size). The side must divide into
        the latent grid the UNet can halve at each of its down blocks."""
        if resolution is None:
            return replace(self, resolution=None)
        step = self.vae_scale_factor * 2 ** (len(self.unet.config.down_block_types) - 1)
        if resolution < step or resolution % step:
            raise ErasekitError(f"resolution {resolution} does not fit {self.source!r}: give a multiple of {step} "
                                f"(its own is {self.unet.config.sample_size * self.vae_scale_factor})")
        return replace(self, resolution=resolution)

    # ---- parameters -------------------------------------------------------------------------------
    def component(self, name: str) -> torch.nn.Module:
        if name not in COMPONENTS:
            raise ErasekitError(f"unknown model component {name!r}; valid: {', '.join(COMPONENTS)}")
        return getattr(self, name)

    def named_parameters(self):
        """All parameters, named `component.param` (the names edits use)."""
        for comp in COMPONENTS:
            for name, param in self.component(comp).named_parameters():
                yield f"{comp}.{name}", param

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{c}.{k}": v for c in COMPONENTS for k, v in self.component(c).state_dict().items()}

    def clone(self, components: tuple[str, ...] = COMPONENTS, changes: Callable[[str], bool] | None = None) -> "Bundle":
        """A bundle sharing everything but copies of `components` (so edits leave this one intact).

        `changes`: a test on `component.parameter` names (buffers too). Only the tensors it accepts are copied; the
        copied modules share every other tensor with this bundle, which must then not be changed in place. At real
        size this is the difference between copying a 3.4 GB UNet and copying the 0.1 GB of cross-attention a
        method trains or an edit replaces."""
        def copied(name: str) -> torch.nn.Module:
            module = self.component(name)
            if changes is None:
                return copy.deepcopy(module)
            tensors = itertools.chain(module.named_parameters(), module.named_buffers())
            shared = {id(t): t for n, t in tensors if not changes(f"{name}.{n}")}
            return copy.deepcopy(module, shared)  # the memo: deepcopy returns these tensors themselves

        return replace(self, **{c: copied(c) for c in components}, meta=dict(self.meta))

    def fingerprint(self) -> str:
        """Stable hash of parameter names, shapes and a fixed sample of values (rounded to bf16), as "v2:" and 16
        hex digits.

        The sample is 8 evenly spaced values of every tensor (`sample_indices`: exact integer arithmetic, for any
        size, on any device). Rounding makes an fp16/bf16 load of the same weights match the fp32 one, so an edit
        made at one precision applies at another; any change to a sampled value larger than bf16 rounding changes
        it. Compare a recorded fingerprint with `matches`, which also knows erasekit 0.1.0's."""
        return FINGERPRINT_PREFIX + _digest(self.state_dict(), sample_indices)

    def legacy_fingerprint(self) -> str | None:
        """The fingerprint erasekit 0.1.0 wrote (version 1: 16 hex digits, no prefix), kept to check its edits, keys
        and bench cells. Its sample positions came from a float32 `torch.linspace`, which rounds past the end of a
        tensor of more than 2^24 values: None for a model with such a tensor (0.1.0 could not fingerprint it, so no
        file holds its version-1 fingerprint)."""
        return _digest(self.state_dict(), _linspace_indices)

    def matches(self, fingerprint: str | None) -> bool:
        """Whether a recorded fingerprint (an edit's base, a key's model, a bench cell's) is this model's: the
        current version, or version 1, recomputed the way erasekit 0.1.0 computed it."""
        if not fingerprint:
            return False
        if fingerprint.startswith(FINGERPRINT_PREFIX):
            return fingerprint == self.fingerprint()
        return fingerprint == self.legacy_fingerprint()

    # ---- text -------------------------------------------------------------------------------------
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Token ids [B, 77], padded and truncated as SD does."""
        if isinstance(prompts, str):
            prompts = [prompts]
        words = self.meta.get("words")  # learned multi-vector words (core.tokens.add_tokens)
        if words:
            from erasekit.core.tokens import expand

            prompts = [expand(p, words) for p in prompts]
        ids = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length,
            truncation=True, return_tensors="pt",
        ).input_ids
        return ids.to(self.device)

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Raw token embeddings [B, L, D] (before position embeddings): the space attacks and mining search."""
        return self.text_encoder.get_input_embeddings()(input_ids.to(self.device))

    def encode_embeddings(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Text-encoder hidden states [B, L, D] from raw token embeddings (CLIPTextModel's forward, from embeddings)."""
        from transformers.masking_utils import create_causal_mask

        te = self.text_encoder
        hidden = te.embeddings(inputs_embeds=inputs_embeds.to(device=self.device, dtype=te.dtype))
        mask = create_causal_mask(config=te.config, inputs_embeds=hidden, attention_mask=None, past_key_values=None)
        hidden = te.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
        return te.final_layer_norm(hidden)

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Conditioning [B, 77, D] for prompts (the text encoder's last hidden state, as SD uses it)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        return self.text_encoder(self.tokenize(prompts)).last_hidden_state

    # ---- images and noise -------------------------------------------------------------------------
    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1], [B, 3, H, W] -> scaled latents (posterior mean, or a sample if a generator is given)."""
        dist = self.vae.encode(images.to(self.device, self.vae.dtype)).latent_dist
        z = dist.mean if generator is None else dist.sample(generator)
        return z * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [-1, 1]; at most 2^15 latent values at a time (2 images at SD-1.x's size: the
        VAE's decoder holds activations of the full image size)."""
        chunk = max(1, 2**15 // math.prod(latents.shape[1:]))
        z = latents.to(self.vae.dtype) / self.vae.config.scaling_factor
        return torch.cat([self.vae.decode(part).sample.clamp(-1, 1) for part in z.split(chunk)])

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps (the forward process at training timestep t)."""
        t = torch.as_tensor(t, device=z0.device).long().reshape(-1).expand(z0.shape[0])
        return self.scheduler.add_noise(z0, noise, t)

    def generator(self, seed: int) -> torch.Generator:
        """A CPU generator, so that the same seed gives the same noise on every device."""
        return make_generator(seed, "cpu")

    def initial_noise(self, seeds: list[int]) -> torch.Tensor:
        """Initial latents [B, C, h, w], one independent draw per seed (as the stock pipeline draws for batch 1)."""
        draws = [torch.randn((1, *self.latent_shape), generator=self.generator(s)) for s in seeds]
        return torch.cat(draws).to(self.device, self.dtype)

    # ---- noise prediction -------------------------------------------------------------------------
    def model_output(self, z_t: torch.Tensor, t, cond: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=self.device).reshape(-1).expand(z_t.shape[0])
        return self.unet(z_t.to(self.dtype), t, encoder_hidden_states=cond.to(self.dtype)).sample

    def guided_output(self, z_t: torch.Tensor, t, cond: torch.Tensor, uncond: torch.Tensor | None = None,
                      guidance: float = 1.0) -> torch.Tensor:
        """The UNet's output (eps or v, as the model predicts); with `uncond`, classifier-free guidance
        out_u + guidance * (out_c - out_u), both halves in one batch."""
        t_b = torch.as_tensor(t, device=self.device).reshape(-1).expand(z_t.shape[0])
        if uncond is None or guidance == 1.0:
            return self.model_output(z_t, t_b, cond)
        out_u, out_c = self.model_output(torch.cat([z_t, z_t]), torch.cat([t_b, t_b]),
                                         torch.cat([uncond, cond])).chunk(2)
        return out_u + guidance * (out_c - out_u)

    def eps(self, z_t: torch.Tensor, t, cond: torch.Tensor, uncond: torch.Tensor | None = None,
            guidance: float = 1.0) -> torch.Tensor:
        """Predicted noise eps(z_t, t, cond), optionally guided (see `guided_output`).
        v-prediction models are converted to eps."""
        out = self.guided_output(z_t, t, cond, uncond, guidance)
        if self.scheduler.config.prediction_type == "v_prediction":
            t_b = torch.as_tensor(t, device=self.device).reshape(-1).expand(z_t.shape[0]).long()
            a = self.scheduler.alphas_cumprod.to(self.device)[t_b].to(out.dtype).reshape(-1, 1, 1, 1)
            out = a.sqrt() * out + (1 - a).sqrt() * z_t  # eps = sqrt(a) v + sqrt(1-a) z_t
        return out

    # ---- sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, cond: torch.Tensor, seeds: list[int], steps: int = 25, guidance: float = 5.0,
               uncond: torch.Tensor | None = None, latents: torch.Tensor | None = None,
               stop_at: int | None = None, decode: bool = True, record: list | None = None) -> torch.Tensor:
        """DDIM (eta 0) sampling, as the stock pipeline does it. Returns images in [-1, 1] (or latents).
        The bundle's `sampling` (a sampler edit) applies: its negative prompt is the default `uncond`, its safety
        concept adds SLD's guidance (core/sampler.py), both only under classifier-free guidance (guidance > 1).

        `stop_at` ends after that many steps and returns the latent z_t there (ESD's partial trajectory).
        `record`: a list that receives (t, z_t) for every step, the latent the UNet saw at timestep t.
        """
        scheduler = DDIMScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)
        z = self.initial_noise(seeds) if latents is None else latents
        z = z * scheduler.init_noise_sigma
        s = self.sampling
        if uncond is None and guidance > 1.0:
            uncond = self.encode_prompts([s.negative_prompt if s else ""] * cond.shape[0])
        safety = self.encode_prompts([s.safety_concept]).expand(cond.shape[0], -1, -1) \
            if s is not None and s.safety and guidance > 1.0 else None
        momentum = None
        for i, t in enumerate(scheduler.timesteps):
            if stop_at is not None and i >= stop_at:
                break
            if record is not None:
                record.append((int(t), z))
            if safety is None:
                out = self.guided_output(z, t, cond, uncond if guidance > 1.0 else None, guidance)
            else:  # SLD: ε(∅), ε(c_p) and ε(S) in one batch, as StableDiffusionPipelineSafe evaluates them
                out_u, out_c, out_s = self.model_output(torch.cat([z, z, z]), t,
                                                        torch.cat([uncond, cond, safety])).chunk(3)
                g, momentum = safety_guidance(out_u, out_c, out_s, momentum, i, s)
                out = out_u + guidance * g
            z = scheduler.step(out, t, z).prev_sample
        if stop_at is not None or not decode:
            return z
        return self.decode_latents(z)

    @torch.no_grad()
    def trajectory(self, cond: torch.Tensor, seeds: list[int], steps: int = 25,
                   guidance: float = 5.0) -> tuple[list[int], torch.Tensor]:
        """The DDIM run's timesteps and the latents z_t the UNet saw at each ([steps, B, C, h, w]), then z_0 last
        ([steps + 1, ...]): what P4D matches predictions along."""
        record: list = []
        z0 = self.sample(cond, seeds, steps=steps, guidance=guidance, decode=False, record=record)
        return [t for t, _ in record], torch.stack([z for _, z in record] + [z0])

    @torch.no_grad()
    def generate(self, prompts: list[str] | None, seeds: list[int], steps: int = 25, guidance: float = 5.0,
                 cond: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1], [B, 3, H, W], one per (prompt, seed); or from conditioning `cond` [B, L, D] (prompt
        embeddings an attack built) in place of prompts."""
        if cond is None:
            if isinstance(prompts, str):
                prompts = [prompts] * len(seeds)
            if any(not p.strip() for p in prompts):
                raise ErasekitError("empty prompt: give a text prompt to generate from")
            cond = self.encode_prompts(prompts)
        b = self.image_batch
        images = [self.sample(cond[i : i + b], seeds[i : i + b], steps=steps, guidance=guidance)
                  for i in range(0, len(seeds), b)]
        return (torch.cat(images).float() + 1) / 2

    # ---- saving -----------------------------------------------------------------------------------
    def to_pipeline(self):
        """A stock diffusers pipeline over these components (no safety checker): StableDiffusionPipeline, or
        StableDiffusionPipelineSafe with its safety concept set when the bundle samples with SLD."""
        import diffusers

        safe = self.sampling is not None and bool(self.sampling.safety_concept)
        cls = getattr(diffusers, SAFE_PIPELINE if safe else "StableDiffusionPipeline")
        pipe = cls(vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=self.unet,
                   scheduler=self.scheduler, safety_checker=None, feature_extractor=None,
                   requires_safety_checker=False)
        if safe:
            pipe.safety_concept = self.sampling.safety_concept
        return pipe

    def save_pretrained(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write a complete diffusers pipeline folder (to a temporary name, renamed when complete). A bundle with a
        sampler edit also writes `sampler.json`: the pipeline class, its safety concept and the keyword arguments
        a stock pipeline call needs to sample the same way (erasekit's loader reads it back)."""
        with atomic_dir(out, overwrite=overwrite) as tmp:
            pipe = self.to_pipeline()
            pipe.save_pretrained(tmp, safe_serialization=True)
            if self.sampling is not None:
                call = {"pipeline": type(pipe).__name__, "safety_concept": self.sampling.safety_concept,
                        "call": self.sampling.call_kwargs(), "sampling": self.sampling.as_dict()}
                (tmp / CALL_FILE).write_text(json.dumps(call, indent=2, sort_keys=True))
        return Path(out)


# ---- loading ----------------------------------------------------------------------------------------

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


def _check_pipeline_folder(path: Path) -> None:
    index = path / "model_index.json"
    if index.exists():
        cls = json.loads(index.read_text()).get("_class_name", "?")
        if cls not in ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", SAFE_PIPELINE):
            raise ErasekitError(f"unsupported architecture: {cls} in {path} (erasekit supports SD 1.x/2.x pipelines)")
    for sub, name in [("unet", "config.json"), ("vae", "config.json"), ("text_encoder", "config.json")]:
        if not (path / sub / name).exists():
            raise ErasekitError(f"not a Stable Diffusion diffusers folder: {path} has no {sub}/{name}")
    unet_cls = json.loads((path / "unet" / "config.json").read_text()).get("_class_name")
    if unet_cls != "UNet2DConditionModel":
        raise ErasekitError(f"unsupported architecture: UNet class {unet_cls} in {path}")


def _folder_sampling(path: Path) -> Sampling | None:
    """The sampler edit an exported folder carries in `sampler.json` (None without one)."""
    file = path / CALL_FILE
    if not file.is_file():
        return None
    try:
        return Sampling.from_dict(json.loads(file.read_text())["sampling"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ErasekitError(f"corrupt {file}: {exc}") from None


def _load_folder(path: str, hub: bool, dtype: torch.dtype = torch.float32):
    """The components of a diffusers folder (or hub id), read in `dtype` (never materialised in fp32 first)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    kwargs = {} if hub and not offline else {"local_files_only": True}
    try:
        tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer", **kwargs)
        text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", torch_dtype=dtype, **kwargs)
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype, **kwargs)
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype, **kwargs)
        scheduler = DDIMScheduler.from_pretrained(path, subfolder="scheduler", **kwargs)
    except (OSError, ValueError) as exc:
        why = "HF_HUB_OFFLINE is set and it is not cached" if offline else "no network, or a wrong id?"
        where = f"hub model {path!r} ({why})" if hub else f"diffusers folder {path}"
        raise ErasekitError(f"cannot load {where}: {str(exc).splitlines()[0]}") from None
    return tokenizer, text_encoder, unet, vae, scheduler


def _load_single_file(path: Path, config: str | Path | None, prediction_type: str | None,
                      dtype: torch.dtype = torch.float32):
    """The components of an LDM checkpoint, in `dtype`. The modules are built without weights (accelerate's empty
    init: no random initialisation of a billion parameters only to overwrite them) and take the checkpoint's."""
    from accelerate import init_empty_weights

    state = ldm.read_checkpoint(path)
    if config is None:
        arch, config = _recognise(state)
    else:
        arch, config = "custom", Path(config)
    unet_cfg = UNet2DConditionModel.load_config(str(config / "unet"))
    vae_cfg = AutoencoderKL.load_config(str(config / "vae"))
    with init_empty_weights():
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(str(config / "text_encoder")))
        unet = UNet2DConditionModel.from_config(unet_cfg)
        vae = AutoencoderKL.from_config(vae_cfg)
    unet_sd, vae_sd, text_sd = ldm.from_ldm_state_dict(state, unet_cfg, vae_cfg, text_encoder)
    del state
    for module, sd, name in [(unet, unet_sd, "UNet"), (vae, vae_sd, "VAE"), (text_encoder, text_sd, "text encoder")]:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
        missing, unexpected = module.load_state_dict(sd, strict=False, assign=True)
        if missing or unexpected:
            raise ErasekitError(
                f"checkpoint {path.name} does not match the {arch} {name} config: "
                f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
            )
    scheduler = DDIMScheduler.from_pretrained(str(config / "scheduler"))
    if prediction_type:
        scheduler = DDIMScheduler.from_config(scheduler.config, prediction_type=prediction_type)
    tok_dir = config / "tokenizer" if (config / "tokenizer").exists() else None
    tokenizer = clip_tokenizer(tok_dir, pad_token="!" if arch == "sd2" else None)
    return tokenizer, text_encoder, unet, vae, scheduler, arch


def _mini_layout(unet_config) -> bool:
    """Whether a UNet has the shipped miniature's layout (its widths and cross-attention), as every edit or export
    of the miniature does."""
    mini = UNet2DConditionModel.load_config(str(mini_path() / "unet"))
    keys = ("cross_attention_dim", "block_out_channels", "sample_size", "in_channels")
    return all(list(_as_list(unet_config.get(k))) == list(_as_list(mini.get(k))) for k in keys)


def _as_list(value):
    return value if isinstance(value, (list, tuple)) else [value]


def _recognise(state: dict[str, torch.Tensor]) -> tuple[str, Path]:
    """The architecture of a single-file checkpoint and the folder of its component configs: SD 1.x / 2.x, or
    the miniature (a single-file export of it, or of an edit of it)."""
    try:
        arch = ldm.detect_architecture(state)
        return arch, Path(str(CONFIGS / arch))
    except ErasekitError:
        mini_unet = mini_path() / "unet" / "config.json"
        if mini_unet.exists() and ldm.cross_attention_width(state) == json.loads(mini_unet.read_text()).get(
                "cross_attention_dim"):
            return "mini", mini_path()
        raise


def load_bundle(source: str | Path = "mini", device=None, dtype=None, config: str | Path | None = None,
                prediction_type: str | None = None) -> Bundle:
    """Load a model. `config` overrides the shipped SD 1.x/2.x component configs for a single-file checkpoint;
    `prediction_type` ("epsilon" / "v_prediction") overrides the scheduler's (e.g. SD 2.x-base is epsilon)."""
    device, torch_dtype = resolve_device(device), resolve_dtype(dtype)
    source = str(source)
    if not source.strip():
        raise ErasekitError("empty model source; use 'mini', a hub id, a diffusers folder or a .safetensors file")
    path = Path(source).expanduser()
    if source == "tiny":
        from erasekit.core.synthetic import tiny_components

        parts, arch = tiny_components(), "tiny"
    elif source == "mini":
        if not (mini_path() / "model_index.json").exists():
            raise ErasekitError(f"the miniature is not installed at {mini_path()}; build it with `erasekit world train`")
        parts, arch = _load_folder(str(mini_path()), hub=False, dtype=torch_dtype), "mini"
    elif path.is_file():
        *parts, arch = _load_single_file(path, config, prediction_type, torch_dtype)
    elif path.is_dir():
        _check_pipeline_folder(path)
        parts = _load_folder(str(path), hub=False, dtype=torch_dtype)
        arch = "mini" if _mini_layout(parts[2].config) else "diffusers"  # an export of the miniature is one
    elif source.count("/") == 1 and not source.startswith((".", "/", "~")) and not path.suffix:
        parts, arch = _load_folder(source, hub=True, dtype=torch_dtype), "hub"
    else:
        raise ErasekitError(
            f"model source not found: {source!r} (expected 'mini', 'tiny', a hub id like owner/name, "
            "a diffusers folder, or a .safetensors/.ckpt file)"
        )
    tokenizer, text_encoder, unet, vae, scheduler = parts
    sampling = _folder_sampling(path) if arch == "diffusers" else None
    if prediction_type and arch not in ("custom", "sd1", "sd2"):
        scheduler = DDIMScheduler.from_config(scheduler.config, prediction_type=prediction_type)
    for module in (text_encoder, unet, vae):  # cast tensor by tensor on the way: the device never holds fp32
        module.to(device=device, **({"dtype": torch_dtype} if module.dtype != torch_dtype else {}))
        module.eval().requires_grad_(False)
    return Bundle(tokenizer, text_encoder, unet, vae, scheduler, source=source, arch=arch, sampling=sampling)
