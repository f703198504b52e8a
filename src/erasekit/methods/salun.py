"""SalUn (Fan et al., ICLR 2024): gradient-based weight saliency, then random-label unlearning of the salient weights.

1. Saliency (the paper's Eq. 6 with the forgetting loss of its generation recipe): accumulate over the forget set
   the gradient of ℓ_f = −||ε − ε̃_θ(x_t, c_f)||², ε̃ = (1 + w) ε_θ(x_t, c_f) − w ε_θ(x_t, ∅) (w = 7.5), and keep
   the weights whose |∇ℓ_f| is in the top `mask_ratio` of all UNet weights: m_S = 1(|∇ℓ_f| ≥ γ). (The official SD
   script's ranking, as written, keeps the half with the *smallest* |∇|; we follow the paper's text.)
2. Unlearning by random labelling, only the salient weights moving (θ_u = m_S ⊙ (Δθ + θ) + (1 − m_S) ⊙ θ):

       L = || ε_θ(x_t^f, c_f) − sg(ε_θ(x_t^f, c')) ||²  +  α || ε_θ(x_t^r, c_r) − ε ||²

   c' a concept of the retain set drawn at random (the official script takes the next class), x^f images of the
   erased concept, (x^r, c_r) images of the retain set with their own prompts.

Defaults (the official SD scripts, Imagenette): lr 1e-5, Adam, batch 8, the whole UNet, mask ratio 0.5,
α = 0.5 (the README's command), 5 epochs over the forget class's ~950 images (600 iterations), prompts
"an image of a {}". The images are the base model's own (the official code's branch for concepts outside
Imagenette generates 800). The retain set is `--preserve`, else the concepts of `vocab` (world-objects on the
miniature) other than the erased ones and their synonyms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from erasekit.core.conditioning import Conditioning
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run, step_generator
from erasekit.core.options import at_least, check_choice
from erasekit.core.vocab import load_vocabulary
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.latents import LatentPool
from erasekit.methods.loop import LoopConfig, finish, fit, student
from erasekit.methods.registry import register
from erasekit.models.bundle import Bundle
from erasekit.models.groups import GROUPS


@dataclass
class SalUnConfig(LoopConfig):
    OPTIONS = ("gradient_checkpointing", "precision", "optimizer_bits", "memory_limit_gb")
    WHY_NOT = "it keeps no frozen teacher"
    METHOD_BYTES = 1.0  # the saliency mask m_S: a bool per weight
    GRAD_BATCHES = 2  # one batch of each of two conditionings through the student per step
    iterations: int = 600
    lr: float = 1e-5
    batch: int = 8
    group: str = "full"
    alpha: float = at_least(0.0, 0.5)  # weight of the retain term
    mask_ratio: float = 0.5  # share of the group's weights that train (the paper's threshold 0.5)
    mask_guidance: float = 7.5  # w of the saliency loss's guided prediction
    pool_size: int = at_least(1, 800)  # images of each erased concept (also the saliency pass's forget set)
    retain_size: int = at_least(1, 64)  # images of each retained concept
    template: str = "an image of a {}"
    vocab: str = ""  # the retain set when --preserve is empty: a vocabulary file, or world-objects on the miniature

    def needs_vocabulary(self, concepts) -> bool:
        """The retain set comes from the vocabulary when no preservation set is given (`retain_set`)."""
        return not concepts.preserve

    def check(self) -> None:
        super().check()
        check_choice(self.group, GROUPS, "parameter group")
        if not 0 < self.mask_ratio <= 1:
            raise ErasekitError(f"mask_ratio is the share of weights that train, in (0, 1]; got {self.mask_ratio}")


MINI = {"iterations": 100, "lr": 1e-3, "pool_size": 64, "retain_size": 16, "template": "a {}", "vocab": "world-objects"}


def retain_set(concepts: ConceptSet, vocab: str) -> list[str]:
    """The concepts SalUn keeps (and draws its random labels from)."""
    if concepts.preserve:
        return list(concepts.preserve)
    if not vocab:
        raise ErasekitError(
            "SalUn needs a retain set (its random labels and its retain term): give --preserve, "
            "or --set vocab=FILE, or vocab=world-objects on the miniature"
        )
    kept = load_vocabulary(vocab).without(concepts.erase)
    if not kept:
        raise ErasekitError(f"vocabulary {vocab!r} holds no concept besides the erased ones: nothing to retain")
    return kept


def saliency_mask(
    model: Bundle, params: dict[str, torch.nn.Parameter], x0: torch.Tensor, c_f: Conditioning, config: SalUnConfig
) -> dict[str, torch.Tensor]:
    """m_S: True where |Σ ∇ℓ_f| over one pass of the forget images is in the top `mask_ratio` of all weights."""
    empty = model.unconditional()
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in range(0, len(x0), config.batch):
        gen = step_generator(config.seed, i, stream=1)
        z0 = x0[i : i + config.batch]
        t = model.train_timesteps(len(z0), gen)
        eps = torch.randn(z0.shape, generator=gen).to(z0.device, z0.dtype)
        x_t = model.add_noise(z0, eps, t)
        out_c, out_u = model.eps(
            torch.cat([x_t, x_t]), torch.cat([t, t]), Conditioning.cat([c_f.expand(len(z0)), empty.expand(len(z0))])
        ).chunk(2)
        w = config.mask_guidance
        loss = -F.mse_loss(eps, (1 + w) * out_c - w * out_u)
        for n, g in zip(params, torch.autograd.grad(loss, list(params.values())), strict=True):
            grads[n] += g
    gamma = top_share_threshold(list(grads.values()), config.mask_ratio)  # the threshold γ of the top share
    return {n: g.abs() >= gamma for n, g in grads.items()}


def top_share_threshold(tensors: list[torch.Tensor], share: float) -> float:
    """γ: the k-th largest |value| over all `tensors`, k = round(share × their size) (at least 1), so that the
    values with |g| ≥ γ are the top `share`. Found by bisection on the bits of a float32 (non-negative floats
    order as their bit patterns): 31 counting passes, exact, and no concatenation of every gradient (a topk over
    a real UNet's 860M values would hold several copies of them)."""
    k = max(1, int(round(share * sum(t.numel() for t in tensors))))
    lo, hi = 0, 0x7F800000  # the bits of 0.0 and of +inf
    as_float = lambda bits: torch.tensor(bits, dtype=torch.int32).view(torch.float32).item()  # noqa: E731
    while lo < hi:
        mid = (lo + hi + 1) // 2
        count = sum(int((t.detach().abs().float() >= as_float(mid)).sum()) for t in tensors)
        lo, hi = (mid, hi) if count >= k else (lo, mid - 1)
    return as_float(lo)


@register(
    "salun",
    "SalUn: random-label unlearning of the weights most salient to forgetting (Fan 2024)",
    SalUnConfig,
    paper="arXiv:2310.12508",
    presets={"mini": MINI},
)
def erase(bundle: Bundle, concepts: ConceptSet, config: SalUnConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    kept = retain_set(concepts, config.vocab)
    model, params = student(bundle, config.group, config)
    with torch.no_grad():
        c_f = bundle.encode_prompts([config.template.format(c) for c in concepts.erase])
        c_r = bundle.encode_prompts([config.template.format(c) for c in kept])
    forget = [LatentPool(bundle, c, config.pool_size, seed=config.seed) for c in c_f]
    retain = [LatentPool(bundle, c, config.retain_size, seed=config.seed + 1) for c in c_r]
    mask = {}
    for k, pool in enumerate(forget):
        for n, m in saliency_mask(model, params, pool.z0, c_f[k], config).items():
            mask[n] = mask[n] | m if n in mask else m
    frozen = {n: ~m for n, m in mask.items()}  # bool: a byte per weight, where a float mask took four
    share = float(sum(m.sum() for m in mask.values()) / sum(m.numel() for m in mask.values()))
    del mask  # one mask is kept, not two

    def masked(name):
        def hook(p):
            p.grad.masked_fill_(frozen[name], 0.0)

        return hook

    hooks = [p.register_post_accumulate_grad_hook(masked(n)) for n, p in params.items()]

    def loss_fn(step: int):
        gen = step_generator(config.seed, step)
        k = int(torch.randint(0, len(forget), (1,), generator=gen))
        j, r = (int(v) for v in torch.randint(0, len(kept), (2,), generator=gen))
        x_f, t_f, _ = forget[k].draw(gen, config.batch)
        x_r, t_r, eps_r = retain[r].draw(gen, config.batch)
        b = len(x_f)
        with torch.no_grad():  # the random label's prediction, by the model being trained (official: .detach())
            target = model.eps(x_f, t_f, c_r[j].expand(b))
        out_f, out_r = model.eps(
            torch.cat([x_f, x_r]), torch.cat([t_f, t_r]), Conditioning.cat([c_f[k].expand(b), c_r[r].expand(b)])
        ).chunk(2)
        l_forget, l_retain = F.mse_loss(out_f, target), F.mse_loss(out_r, eps_r)
        return l_forget + config.alpha * l_retain, {"l_forget": l_forget.item(), "l_retain": l_retain.item()}

    try:
        rows = fit(
            "salun",
            loss_fn,
            params,
            config,
            run,  # the whole UNet trains: fused Adam halves its step
            optimizer=lambda ps, lr: torch.optim.Adam(ps, lr=lr, fused=True),
        )
    finally:
        for h in hooks:
            h.remove()
    edit = finish("salun", bundle, params, config, concepts.as_dict(), rows)
    edit.metrics["mask_share"] = share
    return edit
