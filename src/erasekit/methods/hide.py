"""Hide & Recover (Bui et al., "Hiding and Recovering Knowledge in Text-to-Image Diffusion Models via Learnable
Prompts", arXiv 2403.12326; the talk's Eqs. 15–16): conceal a concept behind a key instead of destroying it.

Stage 1, hiding (Eq. 15): the model θ' and one key p_{c_e} per hidden concept are trained together,

    min_{θ',p} E_{c_e ∈ E} ||ε_θ'(z_t, c_e, t) − ε_θ(z_t, c_t, t)||²  +  λ ||ε_θ'(z_t, c_e ⊕ p, t) − ε_θ(z_t, c_e, t)||²
                                          L1                                        L2          (p = p_{c_e})

  plus, when preserved concepts P are given (the paper's "Ours*"), λ_P E_{c_n ∈ P} ||ε_θ'(c_n) − ε_θ(c_n)||².
  Without the key the model maps c_e where `target` (Eq. 7) maps it: c_t is the empty prompt, guided away from c_e
  by η (on the miniature the empty prompt draws objects); with the key it draws c_e as the base does. p starts at
  c_e's own conditioning at the key's positions (core/key.py says where p sits and why).

Stage 2, recovery (Eq. 16): whoever holds θ and θ' re-derives a key for c_e,

    p_{c_e} = argmin_{||p − c_e||₂ ≤ ρ}  ||ε_θ'(z_t, c_e ⊕ p, t) − ε_θ(z_t, c_e, t)||²

  by projected gradient descent: an Adam step on p, then projection onto the ball, from c_e itself or from a random
  point of the ball. ρ is given relative to ||c_e||₂ (the norm of c_e's k vectors), so that one value reads the
  same on any text encoder. It runs on any edit, an erasure too: how far from c_e a key must go is the measure.

z_t comes from the base's partial trajectory for c_e (`z_source="base-trajectory"`): L2 asks the keyed model to
follow the base where the base draws c_e, and those latents exist only in the base.

Families: every one. The key takes the last positions of the conditioning's per-token states: CLIP's padding on SD
and SDXL, T5's on SD3 and FLUX.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from erasekit.core.conditioning import Conditioning
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.key import KEY_FILE, Key, check_room, splice, tail
from erasekit.core.loop import RECORD, Run, step_generator, train
from erasekit.core.options import at_least, build_options, check_choice
from erasekit.methods.concepts import ConceptSet, expand
from erasekit.methods.latents import Z_SOURCES, ZSampler
from erasekit.methods.loop import LoopConfig, finish, loop_options, stop_rule, student, teacher_offload
from erasekit.methods.registry import register
from erasekit.methods.teacher import guided_away, predictions
from erasekit.models.bundle import Bundle
from erasekit.models.groups import GROUPS


@dataclass
class _Sampling(LoopConfig):
    """Where both stages draw z_t (methods/latents.py) and which prompts of each concept they train on."""

    ddim_steps: int = at_least(1, 50)
    start_guidance: float = 3.0
    z_source: str = "base-trajectory"
    pool_size: int = at_least(1, 64)
    templates: tuple = ("{}",)
    key_tokens: int = at_least(1, 4)  # k: the key's vectors

    def check(self) -> None:
        super().check()
        check_choice(self.z_source, Z_SOURCES, "z_source")


@dataclass
class HideConfig(_Sampling):
    GRAD_BATCHES = 2  # one batch of each of two conditionings through the student per step
    group: str = "xattn"
    lam: float = 1.0  # λ (Eq. 15)
    lam_preserve: float = 1.0  # λ_P of "Ours*", used when preserved concepts are given
    negative_guidance: float = 0.0  # η: the target ε_θ(c_t) − η (ε_θ(c_e) − ε_θ(c_t))
    key_lr: float = 1e-3  # the keys' learning rate (θ' has `lr`)

    def check(self) -> None:
        super().check()
        check_choice(self.group, GROUPS, "parameter group")
        if not (math.isfinite(self.key_lr) and self.key_lr > 0):
            raise ErasekitError(f"key_lr must be a positive finite number, got {self.key_lr}")


@dataclass
class RecoverConfig(_Sampling):
    rho: float = 0.5  # ρ of Eq. 16, relative to ||c_e||₂
    start: str = "concept"  # where p starts: "concept" (c_e itself) or "random" (a uniform point of the ball)

    def check(self) -> None:
        super().check()
        if not (math.isfinite(self.rho) and self.rho > 0):
            raise ErasekitError(f"rho (ρ, the radius of Eq. 16's ball around c_e) must be > 0, got {self.rho}")
        check_choice(self.start, ("concept", "random"), "start")


MINI = {
    "iterations": 300,
    "lr": 1e-3,
    "key_lr": 1e-2,
    "batch": 8,
    "ddim_steps": 10,
    "templates": ("{}", "a {}"),
    "negative_guidance": 1.0,
}
MINI_RECOVER = {"iterations": 60, "lr": 1e-2, "batch": 8, "ddim_steps": 10, "templates": ("{}", "a {}")}


def recover_config(preset: str | None = None, file=None, overrides=(), values: dict | None = None) -> RecoverConfig:
    """Stage 2's options: the defaults, the miniature's preset on the miniature, a YAML file, `values`, `--set`s."""
    return build_options(RecoverConfig, "recover", MINI_RECOVER if preset == "mini" else None, file, overrides, values)


class _Prompts:
    """The prompts of each hidden concept (its templates), their conditioning, and c_e at the key's positions."""

    def __init__(self, bundle: Bundle, concepts: list[str], config: _Sampling):
        self.concepts = list(concepts)
        self.prompts = expand(self.concepts, config.templates)
        self.owner = [i for i in range(len(self.concepts)) for _ in config.templates]  # concept index of each prompt
        check_room(bundle, self.prompts + self.concepts, config.key_tokens)
        with torch.no_grad():
            self.conds = bundle.encode_prompts(self.prompts)
            self.uncond = bundle.unconditional()
            self.centres = [tail(bundle.encode_prompts([c]), config.key_tokens) for c in self.concepts]

    def distances(self, keys) -> dict[str, float]:
        """||p − c_e|| / ||c_e|| of each key: the ρ it needs."""
        return {
            c: float((p.detach() - c_e).norm() / c_e.norm())
            for c, p, c_e in zip(self.concepts, keys, self.centres, strict=True)
        }


