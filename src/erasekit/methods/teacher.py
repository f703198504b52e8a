"""The frozen teacher ε_θ: its predictions for several conditionings in one batched call, and the negatively guided
target every output-space method regresses onto.

    ε_θ(z, c_n) − η (ε_θ(z, c_e) − ε_θ(z, c_n))        (ESD Eq. 2, talk Eq. 4; η = 0 gives Eq. 7's ε_θ(c_n))

Callers decide about gradients: a method's teacher runs under no_grad, but AGE's search differentiates through it
with respect to the conditioning.
"""

from __future__ import annotations

import torch

from erasekit.core.conditioning import Conditioning
from erasekit.models.bundle import Bundle


def predictions(teacher: Bundle, t: torch.Tensor, *pairs: tuple[torch.Tensor, Conditioning]) -> list[torch.Tensor]:
    """ε_θ(z, t, c) for each (z, c) in `pairs` (each a batch of the same size as t), in one call."""
    z = torch.cat([p[0] for p in pairs])
    c = Conditioning.cat([p[1] for p in pairs])
    return list(teacher.eps(z, t.repeat(len(pairs)), c).chunk(len(pairs)))


def guided_away(e_n: torch.Tensor, e_e: torch.Tensor | None, eta: float) -> torch.Tensor:
    """ε(c_n) − η (ε(c_e) − ε(c_n)); with η = 0, ε(c_n) itself (and `e_e` is not needed)."""
    return e_n - eta * (e_e - e_n) if eta else e_n


def guided_target(
    teacher: Bundle, t: torch.Tensor, n: tuple, e: tuple, eta: float, *also: tuple
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The target guided away from `e` = (z_e, c_e) starting at `n` = (z_n, c_n), and the teacher's predictions for
    each further (z, c) in `also`, all in one batch (c_e is not evaluated when η = 0)."""
    out = predictions(teacher, t, n, *also, *([e] if eta else []))
    return guided_away(out[0], out[-1] if eta else None, eta), out[1 : 1 + len(also)]
