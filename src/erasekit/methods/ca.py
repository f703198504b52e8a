"""Concept Ablation (Kumari et al., ICCV 2023): make the erased (target) concept c* produce the anchor concept c.

x_t comes from images the frozen model generated for the anchor prompt (noised to a uniform t).

- model-based (the paper's default):  ||ε_θ'(x_t, c*, t) − sg(ε_θ(x_t, c, t))||²
- noise-based:                        ||ε_θ'(x_t, c*, t) − ε||²   (fine-tune c* on the anchor images)

plus the prior-preservation term on the anchor prompt, `prior_weight` ||ε_θ'(x_t, c, t) − ε||², which keeps the
anchor concept itself intact.

SD defaults follow the official code: cross-attention keys/values ("crossattn_kv"), 400 steps, batch 8,
lr 2e-6 scaled by the batch (1.6e-5), 200 anchor images, prior weight 1. The anchor defaults to the target
(`--target`), else the empty prompt; `guide=nearest` takes the vocabulary's concept nearest c* instead (the
miniature's default, see guide.py). Miniature defaults in `MINI`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from erasekit.core.conditioning import Conditioning
from erasekit.core.edit import Edit
from erasekit.core.loop import Run, step_generator
from erasekit.core.options import at_least, check_choice
from erasekit.methods.concepts import ConceptSet, expand
from erasekit.methods.guide import check_guide, guided
from erasekit.methods.latents import LatentPool
from erasekit.methods.loop import LoopConfig, finish, fit, student
from erasekit.methods.registry import register
from erasekit.models.bundle import Bundle
from erasekit.models.groups import GROUPS

MODES = ("model", "noise")


@dataclass
class CAConfig(LoopConfig):
    GRAD_BATCHES = 2  # one batch of each of two conditionings through the student per step
    iterations: int = 400
    lr: float = 1.6e-5
    batch: int = 8
    mode: str = "model"  # model | noise
    group: str = "xattn-kv"
    prior_weight: float = 1.0
    pool_size: int = at_least(1, 200)  # anchor images
    templates: tuple = ("{}",)
    guide: str = ""  # "" (--anchor, else --target, else the empty prompt) | nearest (see guide.py)
    vocab: str = ""  # guide=nearest: a vocabulary file, or world-objects on the miniature

    def check(self) -> None:
        super().check()
        check_choice(self.mode, MODES, "Concept Ablation mode")
        check_guide(self.guide, self.vocab)
        check_choice(self.group, GROUPS, "parameter group")


MINI = {
    "iterations": 150,
    "lr": 1e-3,
    "batch": 16,
    "pool_size": 64,
    "templates": ("{}", "a {}"),
    "guide": "nearest",
    "vocab": "world-objects",
}


@register(
    "ca",
    "Concept Ablation: the erased concept's predictions become the anchor's (Kumari 2023)",
    CAConfig,
    paper="arXiv:2303.13516",
    presets={"mini": MINI},
)
def erase(bundle: Bundle, concepts: ConceptSet, config: CAConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    concepts = guided(bundle, concepts, config.guide, config.vocab)
    model, params = student(bundle, config.group, config)
    anchor = concepts.anchor_prompt
    with torch.no_grad():
        c_star = bundle.encode_prompts(expand(concepts.erase, config.templates))
        c_anchor = bundle.encode_prompts([anchor])
    pool = LatentPool(bundle, c_anchor, config.pool_size, seed=config.seed)

    def loss_fn(step: int):
        gen = step_generator(config.seed, step)
        x_t, t, eps = pool.draw(gen, config.batch)
        k = int(torch.randint(0, len(c_star), (1,), generator=gen))
        b = len(x_t)
        cond = Conditioning.cat([c_star[k].expand(b), c_anchor.expand(b)])
        out_star, out_anchor = model.eps(torch.cat([x_t, x_t]), torch.cat([t, t]), cond).chunk(2)
        if config.mode == "model":
            with torch.no_grad():
                target = bundle.eps(x_t, t, c_anchor.expand(b))
        else:
            target = eps
        l_ablate, l_prior = F.mse_loss(out_star, target), F.mse_loss(out_anchor, eps)
        return l_ablate + config.prior_weight * l_prior, {"l_ablate": l_ablate.item(), "l_prior": l_prior.item()}

    rows = fit("ca", loss_fn, params, config, run, teacher=bundle if config.mode == "model" else None)
    return finish("ca", bundle, params, config, concepts.as_dict(), rows)
