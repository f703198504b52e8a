"""Relearning: fine-tune the erased model on a few images of the concept and watch it come back ("Unstable
Unlearning", Suriyakumar et al., arXiv:2410.08074; MemoRa, Polowczyk et al., arXiv:2510.03263).

An attacker who holds the weights can train them. With k images z_0 of the concept, each captioned by one of the
goal prompts c, the edited model ε_θ' trains on the plain latent diffusion loss

    θ'_s = θ' after s Adam steps on  E_{z_0, c, ε ~ N(0, I), t} || ε − ε_θ'(z_t, t, c) ||²

over the parameter group an attacker would pick (the cross-attention by default, `group=full` for the whole
denoiser). An erasure that holds only until a few such steps were taken hid the concept; one that needs as many
steps as learning it from nothing removed it. So the attack reports a curve, not one rate: the concept's rate on
the goal prompts after s steps, for every s in `budgets` (0 is the erased model itself). The model at `budget`
steps is the attacked model of the evaluation (its ASR, and its place in the worst case over attacks).

The images are the user's (`--images`), or the unedited model's goal-prompt images in which the judge sees the
concept (as concept inversion takes them): relearning needs no access to the erased concept's weights, only to
images of it. The seeds of training are the attack's own; the rates are on the evaluation seeds.

Defaults for SD (erasekit's, since neither paper fixes one recipe): 16 images, batch 4, Adam lr 1e-5 (the usual
SD fine-tuning rate), budgets 0, 5, 10, 20, 50, 100, the worst case at 20. The miniature's preset: 32 images,
batch 8, lr 1e-3 (the methods' own miniature fine-tuning rate), the same budgets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from erasekit.attacks.common import losses, reference_latents
from erasekit.attacks.goal import AdversarialPrompt, AttackResult, Goal
from erasekit.attacks.registry import register
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run, step_generator, train
from erasekit.core.options import Checked, at_least, check_choice
from erasekit.models.bundle import Bundle
from erasekit.models.groups import GROUPS, trainable

STAGE = "stage-{}.safetensors"  # in the run's work folder: the trained group after each budget (a resume keeps them)


@dataclass
class RelearnConfig(Checked):
    images: int = at_least(1, 16)  # k: images of the concept to relearn from
    budgets: tuple = (0, 5, 10, 20, 50, 100)  # s: the curve's points, in steps
    budget: int = 20  # the steps whose model is the attacked one (ASR, the worst case)
    lr: float = 1e-5
    batch: int = at_least(1, 4)
    group: str = "xattn"  # the parameters the attacker trains: xattn (default) | full | any parameter group
    grad_clip: float = at_least(0.0, 1.0)
    checkpoint_every: int = at_least(1, 50)
    seed: int = 0

    def check(self) -> None:
        check_choice(self.group, GROUPS, "parameter group")
        try:  # from the command line: "0,5,10" (strings)
            self.budgets = tuple(sorted({int(str(s)) for s in self.budgets}))
        except ValueError:
            raise ErasekitError(f"relearn budgets must be step counts, got {list(self.budgets)}") from None
        if not self.budgets or self.budgets[0] < 0:
            raise ErasekitError(f"relearn budgets must be step counts >= 0, got {list(self.budgets)}")
        if self.budget < 1:
            raise ErasekitError(f"relearn budget must be at least 1 step, got {self.budget}")
        if self.budget not in self.budgets:
            raise ErasekitError(f"relearn budget {self.budget} must be one of the budgets {list(self.budgets)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ErasekitError(f"relearn lr must be a positive finite number, got {self.lr}")


MINI = {"images": 32, "batch": 8, "lr": 1e-3}


@register(
    "relearn",
    "Relearning: fine-tune the erased model on a few concept images; the concept's rate against steps",
    RelearnConfig,
    paper="arXiv:2410.08074",
    presets={"mini": MINI},
    ends_in="weights",
)
def attack(bundle: Bundle, goal: Goal, config: RelearnConfig, run: Run | None = None) -> AttackResult:
    run = run if run is not None else Run()
    z0 = reference_latents(bundle, goal, config.images, "relearn")
    model, names, params = trainable(bundle, config.group)  # only the trained group is copied, in fp32
    with torch.no_grad():
        conds = bundle.encode_prompts(goal.prompts)
    budgets = config.budgets  # sorted by the config's check
    stages: dict[int, Edit] = {}

    def stage(steps: int, tensors: dict[str, torch.Tensor]) -> None:
        stages[steps] = Edit.from_changes(bundle, tensors, "relearn", config, {"concept": goal.concept})
        stages[steps].metrics["steps"] = steps

    def snapshot(steps: int) -> None:
        stage(steps, {f"{bundle.DENOISER}.{n}": p.detach() for n, p in zip(names, params, strict=True)})
        if run.work is not None:
            save_file({k: v.contiguous() for k, v in stages[steps].tensors.items()}, run.work / STAGE.format(steps))

    if run.resume and run.work is not None:  # the stages a killed run had reached
        for steps in budgets:
            if (run.work / STAGE.format(steps)).exists():
                stage(steps, load_file(str(run.work / STAGE.format(steps))))
    if run.work is not None:
        run.work.mkdir(parents=True, exist_ok=True)
    if 0 in budgets and 0 not in stages:
        snapshot(0)

    def loss_fn(step: int):
        g = step_generator(config.seed, step)
        pick = torch.randint(len(z0), (config.batch,), generator=g)
        k = torch.randint(len(goal.prompts), (config.batch,), generator=g)
        t = model.train_timesteps(config.batch, g)
        noise = torch.randn(z0[pick].shape, generator=g).to(model.device, z0.dtype)
        z_t = model.add_noise(z0[pick], noise, t)
        return F.mse_loss(model.eps(z_t, t, conds[k]).float(), noise.float())

    def stop_when(step: int) -> bool:
        if step + 1 in budgets:
            snapshot(step + 1)
        return False

    rows = train(
        "relearn",
        loss_fn,
        params,
        max(budgets),
        config.lr,
        run,
        config.grad_clip,
        config.checkpoint_every,
        stop_when=stop_when,
    )
    history = losses(rows)
    prompts = [AdversarialPrompt(r, p, p, loss=history if r == 0 else []) for r, p in enumerate(goal.prompts)]
    return AttackResult(
        "relearn", goal.concept, stages[config.budget].config, prompts, weights=stages[config.budget], stages=stages
    )
