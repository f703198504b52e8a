"""The core layer: model bundles, parameter targets, edits, seeding and errors."""

from erasekit.core.bundle import Bundle, load_bundle
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError

__all__ = ["Bundle", "Edit", "ErasekitError", "load_bundle"]
