"""The model families: which Bundle class each is, and which stock pipeline classes belong to which family.

`FAMILIES` maps a family name to its Bundle subclass; `PIPELINES` maps a diffusers pipeline class name (a folder's
model_index.json) to its family, or to "sd" when the text encoder's width decides between SD-1.x and SD-2.x.
"""

from __future__ import annotations

from erasekit.core.errors import ErasekitError
from erasekit.core.registry import FAMILIES

NAMES = FAMILIES
PIPELINES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionImg2ImgPipeline": "sd",
    "StableDiffusionPipelineSafe": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
    "StableDiffusion3Img2ImgPipeline": "sd3",
    "FluxPipeline": "flux",
    "FluxImg2ImgPipeline": "flux",
}


def bundle_class(family: str):
    """The Bundle subclass of `family`."""
    from erasekit.models.families.flux import FluxBundle
    from erasekit.models.families.sd import SDBundle
    from erasekit.models.families.sd3 import SD3Bundle
    from erasekit.models.families.sdxl import SDXLBundle

    classes = {"sd1": SDBundle, "sd2": SDBundle, "sdxl": SDXLBundle, "sd3": SD3Bundle, "flux": FluxBundle}
    if family not in classes:
        raise ErasekitError(f"unsupported model family {family!r}; erasekit supports {', '.join(NAMES)}")
    return classes[family]


def check_family(family: str) -> str:
    if family not in NAMES:
        raise ErasekitError(f"unknown model family {family!r}; valid: {', '.join(NAMES)}")
    return family
