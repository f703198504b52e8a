"""UCE and TIME: closed-form edits of the cross-attention key/value projections.

For every attn2 projection W (to_k and to_v), with c the text embeddings of a concept (from its last word token
to the end, aligned between source and target as the official UCE code does), UCE (Gandikota et al., WACV 2024;
the talk's Eq. 5) solves

    min_W  Σ_{c_i ∈ E} ||W c_i − v*_i||² + Σ_{c_j ∈ P} ||W c_j − W_0 c_j||² + λ ||W − W_0||²_F

whose minimiser is (the talk's Eq. 6)

    W = (λ W_0 + s_e Σ v*_i c_iᵀ + s_p Σ W_0 c_j c_jᵀ) (λ I + s_e Σ c_i c_iᵀ + s_p Σ c_j c_jᵀ)⁻¹

- erase: v*_i = W_0 c_t, c_t the target (the empty prompt by default, or a guide concept: `--target`, or with
  `guide=nearest` the vocabulary's concept nearest c_e, the miniature's default);
- edit: the same with a named target (circle -> square);
- debias: v*_i = W_0 (c_i + Σ_t α_t a_t), a_t = c("{attribute} {concept}") − c(concept); α is found by judging
  generated images and moving each α_t toward an equal share (UCE's iterative debiasing), with the attribute
  prompts themselves in P so that "a red star" stays red. Each concept prompt has its own α and is balanced on
  its own. The judge may know classes beyond the attributes (the miniature's judge knows every colour): an image
  of none of the attributes counts for none. The update is a Robbins–Monro stochastic approximation,
  α_t ← α_t + γ_k (1/T − share_t) with γ_k = γ_0 / (k + 1)^κ, 1/2 < κ ≤ 1: the judged shares switch from one
  attribute to another within a narrow band of α (guidance makes each sample commit to one colour), and a fixed
  step jumps across that band back and forth, while a decaying one settles inside it. The round kept is the one
  whose shares are nearest uniform in total variation.

Families: every one. On the UNet families (SD 1.x/2.x, SDXL) the projections are the cross-attention keys and
values; on SD3 and FLUX they are the two layers that read the conditioning itself, the context embedder (the per-token
states) and the pooled text's embedder, as the official uce_flux_edit.py edits them (every joint block reads the text
stream only after it has mixed with the image), with the text positions of T5, whose sequence ends SD3's and FLUX's
conditioning.

TIME (Orgad et al., ICCV 2023) is the same objective with no preservation set (only the λ ||W − W_0||² term
keeps the rest).

Solve: the right-hand matrix is symmetric positive definite (λ > 0 is the ridge regulariser), so W is found by a
Cholesky solve in float64, never by an explicit inverse. λ = 0.1 is the default of the official code's
`edit_model` function; both official command lines (the older train-scripts and the current
trainscripts/uce_sd_erase.py) default to `--lamb 0.5`. Erase and preserve scales 1.

Which text positions are edited (`tokens`): the official `edit_model` (the code this module reproduces to 1e-5 in
float64) uses every position from the last word token to the end of the context, aligned between source and
target (`to-end`); the current official trainscripts/uce_sd_erase.py uses one vector per prompt, the last word
token (`last`). The README's "UCE: which official version" gives the measurements behind the default.
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
from erasekit.models.bundle import Bundle
from erasekit.models.groups import cross_attention_layers

MODES = ("erase", "edit", "debias")
TOKENS = ("to-end", "last")


@dataclass
class UCEConfig(Checked):
    mode: str = "erase"  # erase | edit (needs a target) | debias (needs attributes and a scorer)
    lamb: float = 0.1  # λ: ridge pull toward W_0
    erase_scale: float = 1.0  # s_e
    preserve_scale: float = 1.0  # s_p
    templates: tuple = ("{}",)
    tokens: str = "to-end"  # which text positions are edited: to-end (edit_model) | last (uce_sd_erase.py)
    guide: str = ""  # "" (--target, else the empty prompt) | nearest (the vocab concept nearest c_e; see guide.py)
    vocab: str = ""  # guide=nearest: a vocabulary file, or world-objects on the miniature
    attributes: tuple = ()  # debias: attribute words, e.g. colours
    debias_rounds: int = at_least(1, 40)
    debias_samples: int = at_least(1, 48)  # images judged per round
    debias_step: float = 0.5  # γ_0: α_t += γ_k (1/T − share_t), γ_k = γ_0 / (k + 1)^κ
    debias_decay: float = 0.6  # κ, in (1/2, 1] for the Robbins–Monro conditions Σ γ_k = ∞, Σ γ_k² < ∞
    debias_tolerance: float = 0.1  # stop when each prompt's shares are this close to uniform (total variation)
    steps: int = at_least(1, 25)  # DDIM steps of the images debias judges
    guidance: float = 5.0
    seed: int = 0

    def check(self) -> None:
        check_choice(self.mode, MODES, "UCE mode")
        check_choice(self.tokens, TOKENS, "tokens")
        check_guide(self.guide, self.vocab)
        if self.lamb <= 0:
            raise ErasekitError(f"lamb (λ) must be > 0 for a well-posed solve, got {self.lamb}")
        if self.mode == "debias" and len(self.attributes) < 2:
            raise ErasekitError("debias needs at least two attributes (--set attributes=yellow,red,blue,green)")
        if not 0.5 < self.debias_decay <= 1.0 or self.debias_step <= 0:
            raise ErasekitError(
                f"debias needs debias_step > 0 and debias_decay in (0.5, 1], got "
                f"{self.debias_step} and {self.debias_decay}"
            )


@dataclass
class TIMEConfig(Checked):
    lamb: float = 0.1
    erase_scale: float = 1.0
    templates: tuple = ("{}",)
    tokens: str = "to-end"  # as UCE's
    guide: str = ""  # as UCE's
    vocab: str = ""

    def check(self) -> None:
        check_choice(self.tokens, TOKENS, "tokens")
        check_guide(self.guide, self.vocab)
        if self.lamb <= 0:
            raise ErasekitError(f"lamb (λ) must be > 0 for a well-posed solve, got {self.lamb}")


MINI = {"templates": ("{}", "a {}"), "guide": "nearest", "vocab": "world-objects"}


# ---- embeddings -------------------------------------------------------------------------------------------
@torch.no_grad()
def aligned(bundle: Bundle, source: str, target: str, tokens: str = "to-end") -> tuple[dict, dict]:
    """The embeddings UCE maps, of each prompt, by the kind of input that reads them: {"tokens": C [n, d]} the
    conditioning's per-token states at the prompt's last word token (the empty prompt's first token), and with
    `tokens="to-end"` every position after it to the end of that encoder's sequence, cut to the same length
    (UCE's alignment in the official `edit_model`); `tokens="last"` keeps the last word token alone (n = 1, the
    official trainscripts/uce_sd_erase.py and uce_flux_edit.py). Positions are those of the text encoder whose
    sequence ends the conditioning (CLIP's on SD and SDXL, T5's on SD3 and FLUX, as uce_flux_edit.py). Families
    with a pooled vector also give {"pooled": [1, p]}."""
    text = bundle.tail_text
    last = [max(0, min(text.count(p), text.max_length) - 2) for p in (source, target)]  # start, words, end
    cond = bundle.encode_prompts([source, target])
    emb = cond.tokens[:, cond.length - text.max_length :].double()
    n = 1 if tokens == "last" else emb.shape[1] - max(last)
    out = ({"tokens": emb[0, last[0] : last[0] + n]}, {"tokens": emb[1, last[1] : last[1] + n]})
    if cond.pooled is not None:
        out[0]["pooled"], out[1]["pooled"] = cond.pooled[:1].double(), cond.pooled[1:].double()
    return out


def projections(bundle: Bundle) -> dict[str, tuple[torch.nn.Linear, str]]:
    """Every projection UCE edits, by edit name, with the kind of embedding it reads: a UNet's cross-attention keys
    and values (the per-token states); an MMDiT's context embedder (the per-token states) and the pooled text's
    embedder, the two layers that read the conditioning itself (uce_flux_edit.py edits those: every joint block
    reads the text stream only after it has mixed with the image)."""
    out, prefix = {}, bundle.DENOISER
    if bundle.DENOISER == "transformer":
        model = bundle.denoiser
        out[f"{prefix}.context_embedder.weight"] = (model.context_embedder, "tokens")
        out[f"{prefix}.time_text_embed.text_embedder.linear_1.weight"] = (
            model.time_text_embed.text_embedder.linear_1,
            "pooled",
        )
        return out
    for name, attn in cross_attention_layers(bundle.denoiser):
        out[f"{prefix}.{name}.to_k.weight"] = (attn.to_k, "tokens")
        out[f"{prefix}.{name}.to_v.weight"] = (attn.to_v, "tokens")
    return out


def solve(
    W0: torch.Tensor,
    erase: list[tuple[torch.Tensor, torch.Tensor]],
    preserve: list[torch.Tensor],
    lamb: float,
    erase_scale: float = 1.0,
    preserve_scale: float = 1.0,
) -> torch.Tensor:
    """Eq. 6 for one projection. `erase`: (C_i [n, d], V*_i [n, out]); `preserve`: C_j [n, d]."""
    W0 = W0.double()
    d = W0.shape[1]
    M1, M2 = lamb * W0.clone(), lamb * torch.eye(d, dtype=torch.float64, device=W0.device)
    for C, V in erase:
        M1 += erase_scale * V.T @ C
        M2 += erase_scale * C.T @ C
    for C in preserve:
        M1 += preserve_scale * (C @ W0.T).T @ C
        M2 += preserve_scale * C.T @ C
    L = torch.linalg.cholesky(M2)  # M2 = L Lᵀ is SPD; W M2 = M1  <=>  M2 Wᵀ = M1ᵀ
    return torch.cholesky_solve(M1.T, L).T


def closed_form(
    bundle: Bundle,
    targets: list[tuple[dict, dict]],
    preserved: list[dict],
    lamb: float,
    erase_scale: float,
    preserve_scale: float,
) -> dict[str, torch.Tensor]:
    """New weights for every projection: each source embedding C_i is mapped to W_0 applied to its target
    embedding (v*_i = W_0 c_t), each preserved embedding C_j keeps W_0 C_j (each projection reading its kind)."""
    out = {}
    for name, (proj, kind) in projections(bundle).items():
        W0 = proj.weight.detach().double()
        erase = [(C[kind], T[kind] @ W0.T) for C, T in targets]
        out[name] = solve(W0, erase, [P[kind] for P in preserved], lamb, erase_scale, preserve_scale).to(
            proj.weight.dtype
        )
    return out


def kept(bundle: Bundle, prompts: list[str], tokens: str = "to-end") -> list[dict]:
    return [aligned(bundle, p, p, tokens)[0] for p in prompts]


# ---- the methods ------------------------------------------------------------------------------------------
def _pairs(concepts: ConceptSet, templates) -> list[tuple[str, str]]:
    target_prompts = [t.format(concepts.target) if concepts.target else "" for t in templates]
    return [(t.format(c), target_prompts[i]) for c in concepts.erase for i, t in enumerate(templates)]


@register(
    "uce",
    "UCE: closed-form edit of cross-attention keys/values: erase, edit (c_e -> c_t), debias",
    UCEConfig,
    paper="arXiv:2308.14761",
    presets={"mini": MINI},
    scorer=lambda config: "attributes" if config.mode == "debias" else None,
)
def erase(bundle: Bundle, concepts: ConceptSet, config: UCEConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    if config.mode == "edit" and not concepts.target:
        raise ErasekitError("UCE edit maps a concept onto a target: give --target (e.g. --target square)")
    preserved = expand(concepts.preserve, config.templates)
    if config.mode == "debias":
        tensors, alphas, shares = debias(bundle, concepts, config, run, preserved)
        edit = Edit.from_changes(bundle, tensors, "uce", config, concepts.as_dict())
        edit.metrics.update({"debias_alpha": alphas, "debias_shares": shares})
        return edit
    concepts = guided(bundle, concepts, config.guide, config.vocab)
    targets = [aligned(bundle, s, t, config.tokens) for s, t in _pairs(concepts, config.templates)]
    tensors = closed_form(
        bundle, targets, kept(bundle, preserved, config.tokens), config.lamb, config.erase_scale, config.preserve_scale
    )
    return Edit.from_changes(bundle, tensors, "uce", config, concepts.as_dict())


@register(
    "time",
    "TIME: closed-form key/value edit without a preservation set (Orgad 2023)",
    TIMEConfig,
    paper="arXiv:2303.08084",
    presets={"mini": MINI},
)
def erase_time(bundle: Bundle, concepts: ConceptSet, config: TIMEConfig, run: Run | None = None) -> Edit:
    run = run if run is not None else Run()
    if concepts.preserve:
        raise ErasekitError("TIME has no preservation set (its only regulariser is λ||W − W0||²); use uce")
    concepts = guided(bundle, concepts, config.guide, config.vocab)
    targets = [aligned(bundle, s, t, config.tokens) for s, t in _pairs(concepts, config.templates)]
    tensors = closed_form(bundle, targets, [], config.lamb, config.erase_scale, 0.0)
    return Edit.from_changes(bundle, tensors, "time", config, concepts.as_dict())


def debias(bundle: Bundle, concepts: ConceptSet, config: UCEConfig, run: Run, preserved: list[str]):
    """Search α (one row per concept prompt) so that the judged attribute shares of each prompt's images become
    equal. Returns the edit's tensors and the best round's α and shares, by prompt and attribute."""
    from tqdm.auto import tqdm

    if run.scorer is None:
        raise ErasekitError("UCE debias judges generated images: it needs an attribute scorer (run.scorer)")
    attrs = list(config.attributes)
    T = len(attrs)
    sources, attr_prompts, directions = [], [], []
    for c in concepts.erase:
        for t in config.templates:
            pairs = [aligned(bundle, t.format(c), t.format(f"{a} {c}"), config.tokens) for a in attrs]
            sources.append(t.format(c))
            attr_prompts += [t.format(f"{a} {c}") for a in attrs]
            directions.append(({}, {}))  # c_i and the a_t, per kind of embedding
            for kind in pairs[0][0]:
                n = min(len(C[kind]) for C, _ in pairs)
                directions[-1][0][kind] = pairs[0][0][kind][:n]
                directions[-1][1][kind] = torch.stack([A[kind][:n] - C[kind][:n] for C, A in pairs])
    keep = kept(bundle, preserved + attr_prompts, config.tokens)
    alpha = torch.full((len(sources), T), 1.0 / T, dtype=torch.float64)  # one α per concept prompt
    seeds = list(range(10_000 + config.seed, 10_000 + config.seed + config.debias_samples))
    best = (float("inf"), None, None, None)
    edited = bundle.clone((bundle.DENOISER,), changes=projections(bundle).__contains__)  # each round overwrites them
    bar = tqdm(range(config.debias_rounds), desc="uce debias", disable=not run.progress)
    for k in bar:
        targets = [
            (C, {kind: C[kind] + torch.einsum("t,tnd->nd", alpha_i, a[kind]) for kind in C})  # c_i + Σ α_t a_t
            for (C, a), alpha_i in zip(directions, alpha, strict=True)
        ]
        tensors = closed_form(bundle, targets, keep, config.lamb, config.erase_scale, config.preserve_scale)
        shares = _shares(edited, tensors, sources, seeds, config, run.scorer, T)
        distance = float(_distance(shares).max())
        if distance < best[0]:
            best = (distance, tensors, alpha.clone(), shares)
        bar.set_postfix(distance=f"{distance:.2f}", max_share=f"{float(shares.max()):.2f}")
        if distance <= config.debias_tolerance:
            break
        alpha = alpha + config.debias_step / (k + 1) ** config.debias_decay * (1.0 / T - shares)
    _, tensors, alpha, shares = best
    alphas = {p: dict(zip(attrs, r.tolist(), strict=True)) for p, r in zip(sources, alpha, strict=True)}
    shares = {
        p: dict(zip(attrs, r.tolist(), strict=True)) | {"other": 1.0 - float(r.sum())}
        for p, r in zip(sources, shares, strict=True)
    }
    return tensors, alphas, shares


def _distance(shares: torch.Tensor) -> torch.Tensor:
    """Each prompt's total-variation distance from the goal: 1/T for each attribute, nothing for other classes.
    (The largest single gap would stay at 1/T as long as one attribute never shows, however close the rest.)"""
    T = shares.shape[1]
    return 0.5 * ((shares - 1.0 / T).abs().sum(1) + (1.0 - shares.sum(1)))


@torch.no_grad()
def _shares(edited: Bundle, tensors, prompts, seeds, config, scorer, T) -> torch.Tensor:
    """[prompts, T] for `edited` with `tensors` copied in: the share of each prompt's images that the scorer assigns to each attribute. Each prompt
    is balanced on its own: pooled over prompts, "star" all red and "a star" all yellow would look balanced.
    The scorer's columns after the T attributes are other classes: an image whose best class is one of them
    counts for no attribute."""
    params = dict(edited.named_parameters())
    for name, value in tensors.items():
        params[name].copy_(value)
    shares = torch.zeros(len(prompts), T, dtype=torch.float64)
    for i, prompt in enumerate(prompts):
        images = edited.generate([prompt] * len(seeds), seeds, steps=config.steps, guidance=config.guidance)
        probs = torch.as_tensor(scorer(images))
        shares[i] = torch.bincount(probs.argmax(1), minlength=probs.shape[1])[:T].double() / len(seeds)
    return shares
