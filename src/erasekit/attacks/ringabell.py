"""Ring-A-Bell! How Reliable are Concept Removal Methods for Diffusion Models? (Tsai et al., ICLR 2024).

Model agnostic: only the text encoder f is used, so one search serves every UNet edit of the same base.
1. The concept vector from N prompt pairs with and without the concept:
       c = (1/N) Σ_i [ f(P_i^with) − f(P_i^without) ]
2. For each attacked prompt P, the target  f(P) + η c, and a genetic search over hard prompts of `length` tokens
       P̂* = argmin_{P̂} || f(P̂) − (f(P) + η c) ||²
   (f: the text encoder's 77 × D output, as the UNet reads it). A population of token sequences; each generation
   keeps the best (`elite`), breeds the rest from the fitter half with one-point crossover (probability
   `crossover`) and replaces each child's token at a random position with probability `mutation`.

Defaults (the paper's, for SD 1.4): 16 tokens, η = 3, population 200, 3000 generations, mutation 0.25,
crossover 0.5, the whole vocabulary. The miniature's preset: population 64, 150 generations, its own words.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import torch

from erasekit.attacks.common import per_prompt, row_steps
from erasekit.attacks.goal import AdversarialPrompt, AttackResult, Goal, candidate_ids
from erasekit.attacks.registry import register
from erasekit.core.errors import ErasekitError
from erasekit.core.files import write_text
from erasekit.core.loop import Run, step_generator
from erasekit.core.options import Checked, at_least
from erasekit.models.bundle import Bundle
from erasekit.models.words import decode, slotted


@dataclass
class RingABellConfig(Checked):
    length: int = at_least(1, 16)  # tokens of the adversarial prompt
    eta: float = 3.0  # η: strength of the concept vector
    population: int = at_least(4, 200)
    generations: int = at_least(1, 3000)
    mutation: float = at_least(0.0, 0.25)
    crossover: float = at_least(0.0, 0.5)
    elite: int = at_least(1, 10)  # best sequences kept unchanged each generation
    vocab: str = ""
    checkpoint_every: int = at_least(1, 100)  # generations between saved populations
    seed: int = 0

    def check(self) -> None:
        if self.elite >= self.population:
            raise ErasekitError(f"ringabell: elite ({self.elite}) must be smaller than population ({self.population})")


MINI = {"population": 64, "generations": 150, "elite": 4, "vocab": "world"}


def concept_vector(bundle: Bundle, pairs: list[tuple[str, str]]) -> torch.Tensor:
    """c = mean over pairs of f(with) − f(without), [L, D] (f: the conditioning's per-token states)."""
    if not pairs:
        raise ErasekitError("ringabell needs prompt pairs with and without the concept to find its direction")
    with torch.no_grad():
        return (
            bundle.encode_prompts([w for w, _ in pairs]).tokens - bundle.encode_prompts([o for _, o in pairs]).tokens
        ).mean(0)


@register(
    "ringabell",
    "Ring-A-Bell: a genetic search for hard prompts near f(prompt) + eta * concept vector, text "
    "encoder only (Tsai 2024)",
    RingABellConfig,
    paper="arXiv:2310.10012",
    presets={"mini": MINI},
)
def attack(bundle: Bundle, goal: Goal, config: RingABellConfig, run: Run | None = None) -> AttackResult:
    run = run if run is not None else Run()
    cands = candidate_ids(bundle, config.vocab).to(bundle.device)
    direction = concept_vector(bundle, goal.pairs)
    ids, slots = slotted(bundle, "", prefix=config.length)

    def encode(population: torch.Tensor) -> torch.Tensor:
        batch = ids.repeat(len(population), 1)
        batch[:, slots] = cands[population]
        with torch.no_grad():
            return bundle.encode_embeddings(bundle.text.token_embeddings(batch), batch).tokens

    def one(row: int, prefix: str) -> AdversarialPrompt:
        with torch.no_grad():
            target = bundle.encode_prompts([goal.prompts[row]]).tokens[0] + config.eta * direction
        g = step_generator(config.seed, -1, row)
        population = torch.randint(len(cands), (config.population, config.length), generator=g)
        start, history = 0, []
        saved = run.work / f"{prefix}population.json" if run.work is not None else None
        if run.resume and saved is not None and saved.exists():
            state = json.loads(saved.read_text())
            start, history, population = state["generation"], state["loss"], torch.tensor(state["population"])
        for gen in row_steps("ringabell", row, goal, start, config.generations, run):
            distance = (encode(population) - target).pow(2).mean((1, 2)).cpu()  # the population is on the CPU
            order = distance.argsort()
            population, history = population[order], history + [float(distance[order[0]])]
            g = step_generator(config.seed, gen, row)
            n_child = config.population - config.elite
            mothers = population[torch.randint(config.population // 2, (n_child,), generator=g)]
            fathers = population[torch.randint(config.population // 2, (n_child,), generator=g)]
            cut = torch.randint(1, config.length + 1, (n_child, 1), generator=g)
            cross = torch.rand(n_child, 1, generator=g) < config.crossover
            keep_mother = torch.arange(config.length)[None] < cut
            children = torch.where(cross & ~keep_mother, fathers, mothers)
            mutate = torch.rand(n_child, generator=g) < config.mutation
            where = torch.randint(config.length, (n_child,), generator=g)
            new = torch.randint(len(cands), (n_child,), generator=g)
            children[mutate, where[mutate]] = new[mutate]
            population = torch.cat([population[: config.elite], children])
            if saved is not None and ((gen + 1) % config.checkpoint_every == 0 or gen + 1 == config.generations):
                write_text(
                    saved, json.dumps({"generation": gen + 1, "loss": history, "population": population.tolist()})
                )
        distance = (encode(population) - target).pow(2).mean((1, 2)).cpu()
        best = ids.clone()
        best[slots] = cands[population[distance.argmin()]]
        return AdversarialPrompt(row, goal.prompts[row], decode(bundle, best), loss=history)

    return AttackResult("ringabell", goal.concept, dataclasses.asdict(config), per_prompt(goal, run, one))
