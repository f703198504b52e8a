"""Training checkpoints in safetensors + JSON (no pickle): modules, an Adam-style optimizer, the step.

Batches in erasekit's loops are a pure function of (seed, step), so a run resumed from a checkpoint continues
exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_path, write_text


def save_checkpoint(
    path: str | Path,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer | None,
    step: int,
    meta: dict | None = None,
) -> None:
    """Write `path`.safetensors and `path`.json atomically (temporary names, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}.{k}": v.detach().contiguous() for name, m in modules.items() for k, v in m.state_dict().items()}
    info = {"step": step, "meta": meta or {}, "modules": list(modules)}
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars = {}
        for idx, slot in state["state"].items():
            for k, v in slot.items():
                if torch.is_tensor(v) and v.ndim > 0:
                    tensors[f"optim.{idx}.{k}"] = v.contiguous()
                else:
                    scalars[f"{idx}.{k}"] = float(v)
        info["optim"] = {"param_groups": state["param_groups"], "scalars": scalars}
    with atomic_path(path.with_suffix(".safetensors")) as tmp:
        save_file(tensors, str(tmp))
    write_text(path.with_suffix(".json"), json.dumps(info))


def load_checkpoint(
    path: str | Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer | None
) -> tuple[int, dict]:
    """Restore modules (and optimizer) in place; returns (step, meta)."""
    path = Path(path)
    try:
        info = json.loads(path.with_suffix(".json").read_text())
        tensors = load_file(str(path.with_suffix(".safetensors")))
    except Exception as exc:
        raise ErasekitError(f"cannot resume from checkpoint {path}: {type(exc).__name__}: {exc}") from None
    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    if optimizer is not None and "optim" in info:
        state: dict = {}
        for key, v in tensors.items():
            if key.startswith("optim."):
                _, idx, k = key.split(".", 2)
                state.setdefault(int(idx), {})[k] = v
        for key, v in info["optim"]["scalars"].items():
            idx, k = key.split(".", 1)
            state.setdefault(int(idx), {})[k] = torch.tensor(v)
        optimizer.load_state_dict({"state": state, "param_groups": info["optim"]["param_groups"]})
    return info["step"], info["meta"]


def exists(path: str | Path) -> bool:
    path = Path(path)
    return path.with_suffix(".json").exists() and path.with_suffix(".safetensors").exists()
