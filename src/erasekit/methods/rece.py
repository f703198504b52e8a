"""RECE: Reliable and Efficient Concept Erasure (Gong et al., ECCV 2024): UCE's closed form, then, in closed form,
the embedding that still regenerates the concept in the edited model, erased in turn, for a few epochs.

Start (epoch 0): UCE's erase edit of every projection that reads the text (`uce.closed_form`, the official
train_uce.py settings: λ = 0.5, the empty prompt preserved at scale 1), W_0 the original weights.

Each epoch e = 1..E, with W the current weights of the projections that read the per-token states (a UNet's
cross-attention keys and values; an MMDiT's context embedder):

1. The adversarial embedding. The token sequence c' whose keys and values in the edited model are the original
   model's for the concept, c the concept prompt's whole token sequence, with a ridge on c':

       c' = argmin_c'  Σ_l ||W_l c' − W_0,l c||² + λ_reg ||c'||²
          = (λ_reg I + Σ_l W_lᵀ W_l)⁻¹ (Σ_l W_lᵀ W_0,l) c                                     (RECE's closed form)

   one solve over all the projections together (the official close_form_emb_regzero), applied to every position
   of the sequence (start, words, end and padding).
2. Erase c' as UCE erases a concept, mapping it where the target's sequence c_t goes in the current model and
   keeping the preserved sequences c_p (the empty prompt, and the user's --preserve) where they are:

       W ← (λ W + Σ W c_t c'ᵀ + s_p Σ W c_p c_pᵀ) (λ I + Σ c' c'ᵀ + s_p Σ c_p c_pᵀ)⁻¹      (UCE's Eq. 6 at W)

   with λ = 0.1 and s_p = 0.1 (the official edit_model_adversarial calls; the authors' model card's λ1 = λ2 = 0.1),
   on every position of the sequences.

The regulariser λ_reg is the paper's per concept: 0.1 for nudity and the easy objects, 1e-3 for artists and the
hard objects (the official scripts); 5 epochs (scripts/nudity.sh, train_object.py). The official code then keeps
the epoch whose validation images its detector scores best; erasekit keeps the last epoch and records every
epoch's residual ||W c' − W_0 c|| / ||W_0 c|| (how well the concept could still be reached) in the edit's
metrics, since a validation pick needs a judge the method does not have on real models. The pooled vector's
embedder of SD3 and FLUX keeps its UCE edit: the adversarial search is over the per-token states.

`positions`: which positions of the sequences the epochs use: `all` (the official code: every one of the 77),
`to-end` (UCE's: from the concept's last word token on, aligned with the target's), or `last` (the last word token
alone, one vector per prompt, as the current official UCE script). The miniature's preset takes `last`: its text
width (48) is smaller than its sequence (77), so one epoch over every position constrains the whole text space
and maps every prompt toward the target, where SD's 77 positions are a tenth of its 768 dimensions. On the
miniature with `all`, PSR-1 fell epoch by epoch (the changelog's 0.2.0 notes have the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.core.options import Checked, at_least, check_choice
from erasekit.methods.concepts import ConceptSet, expand
from erasekit.methods.guide import check_guide, guided
from erasekit.methods.registry import register
from erasekit.methods.uce import TOKENS, _pairs, aligned, closed_form, kept, projections, solve
from erasekit.models.bundle import Bundle


@dataclass
class RECEConfig(Checked):
    epochs: int = at_least(1, 5)  # E
    regular: float = 0.1  # λ_reg, the ridge on c' (1e-1 nudity and easy objects, 1e-3 artists and hard objects)
    lamb: float = 0.1  # λ of each epoch's edit
    preserve_scale: float = 0.1  # s_p of each epoch's edit
    uce_lamb: float = 0.5  # the UCE edit it starts from (official train_uce.py)
    uce_preserve_scale: float = 1.0
    templates: tuple = ("{}",)
    tokens: str = "to-end"  # the starting UCE edit's text positions (as UCE's)
    positions: str = "all"  # the epochs' positions: all (the official code) | to-end | last (UCE's, from the last word)
    guide: str = ""  # as UCE's: "" (--target, else the empty prompt) | nearest
    vocab: str = ""

    def check(self) -> None:
        check_choice(self.tokens, TOKENS, "tokens")
        check_choice(self.positions, POSITIONS, "positions")
        check_guide(self.guide, self.vocab)
        for name in ("regular", "lamb", "uce_lamb"):
            if not getattr(self, name) > 0:
                raise ErasekitError(f"{name} must be > 0 for a well-posed solve, got {getattr(self, name)}")
        if self.preserve_scale < 0 or self.uce_preserve_scale < 0:
            raise ErasekitError("preserve scales must be >= 0")


POSITIONS = ("all", "to-end", "last")

MINI = {"templates": ("{}", "a {}"), "guide": "nearest", "vocab": "world-objects", "positions": "last"}


@torch.no_grad()
def sequences(bundle: Bundle, prompts: list[str]) -> list[torch.Tensor]:
    """Each prompt's whole per-token conditioning [L, d] in float64 (every position: RECE's c, c_t, c_p)."""
    cond = bundle.encode_prompts(prompts)
    return [t.double() for t in cond.tokens]


def adversarial(W: dict[str, torch.Tensor], W0: dict[str, torch.Tensor], c: torch.Tensor, regular: float):
    """c' = (λ_reg I + Σ W_lᵀ W_l)⁻¹ (Σ W_lᵀ W_0,l) c, row by row of c [L, d]."""
    d = c.shape[1]
    M = regular * torch.eye(d, dtype=torch.float64)
    N = torch.zeros(d, d, dtype=torch.float64)
    for name, w in W.items():
        M += w.T @ w
        N += w.T @ W0[name]
    return torch.linalg.solve(M, N @ c.T).T  # M is SPD: c'ᵀ = M⁻¹ N cᵀ


