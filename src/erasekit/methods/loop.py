"""What every fine-tuning method shares on top of core's training loop (`core.loop.train`).

- `LoopConfig`: the options every fine-tuning method has; each method's config inherits them, the memory
  options (`MemoryOptions`) among them.
- `student(bundle, group, config)`: a copy of the UNet whose parameter group trains; the given bundle stays the
  frozen teacher ε_θ (methods compute its predictions under no_grad). It checks first that the step will fit.
- `fit(name, loss_fn, params, config, run)`: the loop with the method's options.
- `finish(...)`: the Edit of a fine-tuning run.

The memory options (issue 35), each off by default so that a method runs as its paper wrote it:
- `precision`: the forward passes under bf16/fp16 autocast, the trained parameters kept in fp32 (master weights);
  `auto` is the model's own dtype. A model loaded in half precision (`--dtype bf16`) is "the frozen rest in half
  precision": only the trained group is copied, in fp32, and the passes run under autocast in the model's dtype.
- `gradient_checkpointing`: the student's denoiser recomputes its blocks' activations in the backward pass.
- `optimizer_bits=8`: the optimizer's bitsandbytes 8-bit counterpart (CUDA only; `core.optim`).
- `offload_teacher`: the frozen teacher's own copy of the trained group waits in CPU memory and comes to the GPU
  for each of its passes (methods that keep a teacher: ESD, Eq. 7 target, hide, AP, AGE).
- the memory guard: `student` estimates the step's peak (`models.memory.estimate`) and refuses, in one line that
  names the options that would make it fit, a run that would not fit the device (`memory_limit_gb`: a smaller
  budget than the device's own).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run, train
from erasekit.core.options import Checked, at_least, check_choice
from erasekit.models import memory
from erasekit.models.bundle import Bundle
from erasekit.models.groups import trainable

PRECISIONS = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
HALF = (torch.bfloat16, torch.float16)
PLAIN = {"gradient_checkpointing": False, "optimizer_bits": 32, "offload_teacher": False, "memory_limit_gb": 0.0}


@dataclass
class MemoryOptions(Checked):
    """What a fine-tuning run may trade for memory (the module docstring); all off by default."""

    precision: str = "auto"  # the passes' dtype: auto (the model's) | fp32 | bf16 | fp16 (autocast, fp32 masters)
    gradient_checkpointing: bool = False
    optimizer_bits: int = 32  # 32 | 8 (bitsandbytes, CUDA only)
    offload_teacher: bool = False  # the frozen teacher's copy of the trained group in CPU memory (CUDA only)
    memory_limit_gb: float = 0.0  # the guard's budget; 0: the device's memory

    GRAD_BATCHES = 1  # batches of `batch` samples one step passes through the student with grad (class constant)
    OPTIONS = ("gradient_checkpointing", "precision", "optimizer_bits", "offload_teacher", "memory_limit_gb")  # taken

    def check(self) -> None:
        super().check()
        check_choice(self.precision, PRECISIONS, "precision")
        for name, plain in PLAIN.items():
            if name not in self.OPTIONS and getattr(self, name) != plain:
                raise ErasekitError(
                    f"{type(self).__name__.removesuffix('Config')} does not take {name}: {self.WHY_NOT}"
                )
        if self.optimizer_bits not in (32, 8):
            raise ErasekitError(f"optimizer_bits must be 32 or 8, got {self.optimizer_bits}")
        if not (math.isfinite(self.memory_limit_gb) and self.memory_limit_gb >= 0):
            raise ErasekitError(
                f"memory_limit_gb must be 0 (the device's) or a positive number of GB, got {self.memory_limit_gb}"
            )

    WHY_NOT = ""  # why a method leaves out some of the options
    METHOD_BYTES = 0.0  # what the method itself keeps per trained parameter (the guard's M)

    def grad_batch(self) -> int:
        """Samples one step passes through the student with grad (what its activations scale with)."""
        return getattr(self, "batch", 1) * self.GRAD_BATCHES

    def trained_count(self, bundle: Bundle, group: str) -> int | None:
        """Parameters the method trains (None: the group's)."""
        return None

    def compute_dtype(self, bundle: Bundle) -> torch.dtype:
        """The dtype the passes run in: the asked one, else the model's."""
        return PRECISIONS[self.precision] or bundle.dtype


@dataclass
class LoopConfig(MemoryOptions):
    """Options every fine-tuning method has (each method's config inherits them and sets its defaults)."""

    iterations: int = at_least(1, 1000)
    lr: float = 1e-5
    batch: int = at_least(1, 1)
    grad_clip: float = at_least(0.0, 1.0)  # max global gradient norm; 0 turns clipping off
    checkpoint_every: int = at_least(1, 50)
    seed: int = 0

    def check(self) -> None:
        super().check()
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ErasekitError(f"learning rate must be a positive finite number, got {self.lr}")


def student(bundle: Bundle, group: str, config: MemoryOptions | None = None) -> tuple[Bundle, Trained]:
    """A copy of `bundle` with its own denoiser, whose `group` parameters require grad; {denoiser param name: param}.
    Only the group is copied (in fp32: the master weights when the model is in half precision): the rest of the
    denoiser is the teacher's own, frozen tensors. With `config`, the memory guard runs first and the student
    checkpoints its gradients when asked."""
    options = config if config is not None else MemoryOptions()
    check_precision(bundle, options)
    if config is not None:
        guard(bundle, group, config)
    copy, names, params = trainable(bundle, group)
    if options.gradient_checkpointing:
        checkpointing(copy)
    trained = Trained(zip(names, params, strict=True))
    trained.autocast = autocast_dtype(bundle, options)
    return copy, trained


def checkpointing(model: Bundle) -> None:
    """Gradient checkpointing on `model`'s own denoiser (a student's copy: the teacher's passes stay as they are)."""
    if not getattr(model.denoiser, "_supports_gradient_checkpointing", False):
        raise ErasekitError(f"{type(model.denoiser).__name__} does not support gradient checkpointing")
    model.denoiser.enable_gradient_checkpointing()


def autocast_dtype(bundle: Bundle, options: MemoryOptions) -> torch.dtype | None:
    """The dtype a loop's passes autocast to: the asked precision, else the model's own when it is half (None:
    no autocast)."""
    asked = options.compute_dtype(bundle)
    return None if asked == torch.float32 else asked


class Trained(dict):
    """{denoiser parameter name: trained parameter}, and the dtype its passes autocast to (None: none)."""

    autocast: torch.dtype | None = None


def check_precision(bundle: Bundle, options: MemoryOptions) -> None:
    if bundle.dtype in HALF and options.precision == "fp32":
        raise ErasekitError(
            f"precision=fp32 needs the model in fp32; it is loaded in {str(bundle.dtype).removeprefix('torch.')} "
            "(load it with --dtype fp32, or keep precision=auto)"
        )


# ---- the memory guard ----------------------------------------------------------------------------------
OPTION_SETTINGS = (  # what the guard may suggest, least intrusive first
    ("gradient_checkpointing=true", {"gradient_checkpointing": True}),
    ("precision=bf16", {"precision": "bf16"}),
    ("optimizer_bits=8", {"optimizer_bits": 8}),
    ("offload_teacher=true", {"offload_teacher": True}),
)


def estimate(bundle: Bundle, group: str, config: MemoryOptions) -> memory.Estimate:
    """The estimated peak of one step with `config`'s options (models.memory)."""
    return memory.estimate(
        bundle,
        group,
        config.grad_batch(),
        config.compute_dtype(bundle),
        config.gradient_checkpointing,
        "adam8bit" if config.optimizer_bits == 8 else "adam",
        config.offload_teacher,
        trained=config.trained_count(bundle, group),
        method_bytes=config.METHOD_BYTES,
    )


def guard(bundle: Bundle, group: str, config: MemoryOptions) -> memory.Estimate:
    """Refuse, before any work, a run whose estimated peak exceeds the device's memory (or `memory_limit_gb`),
    naming the fewest options that would make it fit."""
    budget = config.memory_limit_gb * 1e9 or memory.capacity_bytes(bundle.device)
    found = estimate(bundle, group, config)
    if found.peak <= budget:
        return found
    cuda = bundle.device.type == "cuda"
    usable = [
        (text, change)
        for text, change in OPTION_SETTINGS
        if all(k in config.OPTIONS for k in change) and (cuda or "bits" not in text and "offload" not in text)
    ]
    usable = [(t, c) for t, c in usable if any(getattr(config, k) != v for k, v in c.items())]
    advice = "no memory option is left to try"
    for n in range(1, len(usable) + 1):
        fits = [
            combo
            for combo in itertools.combinations(usable, n)
            if estimate(bundle, group, replace(config, **{k: v for _, c in combo for k, v in c.items()})).peak <= budget
        ]
        if fits:
            advice = "it would fit with " + " ".join(text for text, _ in fits[0])
            break
    else:
        if usable:
            advice = "it does not fit even with " + " ".join(text for text, _ in usable)
    if bundle.dtype == torch.float32:
        advice += "; loading the model with --dtype bf16 halves its frozen weights"
    raise ErasekitError(
        f"one training step needs about {memory.gb(found.peak)} at peak on {bundle.device}, more than its "
        f"{memory.gb(budget)}: {advice}"
    )


@contextlib.contextmanager
def offloaded(teacher: Bundle, names: list[str]) -> Iterator[None]:
    """The teacher's own copies of the trained parameters `names` in CPU memory while the loop runs, brought to the
    device for each of the teacher's passes and dropped after it; put back in place at the end."""
    device = teacher.device
    if device.type == "cpu":
        raise ErasekitError("offload_teacher moves the frozen teacher to CPU memory; this model is already on the CPU")
    module = teacher.denoiser
    own = dict(module.named_parameters())
    held = [(own[n], own[n].data.to("cpu").pin_memory()) for n in names]
    for p, cpu in held:
        p.data = cpu

    def bring(*_):
        for p, cpu in held:
            p.data = cpu.to(device, non_blocking=True)

    def drop(*_):
        for p, cpu in held:
            p.data = cpu

    hooks = [module.register_forward_pre_hook(bring), module.register_forward_hook(drop)]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
        for p, cpu in held:
            p.data = cpu.to(device)


def fit(
    name: str,
    loss_fn: Callable,
    params: dict[str, torch.nn.Parameter],
    config: LoopConfig,
    run: Run,
    state: dict[str, torch.nn.Module] | None = None,
    optimizer: Callable | None = None,
    teacher: Bundle | None = None,
) -> list[dict]:
    """Train `params` on `loss_fn` with the method's loop options; returns the loss log's rows. `run.until`, when
    given, can end training before `config.iterations`. `optimizer(params, lr)`: default Adam. `teacher`: the
    frozen model a method keeps, which `offload_teacher` moves to CPU memory."""
    with teacher_offload(name, config, teacher, params):
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
            **loop_options(config, params),
        )


def loop_options(config: MemoryOptions, params: dict) -> dict:
    """`core.loop.train`'s memory arguments for `config` and the trained `params` (`student`'s)."""
    return {
        "precision": getattr(params, "autocast", PRECISIONS[config.precision]),
        "eight_bit": config.optimizer_bits == 8,
    }


def teacher_offload(name: str, config: MemoryOptions, teacher: Bundle | None, params: dict):
    """The context a loop runs in: the teacher offloaded when asked (`offloaded`), else nothing."""
    if not config.offload_teacher:
        return contextlib.nullcontext()
    if teacher is None:
        raise ErasekitError(f"{name} keeps no frozen teacher: offload_teacher has nothing to move")
    return offloaded(teacher, list(params))


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
