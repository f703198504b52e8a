"""CCE: Circumventing Concept Erasure Methods for Text-to-Image Generative Models (Pham et al., ICLR 2024).

Concept inversion is textual inversion (Gal et al. 2022) run against the *edited* model: a new word S* of
`tokens` vectors v is learned from images of the concept with the latent diffusion loss

    v* = argmin_v  E_{z_0, ε ~ N(0, I), t} || ε − ε_θ'(z_t, t, c(template(S*); v)) ||²

where ε_θ' is the erased model (frozen) and only v trains. If the erasure only cut the route from the concept's
words to the concept, another word finds it again. The images are the user's, or the unedited model's images of
the goal prompts that its judge sees the concept in (CCE and the Dark Miner paper keep the images that score
highest for the concept). The word starts from the concept's own token embeddings, as CCE's `initializer_token`.

Defaults (the official repository's scripts for SD 1.4): 25 images, batch 4 × 4 gradient accumulation (batch 16
here), 5000 steps, lr 5e-3 scaled by the batch (--scale_lr: 0.08), constant schedule, the textual-inversion
object templates. The miniature's preset: 400 steps, lr 5e-3, batch 8, 64 images.
The adversarial prompts are the goal prompts with S* in place of the concept's name (or in front, when a prompt
does not name it: the implicit concept's indirect phrasings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from erasekit.attacks.common import losses, reference_latents
from erasekit.attacks.goal import AdversarialPrompt, AttackResult, Goal, mention
from erasekit.attacks.registry import register
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run, step_generator, train
from erasekit.core.options import Checked, at_least
from erasekit.models.bundle import Bundle
from erasekit.models.words import splice, with_words

TI_TEMPLATES = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a dark photo of the {}",
    "a photo of my {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a good photo of a {}",
)


@dataclass
class InversionConfig(Checked):
    tokens: int = at_least(1, 1)  # vectors of the learned word
    images: int = at_least(1, 25)  # reference images to learn from
    iterations: int = at_least(1, 5000)
    lr: float = 0.08
    batch: int = at_least(1, 16)
    templates: tuple = TI_TEMPLATES
    initializer: str = ""  # the word the vectors start from (default: the concept)
    word: str = ""  # the learned word's name (default: <concept*>)
    grad_clip: float = at_least(0.0, 0.0)
    checkpoint_every: int = at_least(1, 100)
    seed: int = 0

    def check(self) -> None:
        if not all("{}" in t for t in self.templates):
            raise ErasekitError("every inversion template needs a {} for the learned word")


MINI = {"iterations": 400, "lr": 5e-3, "batch": 8, "images": 64, "templates": ("{}", "a {}")}


def word_name(concept: str, given: str = "") -> str:
    return given or "<" + re.sub(r"\W+", "-", concept.strip()).strip("-") + "*>"


@register(
    "inversion",
    "CCE: textual inversion of a new word on the edited model (Pham 2024)",
    InversionConfig,
    paper="arXiv:2308.01508",
    presets={"mini": MINI},
    ends_in="embedding",
)
def attack(bundle: Bundle, goal: Goal, config: InversionConfig, run: Run | None = None) -> AttackResult:
    run = run if run is not None else Run()
    name = word_name(goal.concept, config.word)
    init_word = config.initializer or goal.concept
    with torch.no_grad():
        v0 = bundle.text.token_embeddings(torch.tensor(bundle.text.ids(init_word))).mean(0)
    v = torch.nn.Parameter(v0.detach().clone().repeat(config.tokens, 1))
    z0 = reference_latents(bundle, goal, config.images, "inversion")
    spelled = with_words(bundle, {name: config.tokens})  # tokenizes the templates with the word in them
    word_ids = torch.tensor(spelled.text.token_ids(spelled.meta["words"][name]))
    ids = spelled.tokenize([t.format(name) for t in config.templates]).cpu()  # the main encoder's
    slots = [(row == word_ids[:, None]).any(0).nonzero().flatten().tolist() for row in ids]
    ids = ids.masked_fill(torch.isin(ids, word_ids), bundle.text.eos_id)  # slots: filled by splice

    def loss_fn(step: int):
        g = step_generator(config.seed, step)
        pick = torch.randint(len(z0), (config.batch,), generator=g)
        k = torch.randint(len(ids), (config.batch,), generator=g)
        t = bundle.train_timesteps(config.batch, g)
        noise = torch.randn(z0[pick].shape, generator=g).to(bundle.device, z0.dtype)
        embeds = torch.cat([splice(bundle, ids[i], slots[i], v) for i in k.tolist()])
        cond = bundle.encode_embeddings(embeds, ids[k])  # other encoders: the template without the word
        z_t = bundle.add_noise(z0[pick], noise, t)
        return F.mse_loss(bundle.eps(z_t, t, cond), noise)

    rows = train(
        "inversion", loss_fn, [v], config.iterations, config.lr, run, config.grad_clip, config.checkpoint_every
    )
    edit = Edit.from_changes(bundle, {name: v.detach()}, "inversion", config, {"concept": goal.concept}, kind="tokens")
    edit.metrics["final_loss"] = float(rows[-1]["loss"]) if rows else None
    history = losses(rows)
    prompts = [
        AdversarialPrompt(r, p, _with_word(p, goal.concept, name), loss=history if r == 0 else [])
        for r, p in enumerate(goal.prompts)
    ]
    return AttackResult("inversion", goal.concept, edit.config, prompts, embedding=edit)


def _with_word(prompt: str, concept: str, name: str) -> str:
    found = mention(prompt, concept)
    if found is None:
        return f"{name} {prompt}"
    return prompt[: found.start()] + name + prompt[found.end() :]
