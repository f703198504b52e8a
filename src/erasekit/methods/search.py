"""The concept search that AP and AGE share: a vocabulary, the concepts nearest c_e, a Gumbel-softmax π over them.

- R is drawn from a vocabulary (`core.vocab.load_vocabulary`): a file, or a named one such as the miniature's
  `world` lexicon.
- `candidates(...)`: the `k_closest` concepts to c_e by L2 distance between the text encoder's outputs (the whole
  [L, d] sequence, flattened, as the official code measures it), without c_e and, when asked, its synonyms;
  optionally reduced to `num_centers` by k-means on those embeddings (the member nearest each centre). The
  official code clusters the 1-D distances instead; clustering the embeddings keeps concepts that are equally far
  from c_e but far from each other.
- `gumbel_softmax(...)`: a sample of the relaxed distribution over R (talk Eq. 11); hard: the straight-through
  one-hot (Eq. 12), soft: the top-k entries of the relaxed sample renormalised (AGE's mixture of targets).
- `ConceptSearch`: the logits of π for each erased concept and their own Adam *ascent* (the official code uses
  Adam at `gumbel_lr`), with the moments kept as buffers so that a checkpoint resumes the search exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from erasekit.core.conditioning import Conditioning
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run, step_generator
from erasekit.core.options import at_least, check_choice
from erasekit.core.vocab import Vocabulary, load_vocabulary
from erasekit.methods.concepts import expand
from erasekit.methods.latents import SPACES, ZSampler
from erasekit.methods.loop import LoopConfig, finish, fit, student
from erasekit.models.bundle import Bundle
from erasekit.models.groups import GROUPS


@torch.no_grad()
def encode_concepts(bundle: Bundle, words: list[str], chunk: int = 256) -> Conditioning:
    """The conditioning of N words, `chunk` at a time."""
    return Conditioning.cat([bundle.encode_prompts(words[i : i + chunk]) for i in range(0, len(words), chunk)])


def kmeans_representatives(x: torch.Tensor, k: int, seed: int, rounds: int = 25) -> list[int]:
    """Indices of the rows nearest each of `k` k-means centres of `x` [N, D] (k-means++ start, seeded)."""
    gen = torch.Generator("cpu").manual_seed(seed)
    x = x.double().cpu()
    centres = [int(torch.randint(0, len(x), (1,), generator=gen))]
    for _ in range(1, k):
        d2 = torch.cdist(x, x[centres]).min(dim=1).values ** 2
        centres.append(int(torch.multinomial(d2 / d2.sum(), 1, generator=gen)) if d2.sum() > 0 else len(centres))
    c = x[centres].clone()
    for _ in range(rounds):
        assign = torch.cdist(x, c).argmin(dim=1)
        for j in range(k):
            if (assign == j).any():
                c[j] = x[assign == j].mean(dim=0)
    dist = torch.cdist(c, x)
    chosen: list[int] = []
    for j in range(k):  # the nearest member not already taken, so k distinct concepts come back
        for i in dist[j].argsort().tolist():
            if i not in chosen:
                chosen.append(i)
                break
    return chosen


def text_distances(bundle: Bundle, words: list[str], targets: list[str]) -> torch.Tensor:
    """[len(words), len(targets)]: L2 distances between the text encoder's outputs (the whole [L, d] sequence,
    flattened, as the official AP/AGE code measures them)."""
    target = encode_concepts(bundle, targets).tokens.flatten(1).float()
    return torch.cat(
        [
            torch.cdist(encode_concepts(bundle, words[i : i + 256]).tokens.flatten(1).float(), target)
            for i in range(0, len(words), 256)
        ]
    )


def candidates(
    bundle: Bundle,
    concept: str,
    vocab: Vocabulary,
    k_closest: int,
    num_centers: int = 0,
    exclude_synonyms: bool = True,
    seed: int = 0,
    also_exclude=(),
) -> tuple[list[str], Conditioning]:
    """R for one erased concept: (names, their conditioning, R of them), nearest first. `also_exclude`: more
    concepts to leave out (with their synonyms when `exclude_synonyms`)."""
    words = vocab.without((concept, *also_exclude), exclude_synonyms)
    if not words:
        raise ErasekitError(
            f"the vocabulary has no concept besides {', '.join(map(repr, (concept, *also_exclude)))} "
            "and their synonyms to search"
        )
    dist = text_distances(bundle, words, [concept])[:, 0]
    order = dist.argsort()[:k_closest].tolist()
    words = [words[i] for i in order]
    emb = encode_concepts(bundle, words)
    if 0 < num_centers < len(words):
        keep = sorted(kmeans_representatives(emb.tokens.flatten(1), num_centers, seed))  # nearest first again
        words, emb = [words[i] for i in keep], emb[keep]
    return words, emb


def gumbel_softmax(
    logits: torch.Tensor, temperature: float, hard: bool, topk: int, generator: torch.Generator
) -> torch.Tensor:
    """A relaxed sample y of the categorical softmax(logits) (talk Eq. 11), differentiable in `logits`.

    hard: one-hot at argmax y forward, the gradient of y backward (straight-through, Eq. 12).
    soft: y restricted to its `topk` largest entries and renormalised (exactly `topk` non-zero entries)."""
    u = torch.rand(logits.shape, generator=generator).to(logits.device, logits.dtype)
    g = -torch.log(-torch.log(u + 1e-10) + 1e-10)
    y = torch.softmax((logits + g) / temperature, dim=-1)
    if hard:
        one_hot = torch.zeros_like(y).scatter_(-1, y.argmax(dim=-1, keepdim=True), 1.0)
        return (one_hot - y).detach() + y
    k = min(topk, y.shape[-1])
    mask = torch.zeros_like(y).scatter_(-1, y.topk(k, dim=-1).indices, 1.0)
    y = y * mask
    return y / y.sum(dim=-1, keepdim=True)


class ConceptSearch(torch.nn.Module):
    """π over R_i for each erased concept i: logits, sampling, the embedding of a sample, and Adam ascent."""

    def __init__(
        self,
        names: list[list[str]],
        embeddings: list[Conditioning],
        lr: float,
        temperature: float,
        hard: bool,
        topk: int,
    ):
        super().__init__()
        self.names, self.embeddings = names, embeddings  # not state: rebuilt identically from the vocabulary
        self.lr, self.temperature, self.hard, self.topk = lr, temperature, hard, topk
        width = max(len(n) for n in names)
        self.logits = torch.nn.Parameter(torch.zeros(len(names), width))  # uniform π (the official init)
        self.register_buffer("m", torch.zeros(len(names), width))
        self.register_buffer("v", torch.zeros(len(names), width))
        self.register_buffer("t", torch.zeros(len(names)))

    def _row(self, i: int) -> torch.Tensor:
        return self.logits[i, : len(self.names[i])]

    def sample(self, i: int, generator: torch.Generator) -> torch.Tensor:
        """Weights over R_i (differentiable in the logits)."""
        return gumbel_softmax(self._row(i), self.temperature, self.hard, self.topk, generator)

    def embed(self, i: int, weights: torch.Tensor) -> Conditioning:
        """The searched concept's conditioning Σ_j w_j E_j, a batch of one (π stays on the CPU)."""
        return Conditioning.mix(weights, self.embeddings[i])

    @torch.no_grad()
    def ascend(self, i: int, grad: torch.Tensor, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        """One Adam step *up* the gradient of the objective for row i."""
        n = len(self.names[i])
        g = grad[i, :n] if grad.dim() == 2 else grad
        self.t[i] += 1
        self.m[i, :n] = betas[0] * self.m[i, :n] + (1 - betas[0]) * g
        self.v[i, :n] = betas[1] * self.v[i, :n] + (1 - betas[1]) * g * g
        m_hat = self.m[i, :n] / (1 - betas[0] ** self.t[i])
        v_hat = self.v[i, :n] / (1 - betas[1] ** self.t[i])
        self.logits[i, :n] += self.lr * m_hat / (v_hat.sqrt() + eps)

    def climb(self, i: int, generator: torch.Generator, steps: int, gain) -> None:
        """`steps` ascent steps of π_i on `gain(c)`, the objective at the searched conditioning c (one), each at
        a fresh Gumbel sample (the inner max of AP's Algorithm 1 and of AGE)."""
        for _ in range(steps):
            objective = gain(self.embed(i, self.sample(i, generator)))
            self.ascend(i, torch.autograd.grad(objective, self.logits)[0])

    @torch.no_grad()
    def top(self, i: int, k: int = 3) -> list[tuple[str, float]]:
        """The k most likely concepts of π_i with their probabilities."""
        p = torch.softmax(self._row(i), dim=-1)
        values, idx = p.topk(min(k, len(p)))
        return [(self.names[i][j], float(v)) for v, j in zip(values.tolist(), idx.tolist(), strict=True)]

    def log(self, i: int) -> dict:
        """What the run logs per step: argmax of π and the top 3 as [[concept, weight], ...] (the loop stores it as
        JSON; `core.loop.read_log` reads it back)."""
        top = self.top(i)
        return {"searched": top[0][0], "top3": [[w, round(p, 3)] for w, p in top]}


@dataclass
class SearchConfig(LoopConfig):
    """What AP and AGE share: the output-space objective with a searched concept (talk Eqs. 8–14)."""

    group: str = "xattn"
    lam: float = 1.0  # λ, the weight of the searched concept's term
    negative_guidance: float = 0.0  # η in the erase term's target ε(c) − η (ε(c_e) − ε(c)); 0: the paper's equation
    space: str = "x0"  # where predictions are compared: x0 (the official code) | eps
    vocab: str = ""  # "world" (the miniature's lexicon) or a file, one concept per line
    k_closest: int = at_least(1, 1000)
    num_centers: int = at_least(0, 0)  # k-means representatives of the k_closest (0: keep them all)
    exclude_synonyms: bool = True  # R leaves out c_e's synonyms as well as c_e
    gumbel_lr: float = 1e-2
    gumbel_temperature: float = 2.0
    gumbel_hard: bool = True
    gumbel_topk: int = at_least(1, 2)  # entries of the soft sample (gumbel_hard = false)
    pgd_steps: int = at_least(0, 2)  # ascent steps of π before each model step
    ddim_steps: int = at_least(1, 50)
    start_guidance: float = 3.0
    templates: tuple = ("{}",)

    def needs_vocabulary(self, concepts) -> bool:
        """The search is over the vocabulary: always (checked before any work)."""
        return True

    def check(self) -> None:
        super().check()
        check_choice(self.group, GROUPS, "parameter group")
        check_choice(self.space, SPACES, "space")
        if not self.gumbel_temperature > 0:
            raise ErasekitError(f"gumbel_temperature must be > 0, got {self.gumbel_temperature}")


def build_search(bundle: Bundle, erased: list[str], config: SearchConfig) -> ConceptSearch:
    """R for each erased concept (talk Eq. 10's neighbourhood) and π over it."""
    vocab = load_vocabulary(config.vocab)
    found = [
        candidates(bundle, c, vocab, config.k_closest, config.num_centers, config.exclude_synonyms, config.seed)
        for c in erased
    ]
    return ConceptSearch(
        [w for w, _ in found],
        [e for _, e in found],
        config.gumbel_lr,
        config.gumbel_temperature,
        config.gumbel_hard,
        config.gumbel_topk,
    )


@dataclass
class SearchStep:
    """One step's draws: the erased prompt k (of concept i), z_t for it and for the searched concept, t, and the
    generator of the step's Gumbel noise."""

    k: int
    i: int
    z_e: torch.Tensor
    z_s: torch.Tensor
    t: torch.Tensor
    gen: torch.Generator


@dataclass
class Setup:
    """What AP and AGE build before their loop: the student, π, the erased prompts' conditioning and z_t source."""

    model: Bundle
    params: dict
    search: ConceptSearch
    conds: Conditioning
    sample_z: ZSampler

    def step(self, step: int, config: SearchConfig) -> SearchStep:
        """z_t of c_e and of the current searched concept, from the same initial noise and stop (as the official
        code draws them). Both come once per step: the π ascent steps reuse them (the official code redraws)."""
        k, stop_at, seeds = self.sample_z.draw(step)
        i = k // len(config.templates)
        gen = step_generator(config.seed, step, stream=2)
        z_e, t = self.sample_z.trajectory(self.conds[k], stop_at, seeds)
        with torch.no_grad():
            c_s = self.search.embed(i, self.search.sample(i, gen))
        z_s, _ = self.sample_z.trajectory(c_s, stop_at, seeds)
        return SearchStep(k, i, z_e, z_s, t, gen)

    def log(self, concepts, s: SearchStep, l1: torch.Tensor, l2: torch.Tensor) -> dict:
        """A step's log row: the erased concept, both terms, π's argmax and top 3."""
        return {"erased": concepts.erase[s.i], "l_erase": l1.item(), "l_preserve": l2.item(), **self.search.log(s.i)}


def variant_search(bundle: Bundle, variants: list[list[str]], config: SearchConfig) -> ConceptSearch:
    """π over a given set C_i for each erased concept i (talk Eq. 17's target or attribute variants), not over a
    vocabulary's neighbourhood."""
    with torch.no_grad():
        embeddings = [encode_concepts(bundle, names) for names in variants]
    return ConceptSearch(
        variants, embeddings, config.gumbel_lr, config.gumbel_temperature, config.gumbel_hard, config.gumbel_topk
    )


def prepare(bundle: Bundle, concepts, config: SearchConfig, search: ConceptSearch | None = None) -> Setup:
    """The student, π (over the vocabulary's neighbourhood of each erased concept unless `search` is given), the
    erased prompts' conditioning and the z_t source."""
    model, params = student(bundle, config.group, config)
    search = search or build_search(bundle, concepts.erase, config)
    with torch.no_grad():
        conds = bundle.encode_prompts(expand(concepts.erase, config.templates))
        uncond = bundle.unconditional()
    return Setup(model, params, search, conds, ZSampler(model, bundle, conds, uncond, config))


def run_search(name: str, bundle: Bundle, setup: Setup, loss_fn, config: SearchConfig, concepts, run: Run) -> Edit:
    """The common loop with π checkpointed beside the model; the Edit keeps π's final top 3 per erased concept."""
    rows = fit(name, loss_fn, setup.params, config, run, state={"search": setup.search}, teacher=bundle)
    edit = finish(name, bundle, setup.params, config, concepts.as_dict(), rows)
    edit.metrics["searched"] = {
        c: [[w, round(p, 4)] for w, p in setup.search.top(i)] for i, c in enumerate(concepts.erase)
    }
    return edit
