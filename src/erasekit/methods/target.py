"""Output-space erasure toward a target, with preservation (the talk's Eq. 7): the frame AP and AGE extend.

    min_θ'  E_{c_e ∈ E} ||ε_θ'(z_t, c_e, t) − ε_θ(z_t, c_t, t)||²  +  λ E_{c_n ∈ P} ||ε_θ'(z_t, c_n, t) − ε_θ(z_t, c_n, t)||²

c_t is the target (the empty prompt by default), P the preserved concepts (the empty prompt when none are given:
the "neutral" preservation that AP's paper starts from). z_t comes from ESD's partial trajectory of the model
being edited, conditioned on c_e (as the AP/AGE code does), or from a pool of noised images (`z_source="pool"`).
The student's two predictions run as one batch, and so do the teacher's.

`negative_guidance` η > 0 guides the target away from c_e, ε_θ(c_t) − η (ε_θ(c_e) − ε_θ(c_t)) (ESD's target
around c_t; AP's official code does this). The paper's equation is η = 0, the default. The miniature's default
is η = 1: its unconditional model draws objects (the empty prompt is not "nothing" there), so mapping c_e onto
ε_θ(∅) alone leaves "a star" drawing stars in most images (the changelog has the measurement).
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
from erasekit.methods.latents import Z_SOURCES, ZSampler
from erasekit.methods.loop import LoopConfig, finish, fit, student
from erasekit.methods.registry import register
from erasekit.methods.teacher import guided_target
from erasekit.models.bundle import Bundle
from erasekit.models.groups import GROUPS


@dataclass
class TargetConfig(LoopConfig):
    group: str = "xattn"
    lam: float = 1.0  # λ
    negative_guidance: float = 0.0  # η (0: Eq. 7 as written)
    ddim_steps: int = at_least(1, 50)
    start_guidance: float = 3.0
    z_source: str = "trajectory"
    pool_size: int = at_least(1, 64)
    templates: tuple = ("{}",)

    def check(self) -> None:
        super().check()
        check_choice(self.group, GROUPS, "parameter group")
        check_choice(self.z_source, Z_SOURCES, "z_source")


MINI = {
    "iterations": 40,
    "lr": 1e-3,
    "batch": 8,
    "ddim_steps": 10,
    "templates": ("{}", "a {}"),
    "negative_guidance": 1.0,
}


@register(
    "target",
    "Eq. 7: map the erased concept's prediction to a target's, keep preserved concepts",
    TargetConfig,
    paper="talk Eq. 7 (the frame of AP/AGE)",
    presets={"mini": MINI},
)
def erase(bundle: Bundle, concepts: ConceptSet, config: TargetConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    model, params = student(bundle, config.group, config)
    erased = expand(concepts.erase, config.templates)
    with torch.no_grad():
        conds = bundle.encode_prompts(erased)
        uncond = bundle.unconditional()
        c_t = bundle.encode_prompts([t.format(concepts.target) if concepts.target else "" for t in config.templates])
        c_n = bundle.encode_prompts(expand(concepts.preserve, config.templates) or [""])
    sample_z = ZSampler(model, bundle, conds, uncond, config)
    lam, eta = config.lam, config.negative_guidance

    def loss_fn(step: int):
        z_t, t, k = sample_z(step)
        b = len(z_t)
        j = int(torch.randint(0, len(c_n), (1,), generator=step_generator(config.seed, step, stream=1)))
        c_e = conds[k].expand(b)
        target_t, n_j = c_t[k % len(c_t)].expand(b), c_n[j].expand(b)
        with torch.no_grad():  # ε_θ(c_t) (guided away from c_e by η) and ε_θ(c_n), one batch
            teacher_t, (teacher_n,) = guided_target(bundle, t, (z_t, target_t), (z_t, c_e), eta, (z_t, n_j))
        student_e, student_n = model.eps(torch.cat([z_t, z_t]), torch.cat([t, t]), Conditioning.cat([c_e, n_j])).chunk(
            2
        )
        l1, l2 = F.mse_loss(student_e, teacher_t), F.mse_loss(student_n, teacher_n)
        return l1 + lam * l2, {"l_erase": l1.item(), "l_preserve": l2.item()}

    rows = fit("target", loss_fn, params, config, run, teacher=bundle)
    return finish("target", bundle, params, config, concepts.as_dict(), rows)
