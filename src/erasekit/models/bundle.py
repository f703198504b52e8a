"""The Bundle: one model of any family, behind one interface.

A bundle holds the components of a diffusers pipeline by their pipeline names (`modules`: the denoiser, `unet` or
`transformer`; the text encoders; the `vae`; and the `tokenizers`), the scheduler, and what the model is: its
`family` (sd1, sd2, sdxl, sd3, flux) and `scale` (mini, tiny, full). Where it came from is `source`.

What every method, attack and evaluation needs is written here once:
- text: `encode_prompts` and `encode_embeddings` give a `Conditioning`; `text` is the main `TextEncoder`;
- prediction: `model_output` (what the denoiser predicts: ε, v or flow velocity) and `eps`, the noise it implies,
  optionally under classifier-free guidance;
- noise and time: `add_noise`, `train_timesteps`, `sampling_timesteps`, `x0_scale`;
- sampling: `sample`, `trajectory`, `generate` (the stock pipeline's images for the same seeds);
- weights: `named_parameters` (edits name tensors `component.parameter`), `clone`, `fingerprint`, `matches`;
- saving: `to_pipeline` (the family's stock pipeline) and `save_pretrained`.
A family subclass (`models/families/`) fills in how its text encoders join, how its denoiser is called, and its
schedule; nothing above this layer asks which family a model is, except through what the family declares.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch

from erasekit.core.conditioning import Conditioning
from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_dir
from erasekit.core.sampler import CALL_FILE, Sampling, safety_guidance
from erasekit.core.seeding import make_generator
from erasekit.models.text import TextEncoder, TextSpec

FINGERPRINT_PREFIX = "v2:"  # version 1 (erasekit 0.1.0) had none
SAMPLES = 8  # values of each tensor a fingerprint reads
PREDICTIONS = ("eps", "x0", "velocity")


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


def _as_batch(t, n: int, device) -> torch.Tensor:
    return torch.as_tensor(t, device=device).reshape(-1).expand(n)


def _pooled(cond: Conditioning, family: str) -> torch.Tensor:
    """The pooled text vector [B, P] that the denoiser of `family` reads (SDXL, SD3, FLUX)."""
    if cond.pooled is None:
        raise ErasekitError(f"{family} models read a pooled text vector, and this conditioning has none")
    return cond.pooled


@dataclass
class Bundle:
    """The components of one model, on one device and dtype (see the module docstring)."""

    modules: dict[str, torch.nn.Module]
    tokenizers: dict[str, object]
    scheduler: Any  # a diffusers scheduler (diffusers is untyped here)
    source: str
    family: str
    scale: str = "full"  # mini (the shipped miniature and its edits) | tiny (random, for plumbing) | full
    meta: dict = field(default_factory=dict)
    sampling: Sampling | None = None  # a sampler edit (negative prompt, SLD) that `sample` applies
    resolution: int | None = None  # image side in pixels that `sample` draws at (None: the model's own)

    # what a family declares
    DENOISER: ClassVar[str] = "unet"
    TEXT: ClassVar[tuple[TextSpec, ...]] = (TextSpec(),)
    MAIN_TEXT: ClassVar[int] = 0  # the encoder whose tokens attacks and learned words work on by default
    TAIL_TEXT: ClassVar[int] = 0  # the encoder whose positions end the conditioning's per-token states (keys)
    PIPELINE: ClassVar[str] = ""  # the stock diffusers pipeline class
    PREDICTS: ClassVar[str] = "eps"  # what the denoiser outputs: eps | v | velocity (set per model for SD-2.x)

    # ---- what the model is ------------------------------------------------------------------------
    @property
    def denoiser(self) -> torch.nn.Module:
        return self.modules[self.DENOISER]

    @property
    def vae(self) -> torch.nn.Module:
        return self.modules["vae"]

    @property
    def components(self) -> tuple[str, ...]:
        """The modules' names, as edits name their tensors (`unet.…`, `text_encoder_2.…`, `transformer.…`)."""
        return tuple(self.modules)

    @property
    def preset(self) -> str:
        """The key a method's or attack's defaults are looked up by: the miniature's, a tiny model's, else the
        family's."""
        return self.scale if self.scale in ("mini", "tiny") else self.family

    @property
    def device(self) -> torch.device:  # the first parameter's: diffusers' .device walks every module (~1 ms)
        return next(self.denoiser.parameters()).device

    @property
    def dtype(self) -> torch.dtype:  # likewise: called several times per denoiser pass
        return next(self.denoiser.parameters()).dtype

    @property
    def texts(self) -> list[TextEncoder]:
        return [TextEncoder(self, spec) for spec in self.TEXT]

    @property
    def text(self) -> TextEncoder:
        """The main text encoder: the one attacks, learned words and keys work on unless told otherwise."""
        return self.texts[self.MAIN_TEXT]

    @property
    def tail_text(self) -> TextEncoder:
        """The text encoder whose token positions end the conditioning (where a key's vectors go)."""
        return self.texts[self.TAIL_TEXT]

    def text_encoder(self, name: str | None = None) -> TextEncoder:
        """The text encoder called `name` (a module name such as text_encoder_2), or the main one."""
        if name is None:
            return self.text
        found = [t for t in self.texts if t.name == name]
        if not found:
            raise ErasekitError(
                f"{self.source!r} ({self.family}) has no text encoder {name!r}; it has "
                f"{', '.join(t.name for t in self.texts)}"
            )
        return found[0]

    # ---- images -----------------------------------------------------------------------------------
    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def native_size(self) -> int:
        """The side of the images the model was made for, in pixels."""
        return self.denoiser.config.sample_size * self.vae_scale_factor

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = (self.resolution or self.native_size) // self.vae_scale_factor
        return (self.vae.config.latent_channels, side, side)

    @property
    def image_size(self) -> int:
        """The side of the images `sample` draws, in pixels."""
        return self.latent_shape[1] * self.vae_scale_factor

    @property
    def image_batch(self) -> int:
        """Images generated at once: up to 64, fewer as latents grow (8 at SD-1.x's 4x64x64, 3 at SD-2.x's 96x96),
        so that a guided denoiser batch fits a consumer GPU."""
        return max(1, min(64, 2**17 // math.prod(self.latent_shape)))

    @property
    def resolution_step(self) -> int:
        """Image sides must be multiples of this (the denoiser halves its grid this many times over)."""
        return self.vae_scale_factor * 2 ** (len(self.denoiser.config.down_block_types) - 1)

    def at_resolution(self, resolution: int | None) -> Bundle:
        """This model drawing `resolution` x `resolution` images (None: its own size)."""
        if resolution is None:
            return replace(self, resolution=None)
        step = self.resolution_step
        if resolution < step or resolution % step:
            raise ErasekitError(
                f"resolution {resolution} does not fit {self.source!r}: give a multiple of {step} "
                f"(its own is {self.native_size})"
            )
        return replace(self, resolution=resolution)

    def to_latents(self, z: torch.Tensor) -> torch.Tensor:
        """The VAE's latent -> the denoiser's (SD: times the scaling factor)."""
        return z * self.vae.config.scaling_factor

    def from_latents(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.vae.config.scaling_factor

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1], [B, 3, H, W] -> the denoiser's latents (posterior mean, or a sample with a
        generator)."""
        dist = self.vae.encode(images.to(self.device, self.vae.dtype)).latent_dist
        return self.to_latents(dist.mean if generator is None else dist.sample(generator))

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The denoiser's latents -> images in [-1, 1]; at most 2^15 latent values at a time (2 images at SD-1.x's
        size: the VAE's decoder holds activations of the full image size)."""
        chunk = max(1, 2**15 // math.prod(latents.shape[1:]))
        z = self.from_latents(latents.to(self.vae.dtype))
        return torch.cat([self.vae.decode(part).sample.clamp(-1, 1) for part in z.split(chunk)])

    def generator(self, seed: int) -> torch.Generator:
        """A CPU generator, so that the same seed gives the same noise on every device."""
        return make_generator(seed, "cpu")

    def initial_noise(self, seeds: list[int]) -> torch.Tensor:
        """Initial latents [B, C, h, w], one independent draw per seed (as the stock pipeline draws with a list of
        generators)."""
        draws = [torch.randn((1, *self.latent_shape), generator=self.generator(s)) for s in seeds]
        return torch.cat(draws).to(self.device, self.dtype)

    # ---- weights ----------------------------------------------------------------------------------
    def component(self, name: str) -> torch.nn.Module:
        if name not in self.modules:
            raise ErasekitError(f"unknown model component {name!r}; valid: {', '.join(self.modules)}")
        return self.modules[name]

    def named_parameters(self):
        """All parameters, named `component.param` (the names edits use)."""
        for comp, module in self.modules.items():
            for name, param in module.named_parameters():
                yield f"{comp}.{name}", param

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{c}.{k}": v for c, m in self.modules.items() for k, v in m.state_dict().items()}

    def clone(self, components: tuple[str, ...] | None = None, changes: Callable[[str], bool] | None = None) -> Bundle:
        """A bundle sharing everything but copies of `components` (default: all), so edits leave this one intact.

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

        names = self.components if components is None else components
        return replace(self, modules={**self.modules, **{c: copied(c) for c in names}}, meta=dict(self.meta))

    def with_modules(self, **modules: torch.nn.Module) -> Bundle:
        """The same model with some components replaced (tokenizers likewise with `with_tokenizers`)."""
        return replace(self, modules={**self.modules, **modules}, meta=dict(self.meta))

    def with_tokenizers(self, **tokenizers) -> Bundle:
        return replace(self, tokenizers={**self.tokenizers, **tokenizers}, meta=dict(self.meta))

    def fingerprint(self) -> str:
        """Stable hash of parameter names, shapes and a fixed sample of values (rounded to bf16), as "v2:" and 16
        hex digits.

        The sample is 8 evenly spaced values of every tensor (`sample_indices`: exact integer arithmetic, for any
        size, on any device). Rounding makes an fp16/bf16 load of the same weights match the fp32 one, so an edit
        made at one precision applies at another; any change to a sampled value larger than bf16 rounding changes
        it. Compare a recorded fingerprint with `matches`, which also knows erasekit 0.1.0's."""
        digest = _digest(self.state_dict(), sample_indices)
        assert digest is not None  # sample_indices has positions for every size (only version 1's can lack them)
        return FINGERPRINT_PREFIX + digest

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
    def tokenize(self, prompts: list[str] | str) -> torch.Tensor:
        """The main text encoder's token ids [B, L] of `prompts`, learned words written as their tokens."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return self.text.tokenize(self._for_encoder(prompts, self.text.name))

    def _for_encoder(self, prompts: list[str], encoder: str) -> list[str]:
        """The prompts as one encoder reads them: a learned word (models.words, the main encoder's alone) written
        as its tokens for the main encoder, and left out for the others, which have no vector for it."""
        words = self.meta.get("words")
        if not words:
            return prompts
        from erasekit.models.words import expand, without

        return [expand(p, words) if encoder == self.text.name else without(p, words) for p in prompts]

    def encode_prompts(self, prompts: list[str] | str) -> Conditioning:
        """The conditioning of `prompts`: every text encoder reads them, the family joins their outputs."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return self.join([t.encode(t.tokenize(self._for_encoder(prompts, t.name))) for t in self.texts])

    def encode_embeddings(
        self, embeds: torch.Tensor, ids: torch.Tensor, prompts: list[str] | None = None, encoder: str | None = None
    ) -> Conditioning:
        """The conditioning when one encoder (the main one, or `encoder`) reads raw token embeddings `embeds`
        [B, L, D] in place of its token ids `ids` [B, L] (soft prompts, learned words, mined tokens). The family's
        other encoders read `prompts` (default: the text `ids` decode to)."""
        side = self.text_encoder(encoder)
        if prompts is None:  # only the other encoders read them: a family with one encoder needs none
            prompts = [side.decode(row) for row in ids] if len(self.texts) > 1 else []
        return self.join(
            [
                t.encode(ids, embeds)
                if t.name == side.name
                else t.encode(t.tokenize(self._for_encoder(prompts, t.name)))
                for t in self.texts
            ]
        )

    def join(self, parts: list[tuple[torch.Tensor, torch.Tensor | None]]) -> Conditioning:
        """The family's conditioning from each text encoder's (states, pooled), in `TEXT` order."""
        states, pooled = parts[0]
        return Conditioning(states, pooled)

    def check_words(self, vectors: dict[str, torch.Tensor], what: str = "embedding") -> None:
        """Refuse learned words of another width than the main text encoder's, or that its tokenizer has."""
        from erasekit.models.words import check_vectors

        check_vectors(self, vectors, what)

    def add_words(self, vectors: dict[str, torch.Tensor], what: str = "embedding") -> Bundle:
        """A copy that knows each learned word of `vectors` ({"<name>": [n, D]}) in its main text encoder."""
        from erasekit.models.words import add_tokens

        return add_tokens(self, vectors, what)

    @torch.no_grad()
    def word_states(self, ids: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """[V, D]: the conditioning's per-token state of each main-encoder token id read alone (start, the token,
        end, padding; the other encoders read its text), at the token's position: the output-space vector of a
        word, what mined embeddings are named by."""
        rows, at = self.text.rows(ids)
        return torch.cat(
            [self.encode_embeddings(self.text.token_embeddings(part), part).tokens[:, at] for part in rows.split(chunk)]
        )

    @property
    def conditioning_width(self) -> int:
        """D of the conditioning's per-token states (what a key's vectors and mined embeddings have)."""
        return self.encode_prompts([""]).width

    # ---- prediction -------------------------------------------------------------------------------
    def model_output(self, z_t: torch.Tensor, t, cond: Conditioning, guidance: float | None = None) -> torch.Tensor:
        """What the denoiser predicts at z_t, t for `cond` (ε, v or flow velocity, by the family). `guidance`: the
        embedded guidance of a guidance-distilled family (FLUX-dev; None: its default), ignored by the others."""
        raise NotImplementedError

    def unconditional(self, n: int = 1) -> Conditioning:
        """The conditioning of "nothing" that classifier-free guidance and the methods' ε_θ(z_t, t) use, n times: the
        encoded empty prompt (SDXL: zeros, as its pipeline uses without a negative prompt)."""
        return self.encode_prompts([""]).expand(n)

    def cfg_scale(self, guidance: float | None) -> float:
        """The classifier-free guidance scale sampling at `guidance` uses (1: no unconditional pass)."""
        return 1.0 if guidance is None else guidance

    def embedded_guidance(self, guidance: float | None) -> float | None:
        """The guidance a guidance-distilled denoiser takes as an input (FLUX-dev), else None."""
        return None

    def guided_output(
        self,
        z_t: torch.Tensor,
        t,
        cond: Conditioning,
        uncond: Conditioning | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """The denoiser's output; with `uncond` and guidance, classifier-free guidance out_u + s (out_c − out_u)
        (s = `cfg_scale(guidance)`), both halves in one batch."""
        t_b = _as_batch(t, z_t.shape[0], self.device)
        scale, embedded = self.cfg_scale(guidance), self.embedded_guidance(guidance)
        if uncond is None or scale == 1.0:
            return self.model_output(z_t, t_b, cond, embedded)
        out_u, out_c = self.model_output(
            torch.cat([z_t, z_t]), torch.cat([t_b, t_b]), Conditioning.cat([uncond, cond]), embedded
        ).chunk(2)
        return out_u + scale * (out_c - out_u)

    def eps(
        self,
        z_t: torch.Tensor,
        t,
        cond: Conditioning,
        uncond: Conditioning | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """The noise ε the denoiser's output implies at z_t (see `predict`), optionally guided."""
        return self.predict(z_t, t, cond, "eps", uncond, guidance)

    def predict(
        self,
        z_t: torch.Tensor,
        t,
        cond: Conditioning,
        quantity: str = "eps",
        uncond: Conditioning | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """The denoiser's output converted to `quantity`: eps (the noise), x0 (the clean latent) or velocity (the
        flow-matching target ε − x0), optionally guided. Guidance is linear in the output and the conversions are
        affine in it, so guiding then converting is converting then guiding."""
        if quantity not in PREDICTIONS:
            raise ErasekitError(f"unknown prediction {quantity!r}; valid: {', '.join(PREDICTIONS)}")
        out = self.guided_output(z_t, t, cond, uncond, guidance)
        return self.convert(out, z_t, _as_batch(t, z_t.shape[0], self.device), quantity)

    def convert(self, out: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor, quantity: str) -> torch.Tensor:
        """The family's output at (z_t, t) as `quantity` (eps, x0 or velocity)."""
        raise NotImplementedError

    # ---- noise and time ---------------------------------------------------------------------------
    @property
    def train_steps(self) -> int:
        """The number of training timesteps t ∈ [0, train_steps) (1000 for every family)."""
        return self.scheduler.config.num_train_timesteps

    def train_timesteps(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n training timesteps, uniform over [0, train_steps), on the model's device."""
        return torch.randint(0, self.train_steps, (n,), generator=generator).to(self.device)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """z_t: the forward process at training timestep t."""
        raise NotImplementedError

    def x0_scale(self, t: torch.Tensor) -> torch.Tensor:
        """[B, 1, 1, 1]: how far x̂0 moves per unit of ε at t (x̂0_a − x̂0_b = −scale (ε_a − ε_b))."""
        raise NotImplementedError

    def sampler(self, steps: int):
        """A fresh scheduler of the model's own kind, with `steps` sampling steps set."""
        raise NotImplementedError

    def sampling_timesteps(self, steps: int) -> torch.Tensor:
        """The timesteps a `steps`-step sampling run evaluates, in order."""
        return self.sampler(steps).timesteps

    # ---- sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        cond: Conditioning,
        seeds: list[int],
        steps: int = 25,
        guidance: float = 5.0,
        uncond: Conditioning | None = None,
        latents: torch.Tensor | None = None,
        stop_at: int | None = None,
        decode: bool = True,
        record: list | None = None,
    ) -> torch.Tensor:
        """Sampling as the family's stock pipeline does it (DDIM with η = 0 for the UNet families, the
        flow-matching Euler sampler for SD3 and FLUX). Returns images in [-1, 1] (or latents).
        The bundle's `sampling` (a sampler edit) applies: its negative prompt is the default `uncond`, its safety
        concept adds SLD's guidance (core/sampler.py), both only under classifier-free guidance (guidance > 1).

        `stop_at` ends after that many steps and returns the latent z_t there (ESD's partial trajectory).
        `record`: a list that receives (t, z_t) for every step, the latent the denoiser saw at timestep t.
        """
        scheduler = self.sampler(steps)
        z = self.initial_noise(seeds) if latents is None else latents
        z = z * getattr(scheduler, "init_noise_sigma", 1.0)
        s, b = self.sampling, len(cond)
        scale, embedded = self.cfg_scale(guidance), self.embedded_guidance(guidance)
        guided = scale > 1.0
        if uncond is None and guided:
            uncond = self.encode_prompts([s.negative_prompt] * b) if s and s.negative_prompt else self.unconditional(b)
        safety = self.encode_prompts([s.safety_concept]).expand(b) if s is not None and s.safety and guided else None
        momentum = None
        for i, t in enumerate(scheduler.timesteps):
            if stop_at is not None and i >= stop_at:
                break
            if record is not None:
                record.append((t.item(), z))
            if safety is None:
                out = self.guided_output(z, t, cond, uncond if guided else None, guidance)
            else:  # SLD: out(∅), out(c_p) and out(S) in one batch, as StableDiffusionPipelineSafe evaluates them
                assert s is not None and uncond is not None  # safety is set only for a sampling edit under guidance
                out_u, out_c, out_s = self.model_output(
                    torch.cat([z, z, z]),
                    _as_batch(t, 3 * b, self.device),
                    Conditioning.cat([uncond, cond, safety]),
                    embedded,
                ).chunk(3)
                g, momentum = safety_guidance(out_u, out_c, out_s, momentum, i, s)
                out = out_u + scale * g
            z = scheduler.step(out, t, z).prev_sample
        if stop_at is not None or not decode:
            return z
        return self.decode_latents(z)

    @torch.no_grad()
    def trajectory(
        self, cond: Conditioning, seeds: list[int], steps: int = 25, guidance: float = 5.0
    ) -> tuple[list, torch.Tensor]:
        """The sampling run's timesteps and the latents z_t the denoiser saw at each ([steps, B, C, h, w]), then z_0
        last ([steps + 1, ...]): what P4D matches predictions along."""
        record: list = []
        z0 = self.sample(cond, seeds, steps=steps, guidance=guidance, decode=False, record=record)
        return [t for t, _ in record], torch.stack([z for _, z in record] + [z0])

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str] | str | None,
        seeds: list[int],
        steps: int = 25,
        guidance: float = 5.0,
        cond: Conditioning | None = None,
    ) -> torch.Tensor:
        """Images in [0, 1], [B, 3, H, W], one per (prompt, seed); or from conditioning `cond` (prompt embeddings
        an attack built) in place of prompts; `image_batch` at a time."""
        if cond is None:
            if prompts is None:
                raise ErasekitError("nothing to generate from: give prompts or a conditioning")
            if isinstance(prompts, str):
                prompts = [prompts] * len(seeds)
            if any(not p.strip() for p in prompts):
                raise ErasekitError("empty prompt: give a text prompt to generate from")
            cond = self.encode_prompts(prompts)
        b = self.image_batch
        images = [
            self.sample(cond[i : i + b], seeds[i : i + b], steps=steps, guidance=guidance)
            for i in range(0, len(seeds), b)
        ]
        return (torch.cat(images).float() + 1) / 2

    # ---- saving -----------------------------------------------------------------------------------
    def to_pipeline(self):
        """The family's stock diffusers pipeline over these components."""
        import diffusers

        return getattr(diffusers, self.PIPELINE)(**self.modules, **self.tokenizers, scheduler=self.scheduler)

    def save_pretrained(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write a complete diffusers pipeline folder (to a temporary name, renamed when complete). A bundle with a
        sampler edit also writes `sampler.json`: the pipeline class, its safety concept and the keyword arguments
        a stock pipeline call needs to sample the same way (erasekit's loader reads it back)."""
        with atomic_dir(out, overwrite=overwrite) as tmp:
            pipe = self.to_pipeline()
            pipe.save_pretrained(tmp, safe_serialization=True)
            if self.sampling is not None:
                call = {
                    "pipeline": type(pipe).__name__,
                    "safety_concept": self.sampling.safety_concept,
                    "call": self.sampling.call_kwargs(),
                    "sampling": self.sampling.as_dict(),
                }
                (tmp / CALL_FILE).write_text(json.dumps(call, indent=2, sort_keys=True))
        return Path(out)
