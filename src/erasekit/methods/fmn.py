"""Forget-Me-Not (Zhang et al., 2023): attention re-steering.

Fine-tune the UNet so that, on images of the concept captioned with it, the cross-attention maps of the concept's
tokens vanish: minimise

    L = || { A_l[x_t, c] at the concept's token positions : every cross-attention layer l } ||₂

(all layers' maps concatenated, one norm, as the official train_attn.py computes it), with x_t an image of the
concept noised to a uniform t and c "a photo of {concept}". With `use_pooler` the end-of-text positions count too
(the official default; with SD 1.x's tokenizer, whose padding is end-of-text, so does the padding).

Defaults: the official configs/attn.yaml for SD: 35 steps, batch 1, AdamW lr 2e-6 with weight decay 0.01, the
whole UNet (`only_optimize_ca: false`; `group=xattn` is its `true`), gradient clipping 1. The concept's images are
the base model's own (the official code takes ~10 user photos); `pool_size` of them. The optional first stage, a
textual-inversion token learned from the images (`use_ti`), is not implemented: the concept's own words are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from erasekit.core.edit import Edit
from erasekit.core.loop import Run, step_generator
from erasekit.core.options import at_least, check_choice
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.latents import LatentPool
from erasekit.methods.loop import LoopConfig, finish, fit, student
from erasekit.methods.registry import register
from erasekit.models.attention import UNET_FAMILIES, WHY_UNET, AttentionProbe, token_positions
from erasekit.models.bundle import Bundle
from erasekit.models.groups import GROUPS


@dataclass
class FMNConfig(LoopConfig):
    OPTIONS = ("gradient_checkpointing", "precision", "optimizer_bits", "memory_limit_gb")
    WHY_NOT = "it keeps no frozen teacher"
    iterations: int = 35
    lr: float = 2e-6
    batch: int = 1
    weight_decay: float = at_least(0.0, 0.01)  # AdamW's, as the official code
    group: str = "full"  # full (official only_optimize_ca: false) | xattn (true) | any parameter group
    use_pooler: bool = True  # the end-of-text positions' maps count too
    pool_size: int = at_least(1, 10)  # images of each concept
    templates: tuple = ("a photo of {}",)

    def check(self) -> None:
        super().check()
        check_choice(self.group, GROUPS, "parameter group")


MINI = {"iterations": 150, "lr": 2e-4, "batch": 8, "group": "xattn", "pool_size": 64, "templates": ("{}", "a {}")}


@register(
    "fmn",
    "Forget-Me-Not: minimise the concept tokens' cross-attention maps (Zhang 2023)",
    FMNConfig,
    paper="arXiv:2303.17591",
    presets={"mini": MINI},
    families=UNET_FAMILIES,
    why=WHY_UNET,
)
def erase(bundle: Bundle, concepts: ConceptSet, config: FMNConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    model, params = student(bundle, config.group, config)
    items = [(t.format(c), c) for c in concepts.erase for t in config.templates]  # (prompt, the concept's words)
    with torch.no_grad():
        conds = bundle.encode_prompts([p for p, _ in items])
    pools = {
        c: LatentPool(bundle, bundle.encode_prompts([c]), config.pool_size, seed=config.seed) for c in concepts.erase
    }
    positions = token_positions(bundle, [p for p, _ in items], [c for _, c in items], config.use_pooler)
    probe = AttentionProbe(model.denoiser)

    def loss_fn(step: int):
        gen = step_generator(config.seed, step)
        k = int(torch.randint(0, len(items), (1,), generator=gen))
        x_t, t, _ = pools[items[k][1]].draw(gen, config.batch)
        probe.watch(positions[k][None].expand(len(x_t), -1))
        model.model_output(x_t, t, conds[k].expand(len(x_t)))
        return probe.norm_of_all()

    optimizer = partial(torch.optim.AdamW, weight_decay=config.weight_decay)
    try:
        rows = fit("fmn", loss_fn, params, config, run, optimizer=optimizer)
    finally:
        probe.close()
    return finish("fmn", bundle, params, config, concepts.as_dict(), rows)
