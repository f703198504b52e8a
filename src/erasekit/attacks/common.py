"""What the optimising attacks share: the loop over goal prompts that resumes where a killed run stopped, the
attack-time success check, the projection of soft token vectors onto the nearest hard tokens (PEZ), and the
images of the concept that inversion and relearning learn from."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict

import torch

from erasekit.attacks.goal import AdversarialPrompt, Goal
from erasekit.core.errors import ErasekitError
from erasekit.core.files import write_text
from erasekit.core.images import resize_crop
from erasekit.core.loop import Run
from erasekit.models.bundle import Bundle

RESULTS = "prompts.jsonl"  # in the run's work folder: one finished goal prompt per line


def per_prompt(goal: Goal, run: Run, attack_one: Callable[[int, str], AdversarialPrompt]) -> list[AdversarialPrompt]:
    """`attack_one(row, prefix)` for every goal prompt; `prefix` names its checkpoint in the work folder. Finished
    prompts are recorded as they finish, so a resumed run skips them and continues the interrupted one from its
    checkpoint."""
    path = run.work / RESULTS if run.work is not None else None
    done: dict[int, AdversarialPrompt] = {}
    if run.resume and path is not None and path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                item = AdversarialPrompt(**json.loads(line))
                done[item.row] = item
    for row in range(len(goal.prompts)):
        if row in done:
            continue
        started = time.perf_counter()
        item = attack_one(row, f"row{row}-")
        item.seconds = time.perf_counter() - started
        done[row] = item
        if path is not None:
            write_text(path, "".join(json.dumps(asdict(done[r])) + "\n" for r in sorted(done)))
    return [done[r] for r in range(len(goal.prompts))]


def row_steps(name: str, row: int, goal: Goal, start: int, total: int, run: Run):
    """Steps `start`..`total` of one goal prompt's search, with a progress bar naming the attack and the prompt."""
    from tqdm.auto import tqdm

    return tqdm(
        range(start, total),
        desc=f"{name} {row + 1}/{len(goal.prompts)}",
        initial=start,
        total=total,
        disable=not run.progress,
        dynamic_ncols=True,
    )


def checker(bundle: Bundle, goal: Goal, row: int, every: int, text_of: Callable[[], str], found: dict):
    """`stop_when` for the loop: every `every` steps, generate the current hard prompt's text on the attacked model
    with the held-out check seed; stop when the judge sees the concept (UnlearnDiffAtk's early stop)."""

    def stop_when(step: int) -> bool:
        if every <= 0 or (step + 1) % every:
            return False
        if bool(goal.seen(bundle, [text_of()], [goal.check_seed(row)])[0]):
            found["step"] = step
            return True
        return False

    return stop_when


def nearest(vectors: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Index into `table` [V, D] of the nearest row (cosine) to each of `vectors` [S, D] (PEZ's projection)."""
    a = torch.nn.functional.normalize(vectors.detach(), dim=-1)
    b = torch.nn.functional.normalize(table.detach(), dim=-1)
    return (a @ b.T).argmax(-1)


def losses(rows: list[dict]) -> list[float]:
    return [float(r["loss"]) for r in rows]


def reference_latents(bundle: Bundle, goal: Goal, count: int, attack: str) -> torch.Tensor:
    """Latents z_0 of `count` images of the concept (concept inversion, relearning): the user's, or the reference
    model's goal-prompt images in which the judge sees the concept (generated until `count` are found or 8x as many
    were tried)."""
    if goal.images is not None:  # the user's images, at the model's size, encoded a batch at a time
        images = resize_crop(goal.images[:count], bundle.image_size) * 2 - 1
        with torch.no_grad():
            return torch.cat([bundle.encode_images(part) for part in images.split(bundle.image_batch)])
    ref, kept, tried = goal.reference(bundle), [], 0
    per = max(1, -(-count // len(goal.prompts)))
    while sum(len(k) for k in kept) < count and tried < 8 * count:
        prompts = [p for p in goal.prompts for _ in range(per)]
        seeds = [10**6 + tried + i for i in range(len(prompts))]  # away from evaluation and check seeds
        b = ref.image_batch
        with torch.no_grad():
            z0 = torch.cat(
                [
                    ref.sample(
                        ref.encode_prompts(prompts[i : i + b]),
                        seeds[i : i + b],
                        steps=goal.steps,
                        guidance=goal.guidance,
                        decode=False,
                    )
                    for i in range(0, len(prompts), b)
                ]
            )
            seen = goal.detect((ref.decode_latents(z0).float() + 1) / 2).bool().cpu()
        kept.append(z0[seen.to(z0.device)])
        tried += len(prompts)
    z0 = torch.cat(kept)[:count]
    if len(z0) == 0:
        raise ErasekitError(
            f"{attack}: the reference model drew {goal.concept!r} in none of {tried} images of the "
            "goal prompts; give images of the concept instead"
        )
    return z0
