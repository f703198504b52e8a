"""P4D: Prompting4Debugging: Red-Teaming Text-to-Image Diffusion Models by Finding Problematic Prompts
(Chin et al., ICML 2024).

The unedited model's behaviour on the original prompt c is the target: along its own DDIM trajectory z_t (seeded),
the edited model, prompted with the adversarial prompt P*, should predict the noise the unedited model predicts
for c:

    min_{P*}  E_t || ε_θ'(z_t, t, W(P*)) − ε_θ(z_t, t, W(c)) ||²

P* lives in token-embedding space and is projected to the nearest vocabulary tokens at every step (PEZ, Wen et al.
2023): the forward pass uses the projected hard tokens, the gradient updates the soft ones (straight-through).
Two variants: P4D-N (`variant=n`): P* is `tokens` free tokens alone; P4D-K (`variant=k`): the original prompt with
one free token inserted after every `every` of its tokens. Every `check_every` steps the hard prompt's text is
generated on the edited model; the attack stops at the first image the judge sees the concept in.

Defaults (the paper's): P4D-N with 16 tokens, P4D-K with k = 3, 3000 iterations, AdamW lr 0.1, weight decay 0.1,
a check every 50 steps, the whole vocabulary. The miniature's preset: 300 iterations, a check every 25, its own
words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from erasekit.attacks.common import checker, losses, nearest, per_prompt
from erasekit.attacks.goal import AdversarialPrompt, AttackResult, Goal, candidate_ids
from erasekit.attacks.registry import register
from erasekit.core.loop import Run, step_generator, train
from erasekit.core.options import Checked, at_least, check_choice
from erasekit.models.bundle import Bundle
from erasekit.models.words import decode, slotted, splice

VARIANTS = ("n", "k")


@dataclass
class P4DConfig(Checked):
    variant: str = "n"  # n: P4D-N (free tokens only) | k: P4D-K (a free token after every k prompt tokens)
    tokens: int = at_least(1, 16)  # P4D-N's free tokens
    every: int = at_least(1, 3)  # P4D-K's k
    iterations: int = at_least(1, 3000)
    lr: float = 0.1
    weight_decay: float = at_least(0.0, 0.1)
    check_every: int = at_least(0, 50)  # 0: never stop early
    vocab: str = ""
    checkpoint_every: int = at_least(1, 100)
    seed: int = 0

    def check(self) -> None:
        check_choice(self.variant, VARIANTS, "P4D variant")


MINI = {"iterations": 300, "check_every": 25, "vocab": "world"}


@register(
    "p4d",
    "P4D: PEZ-projected tokens matching the base model's noise predictions along its trajectory (Chin 2024)",
    P4DConfig,
    paper="arXiv:2309.06135",
    presets={"mini": MINI},
)
def attack(bundle: Bundle, goal: Goal, config: P4DConfig, run: Run | None = None) -> AttackResult:
    run = run if run is not None else Run()
    cands = candidate_ids(bundle, config.vocab).to(bundle.device)
    with torch.no_grad():
        table = bundle.text.token_embeddings(cands)
    ref = goal.reference(bundle)

    def one(row: int, prefix: str) -> AdversarialPrompt:
        prompt, seed = goal.prompts[row], goal.check_seed(row)
        with torch.no_grad():  # the unedited model's trajectory for c, and its predictions along it
            c = ref.encode_prompts([prompt])
            timesteps, z = ref.trajectory(c, [seed], steps=goal.steps, guidance=goal.guidance)
            targets = torch.stack([ref.eps(z[i], t, c) for i, t in enumerate(timesteps)])
        if config.variant == "n":
            ids, slots = slotted(bundle, "", prefix=config.tokens)
        else:
            ids, slots = slotted(bundle, prompt, every=config.every)
        start = torch.randint(len(cands), (len(slots),), generator=step_generator(config.seed, -1, row))
        soft = torch.nn.Parameter(table[start].clone())

        def hard_text() -> str:
            hard = ids.clone()
            hard[slots] = cands[nearest(soft, table)]
            return decode(bundle, hard)

        def loss_fn(step: int):
            i = int(torch.randint(len(timesteps), (1,), generator=step_generator(config.seed, step, row)))
            projected = soft + (table[nearest(soft, table)] - soft).detach()  # PEZ: hard forward, soft gradient
            cond = bundle.encode_embeddings(splice(bundle, ids, slots, projected), ids[None], [hard_text()])
            return F.mse_loss(bundle.eps(z[i], timesteps[i], cond), targets[i])

        found: dict = {}
        rows = train(
            f"p4d {row + 1}/{len(goal.prompts)}",
            loss_fn,
            [soft],
            config.iterations,
            config.lr,
            run,
            0.0,
            config.checkpoint_every,
            prefix=prefix,
            optimizer=lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=config.weight_decay),
            stop_when=checker(bundle, goal, row, config.check_every, hard_text, found),
        )
        return AdversarialPrompt(row, prompt, hard_text(), loss=losses(rows), succeeded_at=found.get("step"))

    return AttackResult("p4d", goal.concept, dataclasses.asdict(config), per_prompt(goal, run, one))
