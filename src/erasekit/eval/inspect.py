"""The model-diff inspector (talk Eq. 19): which concepts did a fine-tune θ → θ' change, without being told?

    max_{c_t ∈ C} [ ||ε_θ'(c_e) − ε_θ(c_t)||² + λ ||ε_θ'(c_t) − ε_θ(c_t)||² ]                       (Eq. 19)
                    └──────────── L1 ────────────┘     └──────────── L2 ─────────────┘

- C is a vocabulary (`core.vocab`): the miniature's lexicon, or a file of concepts.
- Every concept is scored on the same `probes` noisy latents z_t: K DDIM trajectories of the *base* model under
  the empty prompt, stopped at K evenly spaced steps (one seed each). Both models see the same (z_t, t), so
  their difference is the edit's alone; the probes are shared by every concept, so a concept costs 2K denoiser
  passes.
- Blind (no c_e): each concept is its own c_e, Eq. 19 becomes (1 + λ) L2, and the ranking is by the output-space
  change L2(c) = mean ||ε_θ'(z_t, c) − ε_θ(z_t, c)||², whatever λ is.
- With c_e: L1 + λ L2 for every c_t; λ trades "what c_e now draws is far from c_t" (L1) for "c_t itself changed"
  (L2). Both terms are reported.
- Exhaustive when the vocabulary is small (`exhaustive_max` concepts: the miniature's 41 words, a few thousand on
  SD); otherwise the Gumbel-softmax search of `methods/search.py` ascends π over the vocabulary on the Eq. 19
  objective, and its `shortlist` most likely concepts are then scored exactly. (Its embeddings of the whole
  vocabulary stay in memory: ~0.24 MB a concept on SD 1.x.)
- A concept's prompts are its `templates`; its scores are the means over them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from erasekit.core.conditioning import Conditioning
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import step_generator
from erasekit.core.vocab import Vocabulary
from erasekit.eval.generate import generate_batched
from erasekit.methods.search import ConceptSearch, encode_concepts
from erasekit.models.bundle import Bundle

SEARCHES = ("auto", "exhaustive", "gumbel")


@dataclass
class InspectConfig:
    lam: float = 0.0  # λ of Eq. 19
    probes: int = 16  # K: shared noisy latents every concept is scored on
    steps: int = 25  # DDIM steps of the probe trajectories (the probes stop at K evenly spaced ones)
    templates: tuple = ("{}",)
    search: str = "auto"  # auto | exhaustive | gumbel
    exhaustive_max: int = 5000  # auto: exhaustive up to this many concepts
    gumbel_iterations: int = 100
    gumbel_probes: int = 4  # probes per ascent step (a random subset, fresh each step)
    gumbel_lr: float = 0.1
    gumbel_temperature: float = 1.0
    shortlist: int = 20  # gumbel: π's most likely concepts scored exactly
    batch: int = 64  # (concept, probe) pairs per UNet batch, at most twice the model's `image_batch`
    seed: int = 0

    def check(self) -> None:
        if self.search not in SEARCHES:
            raise ErasekitError(f"unknown inspector search {self.search!r}; valid: {', '.join(SEARCHES)}")
        if self.probes < 1 or self.steps < 1 or self.batch < 1 or self.shortlist < 1:
            raise ErasekitError("probes, steps, batch and shortlist must be >= 1")
        if not self.lam >= 0:
            raise ErasekitError(f"λ must be >= 0, got {self.lam}")
        if not self.templates or any("{}" not in t for t in self.templates):
            raise ErasekitError("every inspector template needs a '{}' for the concept")


@dataclass
class Row:
    concept: str
    score: float  # Eq. 19's objective (blind: L2)
    l2: float  # ||ε_θ'(c) − ε_θ(c)||², the output-space change
    l1: float | None = None  # ||ε_θ'(c_e) − ε_θ(c)||² (only with c_e)
    delta: float | None = None  # the judge-measured δ, where a judge exists


@dataclass
class Inspection:
    rows: list[Row]  # ranked, highest score first
    config: InspectConfig
    erased: str | None = None  # c_e, when given
    searched: str = "exhaustive"
    vocabulary_size: int = 0

    def top(self, k: int) -> list[str]:
        return [r.concept for r in self.rows[:k]]


def check_pair(base: Bundle, edited: Bundle) -> None:
    """θ and θ' must be comparable: the same family, latent shape and conditioning width."""
    if base.family != edited.family:
        raise ErasekitError(
            f"the two models are of different families ({base.family} vs {edited.family}): inspect "
            "compares fine-tunes of one architecture"
        )
    if base.latent_shape != edited.latent_shape:
        raise ErasekitError(
            f"the two models' latents differ ({base.latent_shape} vs {edited.latent_shape}): "
            "inspect compares fine-tunes of one architecture"
        )
    a, b = base.conditioning_width, edited.conditioning_width
    if a != b:
        raise ErasekitError(
            f"the two models' text encoders differ in width ({a} vs {b}): inspect compares "
            "fine-tunes of one architecture"
        )


