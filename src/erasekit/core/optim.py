"""The 8-bit optimizers of bitsandbytes (an optional extra, CUDA only) in place of torch's Adam, AdamW and SGD.

An optimizer's state is 8 bytes per trained parameter in fp32 Adam and 2 in 8-bit Adam (Dettmers et al. 2022,
block-wise quantised moments): on a method that trains the whole UNet (SalUn, FMN, ESD-u) that is 6.9 GB against
1.7 GB at SD-1.x size. The method's own optimizer is made first (its class, param groups, learning rates and
weight decay), then its 8-bit counterpart with the same groups and hyper-parameters.
"""

from __future__ import annotations

import torch

from erasekit.core.errors import ErasekitError

COUNTERPARTS = {torch.optim.Adam: "Adam8bit", torch.optim.AdamW: "AdamW8bit", torch.optim.SGD: "SGD8bit"}
KEPT = ("lr", "betas", "eps", "weight_decay", "momentum", "dampening", "nesterov")


def eight_bit_optimizer(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """`opt`'s bitsandbytes 8-bit counterpart over the same parameter groups; one clear error where it cannot be."""
    params = [p for g in opt.param_groups for p in g["params"]]
    device = params[0].device.type if params else "cpu"
    if device != "cuda":
        raise ErasekitError(f"8-bit optimizers (bitsandbytes) run on CUDA only; the trained parameters are on {device}")
    name = COUNTERPARTS.get(type(opt))
    if name is None:
        raise ErasekitError(f"no 8-bit counterpart of {type(opt).__name__}; 8-bit: {', '.join(COUNTERPARTS.values())}")
    try:
        import bitsandbytes
    except ImportError:
        raise ErasekitError("8-bit optimizers need bitsandbytes: pip install 'erasekit[bnb]'") from None
    groups = [{k: v for k, v in g.items() if k == "params" or k in KEPT} for g in opt.param_groups]
    if name == "SGD8bit" and not any(g.get("momentum") for g in groups):
        raise ErasekitError("bitsandbytes' SGD8bit needs momentum > 0 (plain SGD keeps no state to quantise)")
    return getattr(bitsandbytes.optim, name)(groups)
