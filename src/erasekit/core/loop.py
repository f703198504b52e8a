"""The one training loop: the world's training stages and every fine-tuning method run through `train`.

- Adam (or the optimizer a caller makes), an optional learning-rate schedule, gradient clipping, a hook after
  each step (the world's EMA);
- a NaN/inf guard that stops with one clear error and keeps the last good checkpoint;
- periodic checkpoints (safetensors + JSON, `core.checkpoint`) and exact resume: every random draw of a step comes
  from `step_generator(seed, step)`, so a batch is a pure function of (seed, step);
- a progress bar with the loss and the remaining time;
- the loss log, `loss.csv` in the work folder: one row per step with `step`, `loss` and whatever the step reported.
  Values that are not numbers or strings are stored as JSON. `read_log` is its one reader.

It lives in core because the world (which builds the miniature) and the methods both train, and neither may
import the other.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from erasekit.core.checkpoint import exists, load_checkpoint, save_checkpoint
from erasekit.core.errors import ErasekitError
from erasekit.core.files import write_text
from erasekit.core.optim import eight_bit_optimizer
from erasekit.core.seeding import step_seed

CHECKPOINT, LOSS_LOG = "checkpoint", "loss.csv"
RECORD = "record"  # a folder of the work folder that a method fills with what its run folder keeps (Dark Miner)


@dataclass
class Run:
    """Where and how a loop runs. `work`: folder for checkpoints and loss.csv (None: nothing is written).
    `scorer`: what a method that judges images needs (UCE debias), given by the caller: methods never import eval.
    `clock`: when a list, every training step appends (step, start, end) in `time.perf_counter()` seconds (how
    benchmarks separate the loop from the setup).
    `until(step, params)`: asked after each step of a method that trains weights (every method whose config has
    `iterations`) with its trained parameters {UNet parameter name: tensor}; True ends training there, so that
    `iterations` becomes a maximum (the bench's budget to a target ESR)."""

    work: Path | None = None
    resume: bool = False
    progress: bool = True
    scorer: Callable | None = None
    clock: list | None = None
    until: Callable[[int, dict], bool] | None = None


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """The CPU generator for one step (and one stream of draws within it)."""
    return torch.Generator("cpu").manual_seed(step_seed(seed, step, stream))


def _cell(value: object) -> str | int:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, (str, int)) else json.dumps(value)


def _uncell(text: str) -> Any:  # JSON: a list or a dict, else the text
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def read_log(path: str | Path, before: int | None = None) -> list[dict]:
    """The rows of a loss log (steps below `before` when given); JSON cells come back as lists and dicts, the rest
    as text. An absent log has no rows."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = [{k: _uncell(v) for k, v in r.items() if v not in (None, "")} for r in csv.DictReader(f)]
    return [r for r in rows if before is None or int(r["step"]) < before]


def _write_log(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
    write_text(path, buf.getvalue())


def _last_step(ckpt: Path) -> int:
    return json.loads(ckpt.with_suffix(".json").read_text())["step"]


def train(
    name: str,
    loss_fn: Callable[[int], torch.Tensor | tuple[torch.Tensor, dict]],
    params: list[torch.nn.Parameter],
    iterations: int,
    lr: float,
    run: Run,
    grad_clip: float = 1.0,
    checkpoint_every: int = 50,
    state: dict[str, torch.nn.Module] | None = None,
    prefix: str = "",
    optimizer: Callable | None = None,
    lr_at: Callable[[int], float] | None = None,
    after_step: Callable[[], None] | None = None,
    stop_when: Callable[[int], bool] | None = None,
    precision: torch.dtype | None = None,
    eight_bit: bool = False,
) -> list[dict]:
    """Minimise `loss_fn(step)` (a loss, or `(loss, logs)`) over `params` for `iterations` steps; returns the log.

    `state`: modules to checkpoint besides `params` (a search distribution, an EMA copy). `prefix`: of the
    checkpoint's and log's file names (several loops in one work folder). `optimizer(params, lr)`: default Adam.
    `lr_at(step)`: the learning rate of each step (default: `lr` throughout). `stop_when(step)`: asked after each
    step; True ends the loop there (an attack that succeeded), with the log and a checkpoint written.
    `precision`: the forward passes' dtype under autocast (bf16/fp16; None or fp32: none), the trained `params`
    staying in fp32 (master weights); fp16 scales the loss (a GradScaler, not checkpointed: a resume starts a
    fresh scale). `eight_bit`: the optimizer's bitsandbytes 8-bit counterpart (`core.optim`)."""
    if not (math.isfinite(lr) and lr > 0):
        raise ErasekitError(f"{name}: learning rate must be a positive finite number, got {lr}")
    opt = (optimizer or torch.optim.Adam)(params, lr=lr)
    if eight_bit:
        opt = eight_bit_optimizer(opt)
    device = params[0].device.type if params else "cpu"
    mixed = precision is not None and precision != torch.float32
    scaler = torch.amp.GradScaler(device) if precision == torch.float16 else None
    state = dict(state or {})
    held = {id(p) for m in state.values() for p in m.parameters()}
    modules = state if all(id(p) in held for p in params) else {"params": torch.nn.ParameterList(params), **state}
    ckpt = run.work / f"{prefix}{CHECKPOINT}" if run.work is not None else None
    log_path = run.work / f"{prefix}{LOSS_LOG}" if run.work is not None else None
    start, rows = 0, []
    if run.resume and ckpt is not None and exists(ckpt):
        start, _ = load_checkpoint(ckpt, modules, opt)
        assert log_path is not None  # set together with ckpt, from run.work
        rows = read_log(log_path, before=start)
    bar = tqdm(
        range(start, iterations),
        desc=name,
        initial=start,
        total=iterations,
        dynamic_ncols=True,
        disable=not run.progress,
    )
    for step in bar:
        started = time.perf_counter()
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
        with torch.autocast(device, dtype=precision, enabled=mixed):
            out = loss_fn(step)
        loss, logs = out if isinstance(out, tuple) else (out, {})
        loss = loss.float()
        if not torch.isfinite(loss):
            where = f"; the last good checkpoint is {ckpt} (step {_last_step(ckpt)})" if ckpt and exists(ckpt) else ""
            raise ErasekitError(
                f"{name}: loss is {loss.item()} at iteration {step} (lr {opt.param_groups[0]['lr']:g})"
                f"{where}; nothing was written"
            )
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(opt)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if after_step is not None:
            after_step()
        value = loss.item()
        rows.append({"step": step, "loss": value, **logs})
        if run.clock is not None:
            run.clock.append((step, started, time.perf_counter()))
        bar.set_postfix(loss=f"{value:.4g}")
        stop = stop_when is not None and stop_when(step)
        if ckpt is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == iterations or stop):
            assert log_path is not None  # set together with ckpt, from run.work
            _write_log(log_path, rows)  # first: a resume keeps only the rows before its checkpoint's step
            save_checkpoint(ckpt, modules, opt, step + 1, meta={"loop": name})
        if stop:
            break
    bar.close()
    return rows