@torch.no_grad()
def probe_latents(base: Bundle, config: InspectConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """K probes (z_t [K, C, h, w], t [K]): the base model's empty-prompt sampling trajectories, probe j from seed
    `seed + j` stopped after j·steps/K steps (the first probe is pure noise at the first timestep)."""
    uncond = base.unconditional()
    times = base.sampling_timesteps(config.steps)
    zs = [
        base.sample(
            uncond, [config.seed + j], steps=config.steps, guidance=1.0, stop_at=j * config.steps // config.probes
        )
        for j in range(config.probes)
    ]
    ts = times[[j * config.steps // config.probes for j in range(config.probes)]]
    return torch.cat(zs), ts.to(base.device)


def _eps_all(model: Bundle, conds: Conditioning, z: torch.Tensor, t: torch.Tensor, batch: int) -> torch.Tensor:
    """ε(z_j, t_j, c_i) for every concept i and probe j: [N, K, C, h, w]."""
    n, k = len(conds), len(z)
    ii, jj = torch.arange(n).repeat_interleave(k), torch.arange(k).repeat(n)  # pair p = (concept p // k, probe p % k)
    out = [
        model.eps(z[jj[s : s + batch]], t[jj[s : s + batch]], conds[ii[s : s + batch]]).float()
        for s in range(0, n * k, batch)
    ]
    return torch.cat(out).reshape(n, k, *z.shape[1:])


@torch.no_grad()
def score_concepts(
    base: Bundle,
    edited: Bundle,
    concepts: list[str],
    probes,
    config: InspectConfig,
    erased: str | None = None,
    progress: bool = False,
) -> list[Row]:
    """Eq. 19's terms for each concept (means over probes, elements and templates), in the order given."""
    z, t = probes
    e_ce = None
    if erased is not None:
        e_ce = torch.stack(
            [
                edited.eps(z, t, edited.encode_prompts([tpl.format(erased)]).expand(len(z))).float()
                for tpl in config.templates
            ]
        )  # [T, K, ...]
    l1 = torch.zeros(len(concepts), dtype=torch.float64)
    l2 = torch.zeros(len(concepts), dtype=torch.float64)
    batch = min(config.batch, 2 * base.image_batch)
    chunk = max(1, batch // len(z))
    bar = tqdm(total=len(concepts) * len(config.templates), desc="inspect", disable=not progress)
    for k, tpl in enumerate(config.templates):
        for s in range(0, len(concepts), chunk):
            prompts = [tpl.format(c) for c in concepts[s : s + chunk]]
            e_base = _eps_all(base, base.encode_prompts(prompts), z, t, batch)
            e_edit = _eps_all(edited, edited.encode_prompts(prompts), z, t, batch)
            l2[s : s + chunk] += (e_edit - e_base).pow(2).flatten(1).mean(1).double().cpu()
            if e_ce is not None:
                l1[s : s + chunk] += (e_ce[k][None] - e_base).pow(2).flatten(1).mean(1).double().cpu()
            bar.update(len(prompts))
    bar.close()
    l1, l2 = l1 / len(config.templates), l2 / len(config.templates)
    if erased is None:
        return [Row(c, float(b), float(b)) for c, b in zip(concepts, l2, strict=True)]
    return [Row(c, float(a + config.lam * b), float(b), float(a)) for c, a, b in zip(concepts, l1, l2, strict=True)]


def gumbel_shortlist(
    base: Bundle,
    edited: Bundle,
    concepts: list[str],
    probes,
    config: InspectConfig,
    erased: str | None = None,
    progress: bool = False,
) -> list[str]:
    """π's `shortlist` most likely concepts after ascending Eq. 19 (blind: L2) over the whole vocabulary with the
    Gumbel-softmax relaxation of `methods/search.py`: a straight-through one-hot sample per step (talk Eq. 12), so
    the objective is always that of a real concept, on a fresh random subset of `gumbel_probes` probes."""
    z, t = probes
    with torch.no_grad():
        emb = encode_concepts(base, [config.templates[0].format(c) for c in concepts])
        c_e = edited.encode_prompts([config.templates[0].format(erased)]) if erased is not None else None
    search = ConceptSearch([concepts], [emb], config.gumbel_lr, config.gumbel_temperature, hard=True, topk=1)

    def gain(c):  # Eq. 19 at the searched conditioning c (a batch of one), on a few probes
        with torch.no_grad():
            ce = edited.eps(zb, tb, c_e.expand(len(zb))).float() if c_e is not None else None
        cb = c.expand(len(zb))
        e_base = base.eps(zb, tb, cb).float()
        l2 = (edited.eps(zb, tb, cb).float() - e_base).pow(2).mean()
        if ce is None:
            return l2
        return (ce - e_base).pow(2).mean() + config.lam * l2

    per_step = max(1, min(len(z), config.gumbel_probes))
    for step in tqdm(range(config.gumbel_iterations), desc="inspect: gumbel search", disable=not progress):
        gen = step_generator(config.seed, step, stream=3)
        pick = torch.randperm(len(z), generator=gen)[:per_step]
        zb, tb = z[pick], t[pick]
        search.climb(0, gen, 1, gain)
    return [w for w, _ in search.top(0, min(config.shortlist, len(concepts)))]


def inspect_models(
    base: Bundle,
    edited: Bundle,
    vocab: Vocabulary,
    config: InspectConfig | None = None,
    erased: str | None = None,
    progress: bool = False,
) -> Inspection:
    """The vocabulary ranked by Eq. 19 (blind when `erased` is None): exhaustive or by the Gumbel search."""
    config = config if config is not None else InspectConfig()
    config.check()
    check_pair(base, edited)
    if erased is not None and not erased.strip():
        raise ErasekitError("empty c_e: give the concept the edit is known to change, or leave it out")
    concepts = list(dict.fromkeys(vocab.concepts))
    if not concepts:
        raise ErasekitError("the inspector's vocabulary holds no concept")
    how = config.search
    if how == "auto":
        how = "exhaustive" if len(concepts) <= config.exhaustive_max else "gumbel"
    probes = probe_latents(base, config)
    scored = concepts
    if how == "gumbel":
        scored = gumbel_shortlist(base, edited, concepts, probes, config, erased, progress)
    rows = score_concepts(base, edited, scored, probes, config, erased, progress)
    rows.sort(key=lambda r: -r.score)
    return Inspection(rows, config, erased, how, len(concepts))


@dataclass
class Shown:
    """One concept's images from both models (same prompts and seeds) and, where the judge has a probe for it,
    the judge-measured δ = mean S(θ, c) − S(θ', c) with its standard error over the seeds."""

    concept: str
    prompts: list[str]
    base: torch.Tensor
    edited: torch.Tensor
    delta: float | None = None
    se: float | None = None


def judged(
    base: Bundle,
    edited: Bundle,
    concepts: list[str],
    n: int,
    probe=None,
    judge=None,
    steps: int = 25,
    guidance: float = 5.0,
    template: str = "a {}",
    progress: bool = False,
) -> list[Shown]:
    """Images of each concept from θ and θ' on seeds 0..n−1, and the judge's δ where `probe(concept, n)` (the
    world's `world.vocab.probe`) gives the judge's prompts, head and label; elsewhere the prompt is `template`."""
    probes = [probe(c, n) if probe is not None and judge is not None else None for c in concepts]
    prompts = [
        list(p.prompts) if p is not None else [template.format(c)] * n for c, p in zip(concepts, probes, strict=True)
    ]
    flat, seeds = [q for ps in prompts for q in ps], list(range(n)) * len(concepts)
    images = [
        generate_batched(
            m, flat, seeds, steps=steps, guidance=guidance, desc=f"inspect: {name} images" if progress else None
        )
        for m, name in ((base, "base"), (edited, "edited"))
    ]
    scores = [judge.score(batch) for batch in images] if any(p is not None for p in probes) else None
    out = []
    for i, (c, p) in enumerate(zip(concepts, probes, strict=True)):
        rows = slice(i * n, (i + 1) * n)
        shown = Shown(c, prompts[i], images[0][rows], images[1][rows])
        if p is not None:
            a, b = (s.probability(p.head, p.label)[rows] for s in scores)
            diff = (a - b).double()
            shown.delta = float(diff.mean())
            shown.se = float(diff.std() / n**0.5) if n > 1 else 0.0
        out.append(shown)
    return out


def attach(ins: Inspection, shown: list[Shown]) -> None:
    """Put the judge's δ of the shown concepts into the ranked rows."""
    by = {s.concept: s for s in shown}
    for r in ins.rows:
        if r.concept in by:
            r.delta = by[r.concept].delta


def table_csv(ins: Inspection) -> str:
    """The ranked table: rank, concept, Eq. 19's score, L2, L1 (with c_e), the judge's δ (where measured)."""
    fmt = lambda v: "" if v is None else f"{v:.6g}"  # noqa: E731
    lines = ["rank,concept,score,l2_change,l1,judge_delta"]
    lines += [
        f'{i + 1},"{r.concept}",{fmt(r.score)},{fmt(r.l2)},{fmt(r.l1)},{fmt(r.delta)}' for i, r in enumerate(ins.rows)
    ]
    return "\n".join(lines) + "\n"


def shown_judge(base: Bundle):
    """(probe, judge) that score the concepts shown in the report (the judge's δ): the world's, on the miniature;
    (None, None) elsewhere, where the report shows images without a judge's figure."""
    from erasekit.eval.registries import world_of

    own = world_of(base)
    if own is None or "probe" not in own.world:
        return None, None
    return own.world["probe"](), own.load(None, base.device)