def residual(W: dict, W0: dict, c_adv: torch.Tensor, c: torch.Tensor) -> float:
    """||W c' − W_0 c|| / ||W_0 c|| over every projection: how closely c' reaches the concept's keys and values."""
    num = sum(float((c_adv @ W[n].T - c @ W0[n].T).pow(2).sum()) for n in W)
    den = sum(float((c @ W0[n].T).pow(2).sum()) for n in W)
    return (num / den) ** 0.5 if den else 0.0


@register(
    "rece",
    "RECE: UCE, then erase in closed form the embedding that regenerates the concept, for a few epochs (Gong 2024)",
    RECEConfig,
    paper="arXiv:2407.12383",
    presets={"mini": MINI},
)
def erase(bundle: Bundle, concepts: ConceptSet, config: RECEConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    concepts = guided(bundle, concepts, config.guide, config.vocab)
    pairs = _pairs(concepts, config.templates)  # (concept prompt, target prompt)
    preserved = [""] + expand(concepts.preserve, config.templates)
    start = closed_form(
        bundle,
        [aligned(bundle, s, t, config.tokens) for s, t in pairs],
        kept(bundle, preserved, config.tokens),
        config.uce_lamb,
        1.0,
        config.uce_preserve_scale,
    )
    tokens = {name: proj.weight for name, (proj, kind) in projections(bundle).items() if kind == "tokens"}
    W0 = {name: weight.detach().double() for name, weight in tokens.items()}
    W = {name: start[name].double() for name in tokens}
    if config.positions == "all":
        c = sequences(bundle, [s for s, _ in pairs])
        c_t = sequences(bundle, [t for _, t in pairs])
        c_p = sequences(bundle, preserved)
    else:  # UCE's positions: the concept's last word token (to the end), aligned with the target's
        both = [aligned(bundle, s, t, config.positions) for s, t in pairs]
        c, c_t = [C["tokens"] for C, _ in both], [T["tokens"] for _, T in both]
        c_p = [P["tokens"] for P in kept(bundle, preserved, config.positions)]
    residuals = []  # [0]: the UCE edit's; [e]: after epoch e
    for epoch in range(config.epochs + 1):
        c_adv = [adversarial(W, W0, ci, config.regular) for ci in c]
        residuals.append(max(residual(W, W0, a, ci) for a, ci in zip(c_adv, c, strict=True)))
        if epoch == config.epochs:
            break
        W = {
            name: solve(
                w,
                [(a, t @ w.T) for a, t in zip(c_adv, c_t, strict=True)],
                c_p,
                config.lamb,
                1.0,
                config.preserve_scale,
            )
            for name, w in W.items()
        }
    tensors = start | {name: w.to(tokens[name].dtype) for name, w in W.items()}
    edit = Edit.from_changes(bundle, tensors, "rece", config, concepts.as_dict())
    edit.metrics["residual_by_epoch"] = residuals
    return edit
