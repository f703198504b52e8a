"""What ships inside the package: the CLIP and tiny T5 tokenizer files, the families' component configs, the
miniature and the world judge. One module that knows where they are, so that bundle loading, the tiny models and the
world's training read them without importing each other."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ASSETS = resources.files("erasekit") / "assets"
CONFIGS = resources.files("erasekit") / "models" / "configs"


def mini_path() -> Path:
    """The shipped miniature (a diffusers pipeline folder inside the package)."""
    return Path(str(ASSETS / "mini"))
