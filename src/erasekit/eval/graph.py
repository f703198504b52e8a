"""The concept graph: how erasing c_e hurts every other concept c.

delta_{c_e}(c) = mean over seeds of S(base, c) - S(edited, c), with S the world judge's probability of c's label
for an image generated from "a {c}" (the same seeds for base and edited). One row per erasure, one column per
concept; saved as CSV (the heat map is the report's: `report.plots.graph_heatmap`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_path
from erasekit.eval import metrics as M
from erasekit.eval.generate import generate_batched
from erasekit.models.bundle import Bundle
from erasekit.world.captions import OBJECT_NAMES
from erasekit.world.render import OBJECTS


def concept_scores(
    bundle: Bundle, judge, concepts=OBJECTS, n: int = 8, steps: int = 25, guidance: float = 5.0, desc: str | None = None
) -> np.ndarray:
    """[len(concepts), n]: the judge's probability of concept c on image i of "a {c}"."""
    prompts = [f"a {OBJECT_NAMES[c][0]}" for c in concepts for _ in range(n)]
    seeds = [i for _ in concepts for i in range(n)]
    images = generate_batched(bundle, prompts, seeds, steps=steps, guidance=guidance, desc=desc)
    scores = judge.score(images).object
    idx = np.repeat([OBJECTS.index(c) for c in concepts], n)
    return scores[np.arange(len(idx)), idx].numpy().reshape(len(concepts), n)


def concept_graph(
    base: Bundle,
    edited: dict[str, Bundle],
    judge,
    concepts=OBJECTS,
    n: int = 8,
    steps: int = 25,
    progress: bool = False,
) -> np.ndarray:
    """[len(edited), len(concepts)] side effects delta_{c_e}(c), one row per entry of `edited` (keyed by edit, so
    two edits that erase the same concept are two rows), in its order."""
    base_scores = concept_scores(base, judge, concepts, n, steps, desc="base" if progress else None)
    rows = []
    for name, bundle in edited.items():
        scores = concept_scores(bundle, judge, concepts, n, steps, desc=name if progress else None)
        rows.append([M.side_effect(b, e) for b, e in zip(base_scores, scores, strict=True)])
    return np.array(rows)


def most_hurt(row: np.ndarray, concepts, erased) -> list[tuple[str, float]]:
    """The kept concepts (not in `erased`) by how much the erasure lowered their score, most hurt first."""
    kept = [(c, float(v)) for c, v in zip(concepts, row, strict=True) if c not in set(erased)]
    return sorted(kept, key=lambda cv: -cv[1])


def save_graph(matrix: np.ndarray, edits: list[str], erased: list[str], concepts, out: str | Path) -> Path:
    """graph.csv: one row per edit (its name and the concepts it erased), one column per affected concept."""
    out = Path(out)
    with atomic_path(out / "graph.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["edit", "erased"] + list(concepts))
        for name, what, row in zip(edits, erased, matrix, strict=True):
            writer.writerow([name, what] + [f"{v:.4f}" for v in row])
    return out / "graph.csv"


def _standard_errors(delta: np.ndarray, g0: np.ndarray, n: int) -> np.ndarray:
    """SE of each δ_{c_e}(c_i) = G_0(c_i) − G_{c_e}(c_i), two independent rates over n images each."""
    p0 = np.clip(g0, 0, 1)[None, :]
    p1 = np.clip(p0 - delta, 0, 1)
    return np.sqrt(p0 * (1 - p0) / n + p1 * (1 - p1) / n)


def graph_properties(delta: np.ndarray, g0: np.ndarray, distance: np.ndarray, n: int, concepts) -> dict:
    """The talk's three claims about a full graph, as numbers.

    `delta` [C, C]: row e erases concepts[e], column i is δ_{c_e}(c_i) (the drop of c_i's rate, in [−1, 1]); `g0`
    [C]: the base model's rates G_0; `distance` [C, C]: text-embedding distances d(c_i, c_e); `n`: images per rate.
    - locality (δ larger when c_i is nearer c_e): Spearman ρ(δ, d) over the off-diagonal pairs, pooled, with a
      bootstrap interval, and per erased concept; the claim predicts ρ < 0.
    - asymmetry (Δ_ij ≠ Δ_ji): mean |Δ_ij − Δ_ji| over pairs, beside what sampling noise alone gives a symmetric
      graph (E|N(0, se_ij² + se_ji²)| = sqrt(2/π) sqrt(se_ij² + se_ji²)), and the pairs that differ beyond 1.96 se.
    - abnormal concepts (low G_0, high δ for any c_e): concepts whose δ is significantly above 0 (z > 1.96) under
      more than half of the other erasures, with ρ(G_0, mean δ of the column), which the claim predicts < 0."""
    concepts = list(concepts)
    c = len(concepts)
    off = ~np.eye(c, dtype=bool)
    se = _standard_errors(delta, g0, n)
    rows = {concepts[e]: M.spearman(delta[e, off[e]], distance[e, off[e]]) for e in range(c)}
    iu = np.triu_indices(c, 1)
    gap = np.abs(delta - delta.T)[iu]
    pair_se = np.sqrt(se**2 + se.T**2)[iu]
    beyond = [
        (concepts[i], concepts[j], float(g))
        for i, j, g, s in zip(*iu, gap, pair_se, strict=True)
        if g > 1.96 * s and g > 0
    ]
    z = np.where(se > 0, delta / np.where(se > 0, se, 1), 0.0)
    hurt = ((z > 1.96) & off).sum(axis=0)
    column = np.array([delta[off[:, i], i].mean() for i in range(c)])
    return {
        "locality": {
            "spearman_delta_distance": M.spearman(delta[off], distance[off]),
            "interval": M.spearman_interval(delta[off], distance[off]),
            "pairs": int(off.sum()),
            "per_erased": rows,
            "rows_negative": int(sum(1 for r in rows.values() if r == r and r < 0)),
            "rows_defined": int(sum(1 for r in rows.values() if r == r)),
        },
        "asymmetry": {
            "mean_abs_difference": float(gap.mean()),
            "noise_floor": float(np.sqrt(2 / np.pi) * pair_se.mean()),
            "pairs": int(len(gap)),
            "pairs_beyond_noise": sorted(beyond, key=lambda t: -t[2]),
        },
        "abnormal": {
            "concepts": [concepts[i] for i in range(c) if hurt[i] > (c - 1) / 2],
            "spearman_g0_column_delta": M.spearman(g0, column),
            "g0": dict(zip(concepts, map(float, g0), strict=True)),
            "column_mean_delta": dict(zip(concepts, map(float, column), strict=True)),
            "hurt_by": dict(zip(concepts, map(int, hurt), strict=True)),
        },
        "mean_off_diagonal_delta": float(delta[off].mean()),
        "n": n,
    }


def graph_judge(base):
    """(judge, concepts) of the concept graph: the world judge and the world's objects; refused on a model the world
    judge cannot score."""
    from erasekit.eval.registries import world_of

    own = world_of(base)
    if own is None or "graph" not in own.world:
        raise ErasekitError(
            f"graph scores the world's objects with the world judge, which knows only the miniature; "
            f"{base.source!r} is not the miniature"
        )
    return own.load(None, base.device), own.world["graph"]()
