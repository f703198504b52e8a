"""The core layer: edits, keys, conditioning, the training loop, checkpoints, files, options, registries, seeding
and errors. Models live one layer up, in `erasekit.models` (`from erasekit.models import load_bundle`).

The names below are imported on first use, so that `erasekit.core.errors` (what the command line needs to answer
`--help` and `--version`) loads without torch and diffusers.
"""

from importlib import import_module

__all__ = ["Conditioning", "Edit", "ErasekitError"]
_WHERE = {"Conditioning": "conditioning", "Edit": "edit", "ErasekitError": "errors"}


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'erasekit.core' has no attribute {name!r}")
    return getattr(import_module(f"erasekit.core.{_WHERE[name]}"), name)
