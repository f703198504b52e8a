"""Plots for reports (matplotlib, Agg backend), written as PNG files."""

from __future__ import annotations

from pathlib import Path

from erasekit.core.files import atomic_path
from erasekit.core.loop import read_log


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_png: str | Path, dpi: int = 100) -> Path:
    """Lay `fig` out, write it atomically as a PNG and close it."""
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=dpi)
    _pyplot().close(fig)
    return Path(out_png)


def loss_curve(loss_csv: str | Path, out_png: str | Path) -> Path | None:
    """Plot a run's loss log (CSV with `step` and `loss` columns); None if the run has no log."""
    rows = [r for r in read_log(loss_csv) if "step" in r and "loss" in r]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    return _save(fig, out_png)


def search_curve(loss_csv: str | Path, out_png: str | Path, lines: int = 6) -> Path | None:
    """AP/AGE's behaviour over iterations: the probability π gave each concept that was ever in its top 3 (the
    `top3` column of the run's loss log), one panel per erased concept. None if the run searched nothing."""
    rows = [r for r in read_log(loss_csv) if r.get("top3")]
    if not rows:
        return None
    plt = _pyplot()
    erased = list(dict.fromkeys(r.get("erased", "") for r in rows))[:4]
    fig, axes = plt.subplots(1, len(erased), figsize=(5 * len(erased), 3), squeeze=False)
    for ax, concept in zip(axes[0], erased, strict=True):
        mine = [r for r in rows if r.get("erased", "") == concept]
        series: dict[str, list[tuple[int, float]]] = {}
        for r in mine:
            for word, p in r["top3"]:
                series.setdefault(word, []).append((int(r["step"]), p))
        ranked = sorted(series, key=lambda w: -sum(p for _, p in series[w]))[:lines]
        for word in ranked:
            ax.plot(*zip(*series[word], strict=True), lw=1, marker=".", label=word)
        ax.set_title(f"searched concept while erasing {concept!r}" if concept else "searched concept")
        ax.set_xlabel("step")
        ax.set_ylabel("π (top 3)")
        ax.legend(fontsize=7)
    return _save(fig, out_png)


def loops_curve(run_folder: str | Path, out_png: str | Path) -> Path | None:
    """Dark Miner's verification score s(c) of each loop's mined embedding (Eq. 6) with its threshold τ; None if
    the run has no loops record."""
    import json

    loops_json, manifest = Path(run_folder) / "loops.json", Path(run_folder) / "manifest.json"
    if not loops_json.is_file():
        return None
    rows = json.loads(loops_json.read_text())
    tau = json.loads(manifest.read_text()).get("config", {}).get("tau") if manifest.is_file() else None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([r["loop"] for r in rows], [r["s"] for r in rows], marker="o", lw=1, label="s(c)")
    if tau is not None:
        ax.axhline(tau, color="red", lw=1, ls="--", label=f"τ = {tau}")
    ax.set_xlabel("loop")
    ax.set_ylabel("s(c), Eq. 6")
    ax.legend(fontsize=7)
    return _save(fig, out_png)


def mined_grid(run_folder: str | Path, out_png: str | Path, tile: int = 64) -> Path | None:
    """One row per loop: the images of its mined embedding c before its circumvention, a white tile, then after
    (same seeds), each `tile` pixels high; None if the run kept no such images."""
    import torch
    from safetensors.torch import load_file

    from erasekit.eval.generate import grid, save_image

    path = Path(run_folder) / "images.safetensors"
    if not path.is_file():
        return None
    images = load_file(str(path))
    loops = sorted({k.split(".")[0] for k in images})
    if not loops:
        return None
    tiles = []
    for loop in loops:
        before = images[f"{loop}.before"].float() / 255
        # black after: the loop that ended the run circumvented nothing
        after = images[f"{loop}.after"].float() / 255 if f"{loop}.after" in images else before * 0
        tiles += [before, torch.ones_like(before[:1]), after]
    return save_image(grid(torch.cat(tiles), nrow=2 * len(before) + 1, tile=tile), out_png)


def graph_heatmap(matrix, rows: list[str], concepts, out_png: str | Path) -> Path:
    """The concept graph as a heat map: one row per edit, one column per affected concept, δ in each cell."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(concepts), 1 + 0.5 * len(rows)))
    lim = max(0.05, float(np.abs(matrix).max()))
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(concepts)), concepts, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="δ = S(base) − S(edited)")
    return _save(fig, out_png, dpi=110)


def bar_axes(edited: dict, base: dict | None):
    """The axes of the per-concept acc@1 bars (base beside edited); erased concepts are named in red (a shaded
    box would read as a bar). None when the result has no per-concept accuracy."""
    per = edited.get("per_concept") or {}
    names = [n for n in per if "acc@1" in per[n]]
    if not names:
        return None
    import numpy as np

    plt = _pyplot()
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.5 + 0.55 * len(names), 3))
    if base:
        ax.bar(x - 0.2, [base["per_concept"].get(n, {}).get("acc@1", 0) for n in names], 0.4, label="base")
    ax.bar(x + (0.2 if base else 0), [per[n]["acc@1"] for n in names], 0.4, label="edited")
    erased = set(edited.get("erased", []))
    ax.set_xticks(x, [f"{n} (erased)" if n in erased else n for n in names], rotation=45, ha="right")
    for label, name in zip(ax.get_xticklabels(), names, strict=True):
        if name in erased:
            label.set_color("red")
    ax.set_ylabel("acc@1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return ax


def concept_bars(edited: dict, base: dict | None):
    """`bar_axes` as a PIL image, or None."""
    ax = bar_axes(edited, base)
    if ax is None:
        return None
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=100)
    plt.close(ax.figure)
    return Image.open(io.BytesIO(buf.getvalue()))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on each), ordered by x."""
    front = [i for i, (x, y) in enumerate(points) if not any(a >= x and b >= y and (a, b) != (x, y) for a, b in points)]
    return sorted(front, key=lambda i: points[i])


def pareto_scatter(
    points: list[tuple[str, float, float]], out_png: str | Path, x_label: str = "ESR-1 (%)", y_label: str = "PSR-1 (%)"
) -> Path:
    """Each (label, x, y) as a point, the Pareto front (both higher is better) as a line through its points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    xy = [(x, y) for _, x, y in points]
    front = pareto_front(xy)
    ax.scatter([p[0] for p in xy], [p[1] for p in xy], s=25, color="#4477aa")
    ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], "--", color="#cc3311", label="Pareto front")
    for label, x, y in points:
        ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.legend(fontsize=8)
    return _save(fig, out_png)


def asr_bars(bars: dict[str, list[tuple[str, float, float, float]]], out_png: str | Path) -> Path:
    """One panel per attack: a bar per model, ASR (%) with its 95% interval as the error bar.
    `bars`: attack -> [(model label, asr, low, high)]."""
    import numpy as np

    plt = _pyplot()
    names = list(bars)
    width = max(len(v) for v in bars.values())
    fig, axes = plt.subplots(1, len(names), figsize=(1 + (0.5 * width + 0.8) * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        labels = [b[0] for b in bars[name]]
        asr = np.array([b[1] for b in bars[name]])
        err = np.array([[b[1] - b[2] for b in bars[name]], [b[3] - b[1] for b in bars[name]]])
        ax.bar(range(len(labels)), asr, yerr=err, capsize=3, color="#ee7733")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_title(name)
    axes[0][0].set_ylabel("ASR (%), 95% interval")
    return _save(fig, out_png)
