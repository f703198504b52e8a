"""The core layer: model bundles, parameter targets, edits, seeding and errors.

The names below are imported on first use, so that `erasekit.core.errors` (what the command line needs to answer
`--help` and `--version`) loads without torch and diffusers.
"""

from importlib import import_module

__all__ = ["Bundle", "Edit", "ErasekitError", "load_bundle"]
_WHERE = {"Bundle": "bundle", "load_bundle": "bundle", "Edit": "edit", "ErasekitError": "errors"}


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'erasekit.core' has no attribute {name!r}")
    return getattr(import_module(f"erasekit.core.{_WHERE[name]}"), name)
