"""Adaptive Guided Erasure (Bui et al., ICLR 2025, "Fantastic targets for concept erasure"): erase c_e *into* an
adaptively searched related concept.

    min_θ' E_{c_e ∈ E} max_{c_t ∈ C} [ ||ε_θ'(c_e) − ε_θ(c_t)||² + λ ||ε_θ'(c_t) − ε_θ(c_t)||² ]     (talk Eq. 13)

The target c_t is a mixture over C, the `k_closest` vocabulary concepts nearest c_e (Eq. 14): a soft Gumbel-softmax
sample of π keeping its top `gumbel_topk` entries. π ascends the whole objective: maximising the first term keeps
c_t away from what c_e still looks like (a synonym of c_e would make erasure trivial and useless), maximising the
second finds the concept the change disturbs most. The model then maps c_e onto c_t while preserving c_t.

- z_t for c_e and for c_t come from partial DDIM trajectories of the model being edited from the same noise;
  predictions are compared in x0-space by default (`space`), as the official code does.
- `negative_guidance` η guides the first term's target away from c_e: ε_θ(c_t) − η (ε_θ(c_e) − ε_θ(c_t)). The
  official code's default is η = 1, and so is ours; η = 0 is the equation as written.
- The official code detaches c_t in the first term's teacher prediction, so only the second term steers π there;
  here π ascends both terms, as the equation says.

Eq. 17 (the talk's "implications") is the same min-max with C given instead of searched (`mode`):
- `edit`: c_e → the `--target` c_t, C = {c_t} ∪ {"{a} {c_t}" for a in `attributes`} (doctor → nurse, C = {nurse,
  white nurse, asian nurse});
- `debias`: C = {"{a} {c_e}" for a in `attributes`} (doctor → {female doctor, male doctor, ...}; star → {yellow
  star, red star, ...}).
In both, the first term's target is ε_θ(c_t) itself (η = 0, Eq. 17 as written: guiding away from c_e would push
"star" away from the yellow star it draws), and π's sample is the straight-through one-hot (Eq. 12), so each step
maps c_e onto one member of C, the one the inner max finds hardest.

Defaults: the official code's (λ = 1, η = 1, soft top-2, temperature 0.1 for objects, k_closest 100 from ImageNet
class names passed as `vocab`, x0-space). The miniature's (`MINI`) use its 41-word lexicon; its Gumbel lr
0.1 gives π's logits the same largest total move in 40 iterations x 2 ascent steps as 1e-2 does in the official
1000 iterations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from erasekit.core.conditioning import Conditioning
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.core.options import check_choice
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.latents import prediction_gap
from erasekit.methods.registry import register
from erasekit.methods.search import SearchConfig, prepare, run_search, variant_search
from erasekit.methods.teacher import guided_away, predictions
from erasekit.models.bundle import Bundle

MODES = ("erase", "edit", "debias")


@dataclass
class AGEConfig(SearchConfig):
    negative_guidance: float = 1.0
    k_closest: int = 100
    gumbel_temperature: float = 0.1
    gumbel_hard: bool = False
    gumbel_topk: int = 2
    mode: str = "erase"  # erase | edit (needs --target) | debias (needs attributes): talk Eq. 17
    attributes: tuple = ()  # edit: variants "{a} {target}" beside the target; debias: "{a} {c_e}"

    def check(self) -> None:
        super().check()
        check_choice(self.mode, MODES, "AGE mode")
        if self.mode == "debias" and len(self.attributes) < 2:
            raise ErasekitError("age debias needs at least two attributes (--set attributes=yellow,red,blue,green)")


def variants(concepts: ConceptSet, config: AGEConfig) -> list[list[str]] | None:
    """Eq. 17's C for each erased concept (None in erase mode: C is searched in the vocabulary)."""
    if config.mode == "edit":
        return [[concepts.target] + [f"{a} {concepts.target}" for a in config.attributes] for _ in concepts.erase]
    if config.mode == "debias":
        return [[f"{a} {c}" for a in config.attributes] for c in concepts.erase]
    return None


MINI = {
    "iterations": 40,
    "lr": 1e-3,
    "batch": 8,
    "ddim_steps": 10,
    "templates": ("{}", "a {}"),
    "vocab": "world",
    "gumbel_lr": 0.1,
    "k_closest": 20,
}


@register(
    "age",
    "Adaptive Guided Erasure: map the erased concept onto an adaptively searched related target; "
    "edit, debias (Bui 2025)",
    AGEConfig,
    paper="Bui et al., ICLR 2025 (talk Eqs. 13-14; Eq. 17 for edit and debias)",
    presets={"mini": MINI},
)
def erase(bundle: Bundle, concepts: ConceptSet, config: AGEConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    if concepts.preserve or (concepts.target and config.mode != "edit"):
        raise ErasekitError(
            "age searches its target (and preserves it) in its vocabulary; --target and --preserve "
            "are not used (put the concepts in the vocabulary file instead; --target goes with "
            "--set mode=edit)"
        )
    if config.mode == "edit" and not concepts.target:
        raise ErasekitError("age edit maps a concept onto a target: give --target (e.g. --target square)")
    given = variants(concepts, config)
    if given is not None:
        config = replace(config, gumbel_hard=True)
    setup = prepare(bundle, concepts, config, variant_search(bundle, given, config) if given else None)
    model, search, conds = setup.model, setup.search, setup.conds
    eta, lam = (config.negative_guidance if config.mode == "erase" else 0.0), config.lam

    def teacher(s, c_t, e_e):
        """ε_θ(z_e, c_t) guided away from c_e by η (the first term's target), and ε_θ(z_t, c_t): one batch."""
        e_te, e_t = predictions(bundle, s.t, (s.z_e, c_t), (s.z_s, c_t))
        return guided_away(e_te, e_e, eta), e_t

    def loss_fn(step: int):
        s = setup.step(step, config)
        b = len(s.z_e)
        c_e = conds[s.k].expand(b)
        with torch.no_grad():  # neither ε_θ'(z_e, c_e) nor ε_θ(z_e, c_e) depends on c_t: once per step
            s_e = model.eps(s.z_e, s.t, c_e)
            e_e = bundle.eps(s.z_e, s.t, c_e) if eta else None

        def gain(c_t):  # Eq. 13's objective as a function of c_t: π ascends it
            c_t = c_t.expand(b)
            target, e_t = teacher(s, c_t, e_e)
            return prediction_gap(bundle, s_e, target, s.t, config.space) + lam * prediction_gap(
                bundle, model.eps(s.z_s, s.t, c_t), e_t, s.t, config.space
            )

        search.climb(s.i, s.gen, config.pgd_steps, gain)
        # θ' maps c_e onto the c_t found and preserves c_t (Eq. 13's outer min)
        c_t = search.embed(s.i, search.sample(s.i, s.gen).detach()).expand(b)
        with torch.no_grad():
            target, e_t = teacher(s, c_t, e_e)
        s_e, s_t = model.eps(torch.cat([s.z_e, s.z_s]), torch.cat([s.t, s.t]), Conditioning.cat([c_e, c_t])).chunk(2)
        l1 = prediction_gap(bundle, s_e, target, s.t, config.space)
        l2 = prediction_gap(bundle, s_t, e_t, s.t, config.space)
        return l1 + lam * l2, setup.log(concepts, s, l1, l2)

    return run_search("age", bundle, setup, loss_fn, config, concepts, run)
