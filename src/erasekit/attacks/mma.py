"""MMA-Diffusion's text attack (Yang et al., CVPR 2024): a GCG token search for a prompt of free tokens whose
sentence embedding is the concept prompt's, with the concept's words banned.

Model agnostic: only the text encoder f is used (its pooled sentence vector: CLIP's final state at the end token),
so one search serves every denoiser edit of the same base. For each attacked prompt P (the target), a prompt of
`tokens` free tokens x is sought:

    x* = argmin_x  L(x) = 1 − cos( f(x), f(P) )

by Greedy Coordinate Gradient (Zou et al. 2023), as the official textual_attack.py runs it:
1. the gradient of L with respect to the one-hot token choices e_x [tokens, V] (each row normalised);
2. the `topk` tokens of largest negative gradient at every position (banned tokens never among them);
3. `candidates` single-token swaps, spread evenly over the positions, each a random one of its position's top-k;
4. every candidate is encoded and the one of lowest loss becomes the current prompt (even when worse: GCG's
   keep_control); the best prompt seen is the result.

Banned: every token whose text contains one of the banned words as a substring (the official sensitive-word
filter), here the concept's own words and `banned`. Candidates are whole-word tokens (`goal.candidate_ids`), so
the found prompt's text tokenizes back to the tokens searched.

Defaults (the official script and README for SD 1.4): 20 tokens, top-k 256, 512 candidates per step, 1000 steps,
a random start. The miniature's preset: 8 tokens, top-k 32, 128 candidates, 100 steps, its own words.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F

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
class MMAConfig(Checked):
    tokens: int = at_least(1, 20)  # free tokens of the adversarial prompt
    topk: int = at_least(1, 256)  # tokens kept per position from the gradient
    candidates: int = at_least(1, 512)  # single-token swaps evaluated per step
    iterations: int = at_least(1, 1000)
    banned: tuple = ()  # words banned besides the concept's own (substrings of a token ban it)
    vocab: str = ""  # the tokens searched: the whole tokenizer, or a named vocabulary or file
    checkpoint_every: int = at_least(1, 50)
    seed: int = 0


MINI = {"tokens": 8, "topk": 32, "candidates": 128, "iterations": 100, "vocab": "world"}


def allowed(bundle: Bundle, vocab: str, banned: list[str]) -> torch.Tensor:
    """The searched token ids, less every token whose text contains a banned word."""
    cands = candidate_ids(bundle, vocab)
    texts = bundle.text.tokens(cands.tolist())
    words = [w.lower() for w in banned if w.strip()]
    keep = [i for i, t in zip(cands.tolist(), texts, strict=True) if not any(w in t.lower() for w in words)]
    if not keep:
        raise ErasekitError(f"mma: the banned words {words} leave no token of vocabulary {vocab or 'the tokenizer'}")
    return torch.tensor(keep)


@register(
    "mma",
    "MMA-Diffusion: a GCG token search matching the concept prompt's sentence embedding, its words banned (Yang 2024)",
    MMAConfig,
    paper="arXiv:2311.17516",
    presets={"mini": MINI},
)
def attack(bundle: Bundle, goal: Goal, config: MMAConfig, run: Run | None = None) -> AttackResult:
    run = run if run is not None else Run()
    banned = [*goal.concept.split(), *config.banned]
    cands = allowed(bundle, config.vocab, banned).to(bundle.device)
    ids, slots = slotted(bundle, "", prefix=config.tokens)
    table = bundle.text.token_embeddings(cands[None])[0].detach()  # [V, D]
    base = bundle.text.token_embeddings(ids[None]).detach()  # [1, L, D]

    def loss_of(control: torch.Tensor, embeds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = bundle.text.sentence(spelled(control), embeds)  # the ids say where CLIP's end token is: they must be
        return 1 - F.cosine_similarity(out.float(), target.float().expand_as(out), dim=-1, eps=1e-6)  # the real ones

    def spelled(control: torch.Tensor) -> torch.Tensor:  # control [B, tokens] indices into cands -> ids [B, L]
        out = ids.repeat(len(control), 1)
        out[:, slots] = cands[control.to(cands.device)]
        return out

    def embed(control: torch.Tensor) -> torch.Tensor:
        out = base.expand(len(control), -1, -1).clone()
        out[:, slots] = table[control]
        return out

    def one(row: int, prefix: str) -> AdversarialPrompt:
        with torch.no_grad():
            target = bundle.text.sentence(bundle.text.tokenize([goal.prompts[row]]))
        g = step_generator(config.seed, -1, row)
        control = torch.randint(len(cands), (config.tokens,), generator=g)
        best, best_loss, start, history = control.clone(), float("inf"), 0, []
        saved = run.work / f"{prefix}mma.json" if run.work is not None else None
        if run.resume and saved is not None and saved.exists():
            state = json.loads(saved.read_text())
            start, history = state["step"], state["loss"]
            control, best, best_loss = torch.tensor(state["control"]), torch.tensor(state["best"]), state["best_loss"]
        positions = (torch.arange(config.candidates) * config.tokens // config.candidates).clamp(max=config.tokens - 1)
        for step in row_steps("mma", row, goal, start, config.iterations, run):
            onehot = F.one_hot(control.to(bundle.device), len(cands)).to(table.dtype).requires_grad_(True)
            embeds = base.clone()
            embeds[0, slots] = onehot @ table
            (grad,) = torch.autograd.grad(loss_of(control[None], embeds, target).mean(), onehot)
            grad = grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            top = (-grad).topk(min(config.topk, len(cands)), dim=1).indices.cpu()  # [tokens, k]
            g = step_generator(config.seed, step, row)
            pick = top[positions, torch.randint(top.shape[1], (config.candidates,), generator=g)]
            batch = control.repeat(config.candidates, 1)
            batch[torch.arange(config.candidates), positions] = pick
            with torch.no_grad():
                losses = torch.cat([loss_of(part, embed(part), target) for part in batch.split(128)]).cpu()
            i = int(losses.argmin())
            control = batch[i]  # GCG keeps the step's best candidate, better or not
            if float(losses[i]) < best_loss:
                best, best_loss = control.clone(), float(losses[i])
            history.append(float(losses[i]))
            if saved is not None and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.iterations):
                write_text(
                    saved,
                    json.dumps(
                        {
                            "step": step + 1,
                            "loss": history,
                            "control": control.tolist(),
                            "best": best.tolist(),
                            "best_loss": best_loss,
                        }
                    ),
                )
        found = ids.clone()
        found[slots] = cands[best.to(cands.device)]
        return AdversarialPrompt(row, goal.prompts[row], decode(bundle, found), loss=history)

    return AttackResult("mma", goal.concept, dataclasses.asdict(config), per_prompt(goal, run, one))
