"""What an attack is asked to do (`Goal`) and what it hands back (`AttackResult`).

The caller builds the Goal: the concept, the prompts that ask for it (each attacked prompt starts from one), the
judge that says whether an image shows it, the unedited model (reference images and targets come from it), and
for Ring-A-Bell prompt pairs with and without the concept. Attacks never import a judge themselves.

Seeds: image i of a prompt is evaluated with seed `seed + i` (as `erasekit generate` does, so the prompts replay).
While an attack runs it checks success on `seed + CHECK_OFFSET` instead, a seed the evaluation never uses: the
reported rates are on seeds the attack did not see.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.models.bundle import Bundle

CHECK_OFFSET = 1000  # attack-time checks use seed + 1000: held out from evaluation seeds seed .. seed + n - 1


@dataclass
class Goal:
    concept: str
    prompts: list[str]  # each one a starting point (UnlearnDiffAtk and P4D attack them one by one)
    seeds: list[int]  # each prompt's first seed
    detect: Callable[[torch.Tensor], torch.Tensor]  # images [B, 3, H, W] in [0, 1] -> [B] bool: concept seen
    base: Bundle | None = None  # the unedited model (reference images, P4D's targets); None: the attacked model
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (with the concept, without it): Ring-A-Bell
    images: torch.Tensor | None = None  # the user's images of the concept (concept inversion), [B, 3, H, W]
    steps: int = 25  # DDIM steps of every image an attack generates
    guidance: float = 5.0

    def __post_init__(self):
        if not self.prompts:
            raise ErasekitError(f"no prompt to attack for concept {self.concept!r}")
        if len(self.seeds) != len(self.prompts):
            raise ErasekitError(f"{len(self.prompts)} prompts but {len(self.seeds)} seeds")

    def check_seed(self, row: int) -> int:
        return self.seeds[row] + CHECK_OFFSET

    def reference(self, bundle: Bundle) -> Bundle:
        return self.base if self.base is not None else bundle

    def seen(self, bundle: Bundle, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        """[B] bool: does `bundle` draw the concept for these (prompt, seed) pairs."""
        images = bundle.generate(prompts, seeds, steps=self.steps, guidance=self.guidance)
        return self.detect(images).bool().cpu()


@dataclass
class AdversarialPrompt:
    row: int  # the goal prompt it attacks
    original: str
    prompt: str  # the adversarial prompt as text (with an embedding's word, where the attack learned one)
    seeds: list[int] | None = None  # seeds it is evaluated with (None: the evaluation's, seed .. seed + n - 1)
    loss: list[float] = field(default_factory=list)  # its loss history
    succeeded_at: int | None = None  # the iteration whose attack-time check first saw the concept
    seconds: float = 0.0


@dataclass
class AttackResult:
    attack: str
    concept: str
    config: dict
    prompts: list[AdversarialPrompt]
    embedding: Edit | None = None  # the learned word (a token edit), for attacks that end in soft tokens
    seconds: float = 0.0
    weights: Edit | None = None  # the attacked model's own weights, changed (relearning): applied to the edited model
    stages: dict[int, Edit] = field(default_factory=dict)  # the weights after each budget of steps (a curve)

    def attacked(self, edited: Bundle) -> Bundle:
        """The model the adversarial prompts run on: `edited` with the attack's changed weights and learned word."""
        model = self.weights.apply(edited) if self.weights is not None else edited
        return self.embedding.apply(model) if self.embedding is not None else model

    def prompts_csv(self, seeds: list[int]) -> str:
        """prompts.csv: what `erasekit generate --prompts` replays (`evaluation_seed` is each row's first seed)."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(
            ["prompt", "evaluation_seed", "original", "row", "concept", "final_loss", "succeeded_at", "seconds"]
        )
        for p in self.prompts:
            first = p.seeds[0] if p.seeds else seeds[p.row]
            writer.writerow(
                [
                    p.prompt,
                    first,
                    p.original,
                    p.row,
                    self.concept,
                    f"{p.loss[-1]:.6g}" if p.loss else "",
                    "" if p.succeeded_at is None else p.succeeded_at,
                    f"{p.seconds:.2f}",
                ]
            )
        return buf.getvalue()


def mention(prompt: str, concept: str) -> re.Match | None:
    """Where `prompt` names `concept` as a whole word (or phrase)."""
    return re.search(rf"(?<![\w-]){re.escape(concept)}(?![\w-])", prompt, flags=re.IGNORECASE)


def candidate_ids(bundle: Bundle, vocab: str) -> torch.Tensor:
    """The token ids a hard-token search draws from: the whole-word tokens (those that end a word, so that the
    found prompt's text tokenizes back to the tokens found) of the tokenizer, or of a named vocabulary or
    vocabulary file (`core.vocab`): on the miniature only its own words were ever trained."""
    from erasekit.core.vocab import load_vocabulary
    from erasekit.models.words import word_ids

    text = bundle.text
    if not vocab:
        words = text.word_ids()
    else:
        special = {text.bos_id, text.eos_id, text.pad_id}
        ids = word_ids(bundle, load_vocabulary(vocab).concepts)
        words = [i for i, t in zip(ids, text.tokens(ids), strict=True) if text.whole_word(t) and i not in special]
    if not words:
        raise ErasekitError(f"vocabulary {vocab!r} gives no whole-word token of {bundle.source}'s tokenizer to search")
    return torch.tensor(words)
