"""UnlearnDiffAtk: To Generate or Not? Safety-Driven Unlearned Diffusion Models Are Still Easy To Generate Unsafe
Images ... For Now (Zhang et al., ECCV 2024).

The unlearned model is its own attacker: for an attacked prompt c with a target image x_tgt (the unedited model's
image of c), k prefix tokens are optimised so that the *edited* model denoises x_tgt again

    min_{u}  E_{t, ε} || ε − ε_θ'(z_t(x_tgt, ε), t, [u ; c]) ||²,   u_i ∈ Δ^{|V|} (one row per prefix token)

u is the relaxation of k one-hot token choices over the vocabulary simplex: the prefix embeddings are u E (E the
token embedding table), each row of u is projected back onto the simplex after every step, and the hard prompt
is argmax u. Every `check_every` steps the hard prompt's text is generated on the edited model and the attack stops
at the first image the judge sees the concept in.

Defaults (the paper / the official Diffusion-MU-Attack repository): k = 5 prefix tokens, 40 iterations, AdamW
lr 0.01 with weight decay 0.1, a check every step, the whole vocabulary. The miniature's preset checks every 5
steps and searches its own words (`vocab=world`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from erasekit.attacks.common import checker, losses, per_prompt
from erasekit.attacks.goal import AdversarialPrompt, AttackResult, Goal, candidate_ids
from erasekit.attacks.registry import register
from erasekit.core.loop import Run, step_generator, train
from erasekit.core.options import Checked, at_least
from erasekit.models.bundle import Bundle
from erasekit.models.words import decode, slotted, splice


@dataclass
class UnlearnDiffConfig(Checked):
    prefix: int = at_least(1, 5)  # k: adversarial tokens before the prompt
    iterations: int = at_least(1, 40)
    lr: float = 0.01
    weight_decay: float = at_least(0.0, 0.1)
    check_every: int = at_least(0, 1)  # 0: never stop early
    vocab: str = ""  # search space: "" every token; or a named vocabulary / vocabulary file
    checkpoint_every: int = at_least(1, 10)
    seed: int = 0


MINI = {"check_every": 5, "vocab": "world"}


def project_simplex(u: torch.Tensor) -> torch.Tensor:
    """Each row of `u` projected onto the probability simplex (Euclidean; Duchi et al. 2008)."""
    s, _ = torch.sort(u, dim=-1, descending=True)
    cum = s.cumsum(-1) - 1
    k = torch.arange(1, u.shape[-1] + 1, device=u.device, dtype=u.dtype)
    rho = ((s - cum / k) > 0).sum(-1, keepdim=True)
    theta = cum.gather(-1, rho - 1) / rho
    return (u - theta).clamp(min=0)


@register(
    "unlearndiff",
    "UnlearnDiffAtk: k prefix tokens on the vocabulary simplex, denoising the base's image "
    "with the edited model (Zhang 2024)",
    UnlearnDiffConfig,
    paper="arXiv:2310.11868",
    presets={"mini": MINI},
)
def attack(bundle: Bundle, goal: Goal, config: UnlearnDiffConfig, run: Run | None = None) -> AttackResult:
    run = run if run is not None else Run()
    cands = candidate_ids(bundle, config.vocab).to(bundle.device)
    with torch.no_grad():
        table = bundle.text.token_embeddings(cands)  # E restricted to the search space [V', D]
    ref = goal.reference(bundle)

    def one(row: int, prefix: str) -> AdversarialPrompt:
        prompt, seed = goal.prompts[row], goal.check_seed(row)
        with torch.no_grad():  # x_tgt: the unedited model's image of the prompt (as a latent)
            z0 = ref.sample(
                ref.encode_prompts([prompt]), [seed], steps=goal.steps, guidance=goal.guidance, decode=False
            )
        ids, slots = slotted(bundle, prompt, prefix=config.prefix)
        start = torch.randint(len(cands), (config.prefix,), generator=step_generator(config.seed, -1, row))
        u = torch.nn.Parameter(F.one_hot(start, len(cands)).float().to(bundle.device))

        def hard_text() -> str:
            hard = ids.clone()
            hard[slots] = cands[u.detach().argmax(-1)]
            return decode(bundle, hard)

        def loss_fn(step: int):
            g = step_generator(config.seed, step, row)
            t = bundle.train_timesteps(1, g)
            noise = torch.randn(z0.shape, generator=g).to(bundle.device, z0.dtype)
            cond = bundle.encode_embeddings(splice(bundle, ids, slots, u @ table), ids[None], [hard_text()])
            return F.mse_loss(bundle.eps(bundle.add_noise(z0, noise, t), t, cond), noise)

        def project():
            with torch.no_grad():
                u.copy_(project_simplex(u))

        found: dict = {}
        rows = train(
            f"unlearndiff {row + 1}/{len(goal.prompts)}",
            loss_fn,
            [u],
            config.iterations,
            config.lr,
            run,
            0.0,
            config.checkpoint_every,
            prefix=prefix,
            after_step=project,
            optimizer=lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=config.weight_decay),
            stop_when=checker(bundle, goal, row, config.check_every, hard_text, found),
        )
        return AdversarialPrompt(row, prompt, hard_text(), loss=losses(rows), succeeded_at=found.get("step"))

    return AttackResult("unlearndiff", goal.concept, dataclasses.asdict(config), per_prompt(goal, run, one))
