"""MACE: Mass Concept Erasure (Lu et al., CVPR 2024), in its three stages.

1. Closed-form cross-attention refinement (CFR): in prompts that hold the concept ("a photo of a ship"), the
   co-existing words and the padding carry the concept too (the text encoder is causal). For every template p,
   pair the positions the prompt p(c) shares with p(anchor) (the common prefix and suffix, then the padding, as the
   official `find_matching_indices`) and solve, per key/value projection,

       W' = argmin Σ ||W e_old − W₀ e_new||² + λ ||W − W₀||²    (UCE's closed form, methods/uce.solve)

   e_old the embeddings of p(c) at those positions, e_new those of p(anchor) ("ground" in the official object
   configs; `--target` here, else the empty prompt).
2. One rank-r LoRA per concept on the refined model's cross-attention keys and values, trained so that the
   concept's tokens (and the pooled end-of-text token) receive no attention inside the concept's segmentation
   mask: L = Σ_layers ||A_l[x_t, p(c)] at the concept's positions and the mask's pixels||₂, t drawn by the paper's
   concept-focal importance sampling f(t) ∝ σ(0.05 (t − 200)) − σ(0.05 (t − 400)).
3. Closed-form fusion: one set of projections that does what every LoRA does on its own concept's prompts,
   W* = argmin Σ_i Σ_p ||W e_p^i − W_i e_p^i||² + λ ||W − W'||² (all 77 positions of each prompt).

Defaults: the official object configs (configs/object/erase_*.yaml): rank 1, lr 1e-5 (AdamW, weight decay 0.01),
50 steps per LoRA, batch 1, λ = 1000 in both closed forms, no preservation cache, importance sampling on. The
masks come from the caller (`run.scorer`, `masks=world`): the miniature renders the concept with its exact pixels,
where the official code segments generated images with Grounded-SAM. `masks=""` trains on the base model's own
images with attention over every pixel (the official `use_gsam_mask: false`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run, step_generator
from erasekit.core.options import at_least, check_choice
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.latents import LatentPool
from erasekit.methods.loop import LoopConfig, fit
from erasekit.methods.registry import register
from erasekit.methods.uce import projections, solve
from erasekit.models.attention import UNET_FAMILIES, WHY_UNET, AttentionProbe, token_positions
from erasekit.models.bundle import Bundle
from erasekit.models.groups import cross_attention_layers
from erasekit.models.lora import add_adapters

MASKS = ("", "world")
TEMPLATES = (
    "{}",
    "a photo of {}",
    "an image of {}",
    "a picture of {}",
    "a drawing of {}",
    "a painting of {}",
    "a snapshot of {}",
    "a rendering of {}",
    "an illustration of {}",
    "{} in a photo",
)


@dataclass
class MACEConfig(LoopConfig):
    OPTIONS = ("precision", "optimizer_bits")
    WHY_NOT = (
        "its LoRAs train on the frozen UNet's attention maps, with no student copy or teacher, and its backward "
        "stays inside the attention layers, which the memory guard's trace does not model"
    )
    iterations: int = 50  # LoRA steps per concept
    lr: float = 1e-5
    batch: int = 1
    rank: int = at_least(1, 1)
    weight_decay: float = at_least(0.0, 0.01)
    lamb: float = at_least(0.0, 1e3)  # λ of the refinement and of the fusion
    use_pooler: bool = True
    importance_sampling: bool = True
    masks: str = ""  # "" (every pixel) | world (the miniature's exact masks, through run.scorer)
    pool_size: int = at_least(1, 8)  # images of each concept
    templates: tuple = TEMPLATES

    def check(self) -> None:
        super().check()
        check_choice(self.masks, MASKS, "MACE masks")


MINI = {
    "iterations": 50,
    "lr": 5e-3,
    "batch": 8,
    "rank": 1,
    "masks": "world",
    "pool_size": 64,
    "templates": ("{}", "a {}", "a photo of a {}", "an image of a {}", "a picture of a {}"),
}


def matching_positions(old: list[int], new: list[int], length: int) -> tuple[list[int], list[int]]:
    """Positions of `old` and `new` (token ids with BOS/EOS) that hold the same words: the common prefix and suffix,
    then the padding after each up to `length`, cut to the same count."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    i, j = len(old) - 1, len(new) - 1
    while i >= start and j >= start and old[i] == new[j]:
        i, j = i - 1, j - 1
    a = list(range(start)) + list(range(i + 1, len(old)))
    b = list(range(start)) + list(range(j + 1, len(new)))
    pad = length - max(len(old), len(new))
    a += list(range(len(old), len(old) + pad))
    b += list(range(len(new), len(new) + pad))
    return a, b


@torch.no_grad()
def refinement_pairs(bundle: Bundle, concept: str, anchor: str, templates) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(e_old [n, d], e_new [n, d]) per template: stage 1's source and target embeddings."""
    out, length = [], bundle.text.max_length
    for t in templates:
        old_p, new_p = t.format(concept), " ".join(t.format(anchor).split())
        ids = bundle.text.unpadded([old_p, new_p])
        a, b = matching_positions(ids[0], ids[1], length)
        emb = bundle.encode_prompts([old_p, new_p]).tokens.double()
        out.append((emb[0, a], emb[1, b]))
    return out


