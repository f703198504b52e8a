"""Plots for reports (matplotlib, Agg backend), written as PNG files."""

from __future__ import annotations

import csv
from pathlib import Path

from erasekit.core.files import atomic_path
from erasekit.methods.search import parse_top3


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


def search_curve(loss_csv: str | Path, out_png: str | Path, lines: int = 6) -> Path | None:
    """AP/AGE's behaviour over iterations: the probability π gave each concept that was ever in its top 3 (the
    `top3` column of the run's loss log), one panel per erased concept. None if the run searched nothing."""
    loss_csv = Path(loss_csv)
    if not loss_csv.exists():
        return None
    with loss_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("top3")]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    erased = list(dict.fromkeys(r.get("erased", "") for r in rows))[:4]
    fig, axes = plt.subplots(1, len(erased), figsize=(5 * len(erased), 3), squeeze=False)
    for ax, concept in zip(axes[0], erased):
        mine = [r for r in rows if r.get("erased", "") == concept]
        series: dict[str, list[tuple[int, float]]] = {}
        for r in mine:
            for word, p in parse_top3(r["top3"]):
                series.setdefault(word, []).append((int(r["step"]), p))
        ranked = sorted(series, key=lambda w: -sum(p for _, p in series[w]))[:lines]
        for word in ranked:
            ax.plot(*zip(*series[word]), lw=1, marker=".", label=word)
        ax.set_title(f"searched concept while erasing {concept!r}" if concept else "searched concept")
        ax.set_xlabel("step")
        ax.set_ylabel("π (top 3)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(out_png)
