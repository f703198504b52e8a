"""The model classes by a short name, so that code outside the model layer (the world's training of its
miniatures) builds and reads components without importing diffusers or transformers itself."""

from __future__ import annotations

from pathlib import Path

from erasekit.core.errors import ErasekitError


def _classes() -> dict:
    import diffusers
    import transformers

    return {
        "unet": diffusers.UNet2DConditionModel,
        "vae": diffusers.AutoencoderKL,
        "sd3-transformer": diffusers.SD3Transformer2DModel,
        "flux-transformer": diffusers.FluxTransformer2DModel,
        "ddim": diffusers.DDIMScheduler,
        "flow-match": diffusers.FlowMatchEulerDiscreteScheduler,
        "clip-text": transformers.CLIPTextModel,
        "clip-text-projection": transformers.CLIPTextModelWithProjection,
        "t5": transformers.T5EncoderModel,
    }


CONFIGS = {"clip-text": "CLIPTextConfig", "clip-text-projection": "CLIPTextConfig", "t5": "T5Config"}


def _cls(kind: str):
    classes = _classes()
    if kind not in classes:
        raise ErasekitError(f"unknown component kind {kind!r}; valid: {', '.join(classes)}")
    return classes[kind]


def build(kind: str, **config):
    """A new component of `kind` (random weights, the class's own initialisation) from its config's fields."""
    cls = _cls(kind)
    if kind in CONFIGS:
        import transformers

        return cls(getattr(transformers, CONFIGS[kind])(**config))
    return cls(**config)


def load(kind: str, folder: str | Path):
    """A component of `kind` saved (save_pretrained) in `folder`."""
    return _cls(kind).from_pretrained(str(folder))
