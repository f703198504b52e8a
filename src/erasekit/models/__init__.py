"""The model layer: the only code that imports diffusers' and transformers' model classes.

`load_bundle(source)` gives a `Bundle` of any supported family (sd1, sd2, sdxl, sd3, flux); everything above this
layer speaks to models through it (see models/bundle.py). The names are imported on first use.
"""

from importlib import import_module

__all__ = ["Bundle", "load_bundle", "FAMILIES"]
_WHERE = {"Bundle": "bundle", "load_bundle": "load", "FAMILIES": "families"}


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'erasekit.models' has no attribute {name!r}")
    module = import_module(f"erasekit.models.{_WHERE[name]}")
    return module.NAMES if name == "FAMILIES" else getattr(module, name)