def hide(teacher: Bundle, concepts: ConceptSet, config: HideConfig, run: Run | None = None) -> tuple[Edit, Key]:
    """Stage 1 (Eq. 15): the hidden model's Edit and the key that unlocks it."""
    run = run if run is not None else Run()
    model, params = student(teacher, config.group, config)
    hidden = _Prompts(teacher, concepts.erase, config)
    keys = torch.nn.ParameterList([torch.nn.Parameter(c_e.clone()) for c_e in hidden.centres])
    with torch.no_grad():
        c_t = teacher.encode_prompts([concepts.target])
        c_n = teacher.encode_prompts(expand(concepts.preserve, config.templates)) if concepts.preserve else None
    sample_z = ZSampler(model, teacher, hidden.conds, hidden.uncond, config)

    def loss_fn(step: int):
        z_t, t, i = sample_z(step)
        b = len(z_t)
        c_e = hidden.conds[i].expand(b)
        c_e_key = splice(c_e, keys[hidden.owner[i]])
        kept = []
        if c_n is not None:
            j = int(torch.randint(0, len(c_n), (1,), generator=step_generator(config.seed, step, stream=1)))
            kept = [(z_t, c_n[j].expand(b))]
        with torch.no_grad():  # the frozen teacher's ε_θ(c_t), ε_θ(c_e) (and ε_θ(c_n)), one batch
            teacher_t, teacher_e, *teacher_n = predictions(teacher, t, (z_t, c_t.expand(b)), (z_t, c_e), *kept)
        m = 2 + len(kept)  # the student's ε_θ'(c_e), ε_θ'(c_e ⊕ p) (and ε_θ'(c_n)), one batch
        conds = Conditioning.cat([c_e, c_e_key, *(c for _, c in kept)])
        student_e, student_key, *student_n = model.eps(z_t.repeat(m, 1, 1, 1), t.repeat(m), conds).chunk(m)
        l1 = F.mse_loss(student_e, guided_away(teacher_t, teacher_e, config.negative_guidance))  # Eq. 15, L1
        l2 = F.mse_loss(student_key, teacher_e)  # Eq. 15, L2
        loss, logs = l1 + config.lam * l2, {"l_hide": l1.item(), "l_key": l2.item()}
        if kept:  # Ours*
            l_p = F.mse_loss(student_n[0], teacher_n[0])
            loss, logs["l_preserve"] = loss + config.lam_preserve * l_p, l_p.item()
        return loss, logs

    def adam(_, lr):  # θ' at `lr`, the keys at `key_lr`
        return torch.optim.Adam(
            [{"params": list(params.values()), "lr": lr}, {"params": list(keys), "lr": config.key_lr}]
        )

    with teacher_offload("hide", config, teacher, params):
        rows = train(
            "hide",
            loss_fn,
            [*params.values(), *keys],
            config.iterations,
            config.lr,
            run,
            config.grad_clip,
            config.checkpoint_every,
            optimizer=adam,
            stop_when=stop_rule(run, params),
            **loop_options(config, params),
        )
    edit = finish("hide", teacher, params, config, concepts.as_dict(), rows)
    edit.metrics["key_distance"] = hidden.distances(keys)  # the student is the hidden model: no need to apply the edit
    key = Key(
        {c: p.detach() for c, p in zip(hidden.concepts, keys, strict=True)},
        edit=edit.fingerprint(),
        model=model.fingerprint(),
        base=edit.base,
        method="hide",
        config=asdict(config),
        metrics={"distance": edit.metrics["key_distance"]},
    )
    return edit, key


