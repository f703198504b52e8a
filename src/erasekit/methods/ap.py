"""Adversarial Preservation (Bui et al., NeurIPS 2024): preserve the concept the erasure hurts most.

    min_θ' max_{c_a ∈ R} E_{c_e ∈ E} [ ||ε_θ'(c_e) − ε_θ(c_n)||² + λ ||ε_θ'(c_a) − ε_θ(c_a)||² ]     (talk Eq. 9)

R holds the `k_closest` vocabulary concepts nearest c_e in text-embedding space (Eq. 10), optionally reduced to
`num_centers` k-means representatives. c_a is a Gumbel-softmax sample of π over R (Eq. 11), one-hot by the
straight-through estimator in hard mode (Eq. 12). Each iteration, π ascends the preservation term L2 for
`pgd_steps` steps (Algorithm 1), then the model descends the whole objective at the c_a found (Algorithm 2).

- c_n is `--target` ("" by default, the neutral prompt). `negative_guidance` η > 0 replaces ε_θ(c_n) by ESD's
  target ε_θ(c_n) − η (ε_θ(c_e) − ε_θ(c_n)), as the official code does (η = 1).
- z_t for c_e and for c_a come from partial DDIM trajectories of the model being edited from the same noise
  (the official code); predictions are compared in x0-space by default (`space`, as the official code does).
- The teacher's prediction for c_a is differentiated too when π ascends (the equation's L2); the official code
  differentiates only the student's.

Defaults: the official code's for SD (1000 iterations, lr 1e-5, xattn — use `group=noxattn` for nudity —, Gumbel
lr 1e-2, temperature 2, hard, 2 ascent steps, k_closest 1000 / 100 centres for objects, 2000 / 50 for nudity, from
an English word list you pass as `vocab`). The miniature's (`MINI`) use its 41-word lexicon; its Gumbel lr
0.1 gives π's logits the same largest total move in 40 iterations x 2 ascent steps as 1e-2 does in the official
1000 iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from erasekit.core.conditioning import Conditioning
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.latents import prediction_gap
from erasekit.methods.registry import register
from erasekit.methods.search import SearchConfig, prepare, run_search
from erasekit.methods.teacher import guided_target
from erasekit.models.bundle import Bundle


@dataclass
class APConfig(SearchConfig):
    num_centers: int = 100


def preservation_gap(
    bundle: Bundle, model: Bundle, z: torch.Tensor, t: torch.Tensor, c_a: Conditioning, space: str
) -> torch.Tensor:
    """L2 = ||ε_θ'(z, c_a) − ε_θ(z, c_a)||² (Eq. 9's second term), differentiable in c_a."""
    return prediction_gap(bundle, model.eps(z, t, c_a), bundle.eps(z, t, c_a), t, space)


MINI = {
    "iterations": 40,
    "lr": 1e-3,
    "batch": 8,
    "ddim_steps": 10,
    "templates": ("{}", "a {}"),
    "vocab": "world",
    "gumbel_lr": 0.1,
    "k_closest": 20,
    "num_centers": 0,
    "negative_guidance": 1.0,
}


@register(
    "ap",
    "Adversarial Preservation: erase while preserving the most sensitive concept, found by "
    "Gumbel-softmax search (Bui 2024)",
    APConfig,
    paper="Bui et al., NeurIPS 2024 (talk Eqs. 8-12)",
    presets={"mini": MINI},
)
def erase(bundle: Bundle, concepts: ConceptSet, config: APConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    if concepts.preserve:
        raise ErasekitError(
            "ap searches what to preserve in its vocabulary; --preserve is not used (put the "
            "concepts in the vocabulary file instead)"
        )
    setup = prepare(bundle, concepts, config)
    model, search, conds = setup.model, setup.search, setup.conds
    with torch.no_grad():
        c_n = bundle.encode_prompts([concepts.target])
    eta, lam = config.negative_guidance, config.lam

    def loss_fn(step: int):
        s = setup.step(step, config)
        b = len(s.z_e)
        # Algorithm 1: c_a ← argmax L2, by ascent on π
        search.climb(
            s.i,
            s.gen,
            config.pgd_steps,
            lambda c_a: preservation_gap(bundle, model, s.z_s, s.t, c_a.expand(b), config.space),
        )
        # Algorithm 2: θ' descends Eq. 9 at the c_a found
        c_a = search.embed(s.i, search.sample(s.i, s.gen).detach()).expand(b)
        c_e = conds[s.k].expand(b)
        with torch.no_grad():  # ε_θ(c_n) (guided away from c_e by η) and ε_θ(c_a), one batch
            target, (e_a,) = guided_target(bundle, s.t, (s.z_e, c_n.expand(b)), (s.z_e, c_e), eta, (s.z_s, c_a))
        s_e, s_a = model.eps(torch.cat([s.z_e, s.z_s]), torch.cat([s.t, s.t]), Conditioning.cat([c_e, c_a])).chunk(2)
        l1 = prediction_gap(bundle, s_e, target, s.t, config.space)
        l2 = prediction_gap(bundle, s_a, e_a, s.t, config.space)  # preservation_gap, with the batch shared
        return l1 + lam * l2, setup.log(concepts, s, l1, l2)

    return run_search("ap", bundle, setup, loss_fn, config, concepts, run)
