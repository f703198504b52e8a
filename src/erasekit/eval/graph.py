"""The concept graph: how erasing c_e hurts every other concept c.

delta_{c_e}(c) = mean over seeds of S(base, c) - S(edited, c), with S the world judge's probability of c's label
for an image generated from "a {c}" (the same seeds for base and edited). One row per erasure, one column per
concept; saved as CSV (the heat map is the report's: `report.plots.graph_heatmap`).
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
                   guidance: float = 5.0, desc: str | None = None) -> np.ndarray:
    """[len(concepts), n]: the judge's probability of concept c on image i of "a {c}"."""
    prompts = [f"a {OBJECT_NAMES[c][0]}" for c in concepts for _ in range(n)]
    seeds = [i for _ in concepts for i in range(n)]
    images = generate_batched(bundle, prompts, seeds, steps=steps, guidance=guidance, desc=desc)
    scores = judge.score(images).object
    idx = np.repeat([OBJECTS.index(c) for c in concepts], n)
    return scores[np.arange(len(idx)), idx].numpy().reshape(len(concepts), n)


def concept_graph(base: Bundle, edited: dict[str, Bundle], judge, concepts=OBJECTS, n: int = 8,
                  steps: int = 25, progress: bool = False) -> np.ndarray:
    """[len(edited), len(concepts)] side effects delta_{c_e}(c), one row per entry of `edited` (keyed by edit, so
    two edits that erase the same concept are two rows), in its order."""
    base_scores = concept_scores(base, judge, concepts, n, steps, desc="base" if progress else None)
    rows = []
    for name, bundle in edited.items():
        scores = concept_scores(bundle, judge, concepts, n, steps, desc=name if progress else None)
        rows.append([M.side_effect(b, e) for b, e in zip(base_scores, scores)])
    return np.array(rows)


def most_hurt(row: np.ndarray, concepts, erased) -> list[tuple[str, float]]:
    """The kept concepts (not in `erased`) by how much the erasure lowered their score, most hurt first."""
    kept = [(c, float(v)) for c, v in zip(concepts, row) if c not in set(erased)]
    return sorted(kept, key=lambda cv: -cv[1])


def save_graph(matrix: np.ndarray, edits: list[str], erased: list[str], concepts, out: str | Path) -> Path:
    """graph.csv: one row per edit (its name and the concepts it erased), one column per affected concept."""
    out = Path(out)
    with atomic_path(out / "graph.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["edit", "erased"] + list(concepts))
        for name, what, row in zip(edits, erased, matrix):
            writer.writerow([name, what] + [f"{v:.4f}" for v in row])
    return out / "graph.csv"
