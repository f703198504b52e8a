"""The methods' common training loop and what every fine-tuning method shares.

- `student(bundle, group)`: a copy of the UNet whose parameter group trains; the given bundle stays the frozen
  teacher ε_θ (methods compute its predictions under no_grad).
- `train(...)`: Adam, gradient clipping, a NaN/inf guard that stops with a clear error and keeps the last good
  checkpoint, periodic checkpoints and resume, a progress bar with the loss, and `loss.csv` in the work folder.
- `step_generator(seed, step)`: every random draw of a step comes from it, so a batch is a pure function of
  (seed, step) and a resumed run continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from erasekit.core.bundle import Bundle
from erasekit.core.checkpoint import exists, load_checkpoint, save_checkpoint
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.files import write_text
from erasekit.core.options import Checked, at_least, check_choice  # noqa: F401  (check_choice: the methods')
from erasekit.core.targets import select

CHECKPOINT, LOSS_LOG = "checkpoint", "loss.csv"


@dataclass
class Run:
    """Where and how a method runs. `work`: folder for checkpoints and loss.csv (None: nothing is written).
    `scorer`: what a method that judges images needs (UCE debias), given by the caller: methods never import eval.
    `clock`: when a list, every training step appends (step, start, end) in `time.perf_counter()` seconds (how
    benchmarks separate the loop from the setup)."""

    work: Path | None = None
    resume: bool = False
    progress: bool = True
    scorer: Callable | None = None
    clock: list | None = None


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


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """The CPU generator for one step (and one stream of draws within it)."""
    return torch.Generator("cpu").manual_seed((seed * 1_000_003 + stream * 7_919 + step) % 2**63)


def student(bundle: Bundle, group: str) -> tuple[Bundle, dict[str, torch.nn.Parameter]]:
    """A copy of `bundle` with its own UNet, whose `group` parameters require grad; {unet param name: param}."""
    copy = bundle.clone(("unet",))
    names, params = select(copy.unet, group)
    for p in params:
        p.requires_grad_(True)
    return copy, dict(zip(names, params))


def changed_tensors(params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    """The trained parameters under their edit names (`unet.<name>`)."""
    return {f"unet.{name}": p.detach() for name, p in params.items()}


def _read_log(path: Path, before: int) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) < before]


def _write_log(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def train(name: str, loss_fn: Callable[[int], tuple[torch.Tensor, dict]], params: list[torch.nn.Parameter],
          iterations: int, lr: float, run: Run, grad_clip: float = 1.0, checkpoint_every: int = 50,
          state: dict[str, torch.nn.Module] | None = None) -> list[dict]:
    """Minimise `loss_fn(step) -> (loss, logs)` over `params` for `iterations` Adam steps; returns the log rows.

    `state`: extra modules to checkpoint besides `params` (e.g. a search distribution a method also trains).
    """
    if not (math.isfinite(lr) and lr > 0):
        raise ErasekitError(f"{name}: learning rate must be a positive finite number, got {lr}")
    opt = torch.optim.Adam(params, lr=lr)
    modules = {"params": torch.nn.ParameterList(params), **(state or {})}
    ckpt = run.work / CHECKPOINT if run.work is not None else None
    log_path = run.work / LOSS_LOG if run.work is not None else None
    start, rows = 0, []
    if run.resume and ckpt is not None and exists(ckpt):
        start, _ = load_checkpoint(ckpt, modules, opt)
        rows = _read_log(log_path, start)
    bar = tqdm(range(start, iterations), desc=name, initial=start, total=iterations, dynamic_ncols=True,
               disable=not run.progress)
    for step in bar:
        started = time.perf_counter()
        loss, logs = loss_fn(step)
        if not torch.isfinite(loss):
            where = f"; the last good checkpoint is {ckpt} (step {start_of(ckpt)})" if ckpt and exists(ckpt) else ""
            raise ErasekitError(f"{name}: loss is {loss.item()} at iteration {step} (lr {lr}){where}; no edit written")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        rows.append({"step": step, "loss": f"{loss.item():.6g}", **logs})
        if run.clock is not None:
            run.clock.append((step, started, time.perf_counter()))
        bar.set_postfix(loss=f"{loss.item():.4g}")
        if ckpt is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == iterations):
            _write_log(log_path, rows)  # first: a resume keeps only the rows before its checkpoint's step
            save_checkpoint(ckpt, modules, opt, step + 1, meta={"method": name})
    return rows


def start_of(ckpt: Path) -> int:
    import json

    return json.loads(ckpt.with_suffix(".json").read_text())["step"]


def finish(method: str, bundle: Bundle, params: dict[str, torch.nn.Parameter], config, concepts: dict,
           rows: list[dict]) -> Edit:
    """The Edit of a fine-tuning run: the trained parameters, and the last loss among its metrics."""
    edit = Edit.from_changes(bundle, changed_tensors(params), method, config, concepts)
    edit.metrics["final_loss"] = float(rows[-1]["loss"]) if rows else None
    return edit
