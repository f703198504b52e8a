"""Erasure methods: one module each (esd, target, uce/time, ca), registered by name in `registry`, sharing the
training loop in `loop` and the z_t sources in `latents`. Methods never import eval: a method that judges
images receives a scorer."""
