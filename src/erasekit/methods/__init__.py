"""Erasure methods: one module each (`erasekit methods` lists them), registered by name in `registry`, sharing the
training loop in `loop` and the z_t sources in `latents`. Methods never import eval: a method that judges
images receives a scorer."""
