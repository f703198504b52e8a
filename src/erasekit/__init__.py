"""erasekit: erase, hide and recover concepts in text-to-image diffusion models."""

__version__ = "0.1.0"
