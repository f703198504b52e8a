"""Plots for reports (matplotlib, Agg backend), written as PNG files."""

from __future__ import annotations

import csv
from pathlib import Path

from erasekit.core.files import atomic_path


def loss_curve(loss_csv: str | Path, out_png: str | Path) -> Path | None:
    """Plot a run's loss log (CSV with `step` and `loss` columns); None if the run has no log."""
    loss_csv = Path(loss_csv)
    if not loss_csv.exists():
        return None
    with loss_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("step") and r.get("loss")]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(out_png)