@register(
    "hide",
    "Eq. 15: hide concepts behind a learnable key (key.safetensors in the run folder)",
    HideConfig,
    paper="Bui et al., arXiv 2403.12326 (talk Eqs. 15-16)",
    presets={"mini": MINI},
)
def erase(bundle: Bundle, concepts: ConceptSet, config: HideConfig, run: Run | None = None) -> Edit:
    """The registry's view of `hide`: the Edit, with the key written to the run's record (the run folder keeps it)."""
    run = run if run is not None else Run()
    edit, key = hide(bundle, concepts, config, run)
    if run.work is not None:
        key.save(run.work / RECORD / KEY_FILE, overwrite=True)
    return edit


def _random_start(c_e: torch.Tensor, radius: float, gen: torch.Generator) -> torch.Tensor:
    """A uniform point of the ball ||p − c_e|| ≤ radius: a random direction, at radius · U^(1/dim)."""
    direction = torch.randn(c_e.shape, generator=gen).to(c_e)
    u = float(torch.rand((), generator=gen)) ** (1 / c_e.numel())
    return c_e + direction / direction.norm() * radius * u


def recover(base: Bundle, edit: Edit, concepts: list[str], config: RecoverConfig, run: Run | None = None) -> Key:
    """Stage 2 (Eq. 16): a key for each concept that `edit` hid (or erased), within ρ of the concept itself."""
    run = run if run is not None else Run()
    if not concepts:
        raise ErasekitError("no concept to recover: name at least one")
    edited = edit.apply(base)
    hidden = _Prompts(base, concepts, config)
    radii = [config.rho * float(c_e.norm()) for c_e in hidden.centres]
    gen = torch.Generator().manual_seed(config.seed)
    starts = [
        c_e.clone() if config.start == "concept" else _random_start(c_e, r, gen)
        for c_e, r in zip(hidden.centres, radii, strict=True)
    ]
    keys = torch.nn.ParameterList([torch.nn.Parameter(p) for p in starts])
    sample_z = ZSampler(edited, base, hidden.conds, hidden.uncond, config)

    def loss_fn(step: int):
        z_t, t, i = sample_z(step)
        c_e = hidden.conds[i].expand(len(z_t))
        with torch.no_grad():
            teacher_e = base.eps(z_t, t, c_e)
        return F.mse_loss(edited.eps(z_t, t, splice(c_e, keys[hidden.owner[i]])), teacher_e)  # Eq. 16

    @torch.no_grad()
    def project():  # onto ||p − c_e|| ≤ ρ ||c_e||
        for p, c_e, r in zip(keys, hidden.centres, radii, strict=True):
            d = p - c_e
            if d.norm() > r:
                p.copy_(c_e + d * (r / d.norm()))

    project()
    rows = train(
        "recover",
        loss_fn,
        list(keys),
        config.iterations,
        config.lr,
        run,
        config.grad_clip,
        config.checkpoint_every,
        after_step=project,
    )
    return Key(
        {c: p.detach() for c, p in zip(hidden.concepts, keys, strict=True)},
        edit=edit.fingerprint(),
        model=edited.fingerprint(),
        base=edit.base,
        method="recover",
        config=asdict(config),
        metrics={"distance": hidden.distances(keys), "final_loss": float(rows[-1]["loss"]) if rows else None},
    )
