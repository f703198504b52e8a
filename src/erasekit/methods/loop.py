"""What every fine-tuning method shares on top of core's training loop (`core.loop.train`).

- `LoopConfig`: the options every fine-tuning method has; each method's config inherits them.
- `student(bundle, group)`: a copy of the UNet whose parameter group trains; the given bundle stays the frozen
  teacher ε_θ (methods compute its predictions under no_grad).
- `fit(name, loss_fn, params, config, run)`: the loop with the method's options.
- `finish(...)`: the Edit of a fine-tuning run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run, train
from erasekit.core.options import Checked, at_least
from erasekit.models.bundle import Bundle
from erasekit.models.groups import select


@dataclass
class LoopConfig(Checked):
    """Options every fine-tuning method has (each method's config inherits them and sets its defaults)."""

    iterations: int = at_least(1, 1000)
    lr: float = 1e-5
    batch: int = at_least(1, 1)
    grad_clip: float = at_least(0.0, 1.0)  # max global gradient norm; 0 turns clipping off
    checkpoint_every: int = at_least(1, 50)
    seed: int = 0

    def check(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ErasekitError(f"learning rate must be a positive finite number, got {self.lr}")


def student(bundle: Bundle, group: str) -> tuple[Bundle, dict[str, torch.nn.Parameter]]:
    """A copy of `bundle` with its own denoiser, whose `group` parameters require grad; {denoiser param name: param}.
    Only the group is copied: the rest of the denoiser is the teacher's own, frozen tensors."""
    trained = {f"{bundle.DENOISER}.{name}" for name in select(bundle.denoiser, group)[0]}
    copy = bundle.clone((bundle.DENOISER,), changes=trained.__contains__)
    names, params = select(copy.denoiser, group)
    for p in params:
        p.requires_grad_(True)
    return copy, dict(zip(names, params, strict=True))


def fit(
    name: str,
    loss_fn: Callable,
    params: dict[str, torch.nn.Parameter],
    config: LoopConfig,
    run: Run,
    state: dict[str, torch.nn.Module] | None = None,
    optimizer: Callable | None = None,
) -> list[dict]:
    """Train `params` on `loss_fn` with the method's loop options; returns the loss log's rows. `run.until`, when
    given, can end training before `config.iterations`. `optimizer(params, lr)`: default Adam."""
    return train(
        name,
        loss_fn,
        list(params.values()),
        config.iterations,
        config.lr,
        run,
        config.grad_clip,
        config.checkpoint_every,
        state=state,
        optimizer=optimizer,
        stop_when=stop_rule(run, params),
    )


def stop_rule(run: Run, params: dict[str, torch.nn.Parameter]) -> Callable[[int], bool] | None:
    """The loop's `stop_when` from `run.until` (None without one)."""
    return None if run.until is None else (lambda step: bool(run.until(step, params)))


def changed_tensors(bundle: Bundle, params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    """The trained parameters under their edit names (`unet.<name>`, `transformer.<name>`)."""
    return {f"{bundle.DENOISER}.{name}": p.detach() for name, p in params.items()}


def finish(
    method: str, bundle: Bundle, params: dict[str, torch.nn.Parameter], config, concepts: dict, rows: list[dict]
) -> Edit:
    """The Edit of a fine-tuning run: the trained parameters, the last loss and the iterations it ran (fewer than
    `config.iterations` when `run.until` ended it) among its metrics."""
    edit = Edit.from_changes(bundle, changed_tensors(bundle, params), method, config, concepts)
    edit.metrics["final_loss"] = float(rows[-1]["loss"]) if rows else None
    edit.metrics["iterations_run"] = int(rows[-1]["step"]) + 1 if rows else 0
    return edit
