"""ESD: Erasing Concepts from Diffusion Models (Gandikota et al., ICCV 2023).

The edited model ε_θ' is trained so that, conditioned on the erased concept c_e, it predicts the frozen model's
prediction guided *away* from c_e (the paper's Eq. 2 target, the talk's Eq. 4):

    ε_θ'(z_t, c_e, t)  <-  ε_θ(z_t, t) − η [ε_θ(z_t, c_e, t) − ε_θ(z_t, t)]

with z_t from a partial DDIM trajectory of the model being edited, conditioned on c_e (guidance
`start_guidance`), stopped at a random step, as the paper and the original LDM script do.
`z_source="base-trajectory"` samples that trajectory with the frozen base model instead, as the official
repository's current diffusers script (esd_sd.py) does. `z_source="pool"` noises latents of images the base model
generated for c_e once: much cheaper, but a deviation from the paper (z_t then no longer tracks the edited model).

Variants by parameter group: esd-x (cross-attention), esd-u (everything but cross-attention), esd-all,
esd-x-strict (cross-attention keys/values only). Families: every one (the official code has SD and SDXL scripts).
The target is in ε (a flow model's velocity converted, `Bundle.predict`), and on SD3 and FLUX the groups name the
joint blocks' text stream, the cross-attention's role there (models/groups.py).

Defaults: the paper's for SD (1000 iterations, lr 1e-5, η = 1, 50 DDIM steps, start guidance 3, batch 1). The
official repository's newer diffusers script (esd_sd.py) uses 200 iterations and lr 5e-5, and writes its target as
ε(c_e) − η' (ε(c_e) − ε(∅)) = ε(∅) − (η' − 1)(ε(c_e) − ε(∅)): its η' = 2 is the paper's η = 1, which is
`negative_guidance=1` here (η' = η + 1). The miniature's defaults
(`MINI`) are chosen to reach the world bars in well under a minute per concept on 2 CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from erasekit.core.edit import Edit
from erasekit.core.loop import Run
from erasekit.core.options import at_least, check_choice
from erasekit.methods.concepts import ConceptSet, expand
from erasekit.methods.latents import Z_SOURCES, ZSampler
from erasekit.methods.loop import LoopConfig, finish, fit, student
from erasekit.methods.registry import register
from erasekit.methods.teacher import guided_target
from erasekit.models.bundle import Bundle

ESD_GROUPS = {"esd-x": "xattn", "esd-u": "noxattn", "esd-all": "full", "esd-x-strict": "xattn-kv"}


@dataclass
class ESDConfig(LoopConfig):
    group: str = "esd-x"  # esd-x | esd-u | esd-all | esd-x-strict
    negative_guidance: float = 1.0  # η
    ddim_steps: int = at_least(1, 50)  # length of the sampling trajectory z_t is taken from
    start_guidance: float = 3.0  # classifier-free guidance while sampling z_t
    z_source: str = "trajectory"  # trajectory (the paper) | base-trajectory (esd_sd.py) | pool (cheaper deviation)
    pool_size: int = at_least(1, 64)
    templates: tuple = ("{}",)  # prompts per concept; "{}" is the concept itself

    def check(self) -> None:
        super().check()
        check_choice(self.group, ESD_GROUPS, "ESD variant")
        check_choice(self.z_source, Z_SOURCES, "z_source")


MINI = {
    "iterations": 40,
    "lr": 1e-3,
    "batch": 8,
    "ddim_steps": 10,
    "negative_guidance": 1.0,
    "templates": ("{}", "a {}"),
}


@register(
    "esd",
    "ESD: fine-tune toward negatively guided predictions for the erased concept (Gandikota 2023)",
    ESDConfig,
    paper="arXiv:2303.07345",
    presets={"mini": MINI},
)
def erase(bundle: Bundle, concepts: ConceptSet, config: ESDConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    model, params = student(bundle, ESD_GROUPS[config.group], config)
    with torch.no_grad():
        conds = bundle.encode_prompts(expand(concepts.erase, config.templates))
        uncond = bundle.unconditional()
    sample_z = ZSampler(model, bundle, conds, uncond, config)
    eta = config.negative_guidance

    def loss_fn(step: int):
        z_t, t, k = sample_z(step)
        c_e, empty = conds[k].expand(len(z_t)), uncond.expand(len(z_t))
        with torch.no_grad():  # the frozen model: ε_θ(z_t, t) − η [ε_θ(z_t, c_e, t) − ε_θ(z_t, t)], one batch
            target, _ = guided_target(bundle, t, (z_t, empty), (z_t, c_e), eta)
        return F.mse_loss(model.eps(z_t, t, c_e), target), {"t": int(t[0])}

    rows = fit("esd", loss_fn, params, config, run, teacher=bundle)
    return finish("esd", bundle, params, config, concepts.as_dict(), rows)