def focal_timesteps(n: int) -> torch.Tensor:
    """p(t) ∝ σ(0.05 (t − 200)) − σ(0.05 (t − 400)), t < n: the paper's concept-focal importance sampling."""
    t = torch.arange(n, dtype=torch.float64)
    f = torch.sigmoid(0.05 * (t - 200)) - torch.sigmoid(0.05 * (t - 400))
    return f / f.sum()


def train_lora(refined: Bundle, concept: str, config: MACEConfig, run: Run, index: int) -> dict[str, torch.Tensor]:
    """Stage 2 for one concept: the refined projections with its trained LoRA merged, by edit name."""
    model = refined.clone((refined.DENOISER,), changes=lambda name: False)  # LoRA adds; the UNet is shared
    names = [f"{n}.{p}" for n, _ in cross_attention_layers(model.denoiser) for p in ("to_k", "to_v")]
    layers = add_adapters(model, config.rank, names, config.seed + index)
    params = {f"{n}.{ab}": getattr(m, ab)["default"].weight for n, m in layers.items() for ab in ("lora_A", "lora_B")}
    prompts = [t.format(concept) for t in config.templates]
    with torch.no_grad():
        conds = refined.encode_prompts(prompts)
        if config.masks:
            if run.scorer is None:
                raise ErasekitError("MACE with masks=world needs the segmented images (run.scorer)")
            x, masks = run.scorer(concept, config.pool_size, config.seed + index)
            z0 = refined.encode_images(x)
        else:
            z0 = LatentPool(refined, refined.encode_prompts([concept]), config.pool_size, seed=config.seed).z0
            masks = None
    positions = token_positions(refined, prompts, [concept] * len(prompts), config.use_pooler)
    p_t = focal_timesteps(refined.scheduler.config.num_train_timesteps) if config.importance_sampling else None
    probe = AttentionProbe(model.denoiser)

    def loss_fn(step: int):
        gen = step_generator(config.seed + 7919 * index, step)
        idx = torch.randint(0, len(z0), (config.batch,), generator=gen)
        k = int(torch.randint(0, len(prompts), (1,), generator=gen))
        if p_t is None:
            t = torch.randint(0, refined.scheduler.config.num_train_timesteps, (config.batch,), generator=gen)
        else:
            t = torch.multinomial(p_t, config.batch, replacement=True, generator=gen)
        noise = torch.randn(z0[idx].shape, generator=gen).to(z0.device, z0.dtype)
        x_t = refined.add_noise(z0[idx], noise, t.to(z0.device))
        probe.watch(positions[k][None].expand(len(idx), -1), None if masks is None else masks[idx])
        model.model_output(x_t, t, conds[k].expand(len(idx)))
        return probe.sum_of_norms()

    try:
        work = None if run.work is None else run.work / f"lora-{index}"  # each LoRA checkpoints on its own
        fit(
            f"mace-lora-{index}",
            loss_fn,
            params,
            config,
            replace(run, work=work, until=None),
            optimizer=lambda ps, lr: torch.optim.AdamW(ps, lr=lr, weight_decay=config.weight_decay),
        )
    finally:
        probe.close()
    base = projections(refined)
    return {
        name: (proj.weight + layers[name[len("unet.") : -len(".weight")]].get_delta_weight("default")).detach()
        for name, (proj, _) in base.items()
    }


@register(
    "mace",
    "MACE: closed-form refinement, one attention LoRA per concept, closed-form fusion (Lu 2024)",
    MACEConfig,
    paper="arXiv:2403.06135",
    presets={"mini": MINI},
    families=UNET_FAMILIES,
    why=WHY_UNET,
    scorer=lambda config: "segmented-images" if config.masks == "world" else None,
)
def erase(bundle: Bundle, concepts: ConceptSet, config: MACEConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    anchor = concepts.anchor_prompt
    # stage 1: closed-form refinement of the co-existing words' keys and values
    pairs = [p for c in concepts.erase for p in refinement_pairs(bundle, c, anchor, config.templates)]
    refined_w = {}
    for name, (proj, _) in projections(bundle).items():
        W0 = proj.weight.detach().double()
        refined_w[name] = solve(W0, [(old, new @ W0.T) for old, new in pairs], [], config.lamb).to(proj.weight.dtype)
    refined = Edit.from_changes(bundle, refined_w, "mace", config, concepts.as_dict()).apply(bundle)
    # stage 2: one LoRA per concept; stage 3: fuse them in closed form
    fused = []
    for i, concept in enumerate(concepts.erase):
        merged = train_lora(refined, concept, config, run, i)
        with torch.no_grad():
            emb = refined.encode_prompts([t.format(concept) for t in config.templates]).tokens.double()
        fused.append((emb.reshape(-1, emb.shape[-1]), merged))
    tensors = {}
    for name, (proj, _) in projections(refined).items():
        W1 = proj.weight.detach().double()
        targets = [(C, C @ merged[name].double().T) for C, merged in fused]
        tensors[name] = solve(W1, targets, [], config.lamb).to(proj.weight.dtype)
    edit = Edit.from_changes(bundle, tensors, "mace", config, concepts.as_dict())
    edit.metrics["iterations_run"] = config.iterations * len(concepts.erase)
    return edit
