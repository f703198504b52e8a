"""The concept graph: how erasing c_e hurts every other concept c.

delta_{c_e}(c) = mean over seeds of S(base, c) - S(edited, c), with S the world judge's probability of c's label
for an image generated from "a {c}" (the same seeds for base and edited). One row per erasure, one column per
concept; saved as CSV and drawn as a heat map.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from erasekit.core.bundle import Bundle
from erasekit.core.files import atomic_path
from erasekit.eval import metrics as M
from erasekit.eval.generate import generate_batched
from erasekit.world.captions import OBJECT_NAMES
from erasekit.world.render import OBJECTS


def concept_scores(bundle: Bundle, judge, concepts=OBJECTS, n: int = 8, steps: int = 25,
                   guidance: float = 5.0) -> np.ndarray:
    """[len(concepts), n]: the judge's probability of concept c on image i of "a {c}"."""
    prompts = [f"a {OBJECT_NAMES[c][0]}" for c in concepts for _ in range(n)]
    seeds = [i for _ in concepts for i in range(n)]
    scores = judge.score(generate_batched(bundle, prompts, seeds, steps=steps, guidance=guidance)).object
    idx = np.repeat([OBJECTS.index(c) for c in concepts], n)
    return scores[np.arange(len(idx)), idx].numpy().reshape(len(concepts), n)


def concept_graph(base: Bundle, edited: dict[str, Bundle], judge, concepts=OBJECTS, n: int = 8,
                  steps: int = 25) -> np.ndarray:
    """[len(edited), len(concepts)] side effects delta_{c_e}(c) (rows in the order of `edited`)."""
    base_scores = concept_scores(base, judge, concepts, n, steps)
    rows = []
    for bundle in edited.values():
        scores = concept_scores(bundle, judge, concepts, n, steps)
        rows.append([M.side_effect(b, e) for b, e in zip(base_scores, scores)])
    return np.array(rows)


def save_graph(matrix: np.ndarray, erased: list[str], concepts, out: str | Path) -> tuple[Path, Path]:
    """graph.csv (rows: erased concept, columns: affected concept) and graph.png (heat map)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    with atomic_path(out / "graph.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["erased"] + list(concepts))
        for name, row in zip(erased, matrix):
            writer.writerow([name] + [f"{v:.4f}" for v in row])
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(concepts), 1 + 0.5 * len(erased)))
    lim = max(0.05, float(np.abs(matrix).max()))
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(concepts)), concepts, rotation=45, ha="right")
    ax.set_yticks(range(len(erased)), [f"erase {e}" for e in erased])
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="δ = S(base) − S(edited)")
    fig.tight_layout()
    with atomic_path(out / "graph.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out / "graph.csv", out / "graph.png"
