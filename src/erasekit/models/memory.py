"""How much memory one training step of a denoiser takes, estimated before any step runs (issue 35).

    peak ≈ now + W_copy + G + O + C + M + A

- now: what the device holds already (CUDA: torch's allocation; CPU: the process's resident memory, weights and
  Python included);
- W_copy: the trained group's own copy (fp32 master weights: 4 bytes per trained parameter), less the teacher's
  copy of that group when it is offloaded to CPU memory;
- G: its gradients (4 bytes per trained parameter);
- O: the optimizer's state (Adam 8 bytes per parameter, an 8-bit Adam 2, plain SGD 0);
- C: autocast's copies of the fp32 master weights in the compute dtype, which it keeps for the whole step (2
  bytes per trained parameter under bf16/fp16 autocast, none in fp32);
- M: what the method itself keeps per trained parameter (SalUn's saliency mask: a byte per weight);
- A: the activations one forward pass keeps for the backward pass at the step's batch, in the compute dtype.

A is measured, not guessed: the denoiser is built on the meta device (no memory, no time) from its own config, in
the compute dtype, with the trained group requiring grad and gradient checkpointing as asked, and one forward pass
at the step's batch and latent size is traced with `saved_tensors_hooks`, summing the bytes of every tensor saved
for backward that is not a weight. Attention is counted as the fused kernels keep it (q, k, v, the output and a
log-sum-exp row per query: `torch.nn.functional.scaled_dot_product_attention` on CPU and CUDA), not as the full
attention matrix the meta device's reference path would save.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from erasekit.models.groups import select

OPTIMIZER_BYTES = {"adam": 8, "adam8bit": 2, "sgd": 0}  # per trained parameter


@dataclass(frozen=True)
class Estimate:
    """The parts of a training step's peak, in bytes (see the module docstring)."""

    now: int
    weights: int
    grads: int
    optimizer: int
    activations: int
    casts: int = 0
    method: int = 0

    @property
    def peak(self) -> int:
        return self.now + self.weights + self.grads + self.optimizer + self.casts + self.method + self.activations

    def as_dict(self) -> dict:
        return {k: v / 1e9 for k, v in {**vars(self), "peak": self.peak}.items()}


class _SDPA(torch.autograd.Function):
    """Scaled dot-product attention on the meta device, saving what the fused kernels save."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - never run: the trace only counts what forward saves
        raise NotImplementedError


def _meta_sdpa(*args, **kwargs):
    """SDPA's signature, positional (the UNets) or by name (diffusers' attention dispatch: query=, key=, value=)."""
    names = ("query", "key", "value")
    q, k, v = (args[i] if i < len(args) else kwargs[n] for i, n in enumerate(names))
    return _SDPA.apply(q, k, v)


@contextlib.contextmanager
def _fused_attention() -> Iterator[None]:
    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _meta_sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def meta_denoiser(denoiser: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """The same architecture on the meta device, in `dtype` (no memory)."""
    with torch.device("meta"):
        module = type(denoiser).from_config(denoiser.config)
    return torch.nn.Module.to(module, dtype)  # torch's own: diffusers' `to` warns about dtype casts


def activation_bytes(bundle, group: str, batch: int, dtype: torch.dtype, checkpointing: bool) -> int:
    """Bytes one forward pass of `bundle`'s denoiser keeps for backward with `group` trained (see the docstring)."""
    denoiser = meta_denoiser(bundle.denoiser, dtype)
    denoiser.requires_grad_(False)
    for p in select(denoiser, group)[1]:
        p.requires_grad_(True)
    if checkpointing and getattr(denoiser, "_supports_gradient_checkpointing", False):
        denoiser.enable_gradient_checkpointing()
    weights = {id(p) for p in denoiser.parameters()}
    with torch.no_grad():
        cond = bundle.unconditional(batch)
    cond = cond.map(lambda x: torch.empty(x.shape, dtype=dtype, device="meta"))
    z = torch.empty((batch, *bundle.latent_shape), dtype=dtype, device="meta")
    t = torch.full((batch,), bundle.train_steps // 2, device="meta")
    total, seen = 0, set()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        key = id(tensor)
        if key not in weights and key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
        return tensor

    meta = bundle.with_modules(**{bundle.DENOISER: denoiser})
    with _fused_attention(), torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        meta.model_output(z, t, cond)
    return total


def resident_bytes(device: torch.device) -> int:
    """What the device holds now: torch's CUDA allocation, or this process's resident memory."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def capacity_bytes(device: torch.device) -> int:
    """The memory a run may use: the GPU's total, or on a CPU what this process holds and what the machine still
    has available (MemAvailable: other processes and the kernel keep the rest of its physical memory)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return resident_bytes(device) + available


def estimate(
    bundle,
    group: str,
    batch: int,
    dtype: torch.dtype,
    checkpointing: bool = False,
    optimizer: str = "adam",
    offload_teacher: bool = False,
    trained: int | None = None,
    method_bytes: float = 0.0,
) -> Estimate:
    """The estimated peak of a training step of `bundle`'s denoiser with `group` trained (module docstring).
    `trained`: the trained parameters' count where they are not the group's own (adapters: the group then only
    says which activations the backward pass needs). `method_bytes`: what the method keeps per trained parameter."""
    n = trained if trained is not None else sum(p.numel() for p in select(bundle.denoiser, group)[1])
    teacher_copy = n * bundle.dtype.itemsize if offload_teacher else 0
    return Estimate(
        now=resident_bytes(bundle.device),
        weights=n * 4 - teacher_copy,
        grads=n * 4,
        optimizer=n * OPTIMIZER_BYTES[optimizer],
        activations=activation_bytes(bundle, group, batch, dtype, checkpointing),
        casts=n * dtype.itemsize if dtype != torch.float32 else 0,
        method=int(n * method_bytes),
    )


def gb(n: float) -> str:
    return f"{n / 1e9:.{1 if n >= 1e9 else 3}f} GB" if math.isfinite(n) else "?"
