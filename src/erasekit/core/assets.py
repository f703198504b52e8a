"""What ships inside the package: the CLIP tokenizer files, SD 1.x/2.x component configs, the miniature and the
world judge. One module that knows where they are, so that bundle loading, the tiny model and the world's training
read them without importing each other."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ASSETS = resources.files("erasekit") / "assets"
CONFIGS = resources.files("erasekit") / "core" / "configs"


def mini_path() -> Path:
    """The shipped miniature (a diffusers pipeline folder inside the package)."""
    return Path(str(ASSETS / "mini"))


def clip_tokenizer(path: Path | None = None, pad_token: str | None = None):
    """The CLIP BPE tokenizer (49,408 ids, as SD's): the shipped files, or those in `path`."""
    from transformers import CLIPTokenizer

    path = path or Path(str(ASSETS / "clip_tokenizer"))
    kwargs = {"pad_token": pad_token} if pad_token else {}
    return CLIPTokenizer.from_pretrained(str(path), **kwargs)
