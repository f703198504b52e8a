"""The full concept graph (`erasekit graph --all`): erase each of the miniature's ten objects in turn with each
method, measure every object's top-1 rate, and test the talk's three claims on the |C|×|C| graph.

It is a bench (`benchmarks/specs/concept-graph.yaml` is the same spec for ESD and AGE): the erasures and suites are
cells in the output folder, so a rerun, another method or a larger n reuses every erasure already made. The graph's
entries are the bench's δ_{c_e}(c) = (base acc@1(c) − edited acc@1(c)) / 100 on the erasure suite (n images per
prompt), and its properties are `eval.graph.graph_properties` with the text-embedding distances of the objects'
names (`methods.search.text_distances`).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erasekit.bench.collect import context, run_spec
from erasekit.bench.compute import erasure_key, row_keys
from erasekit.bench.spec import NONE, parse_spec
from erasekit.bench.table import graph_rows, records
from erasekit.core.files import write_text
from erasekit.eval.graph import graph_properties, save_graph
from erasekit.methods.search import text_distances
from erasekit.world.render import OBJECTS

SPEC = """name: concept-graph
model: {model}
methods: [{methods}]
concepts:
  - {{each: objects}}
suites:
  erasure: {{n: {n}}}
graph: true
"""


@dataclass
class FullGraph:
    method: str
    concepts: list[str]
    delta: np.ndarray  # [C, C]: row e erases concepts[e]
    g0: np.ndarray  # [C]: the base model's top-1 rates
    distance: np.ndarray  # [C, C]: text-embedding distances of the names
    n: int  # images per concept behind each rate
    properties: dict
    edits: dict  # concept -> the folder of the edit that erased it (the bench's cached erasure)


def full_graphs(
    methods: list[str], out: str | Path, n: int = 16, model: str = "mini", progress: bool = True
) -> dict[str, FullGraph]:
    """The full graph of each method (erasures cached in the bench folder `out`), with its properties."""
    spec = parse_spec(SPEC.format(model=model, methods=", ".join(methods), n=n), "graph --all")
    ctx = context(spec, Path(out), progress=progress)
    run_spec(spec, out, progress=progress, ctx=ctx)
    rows = spec.rows()
    recs = records(ctx, rows)
    concepts = list(OBJECTS)
    base = next(r["per_concept"] for r in recs if r["method"] == NONE)
    g0 = np.array([base[c]["acc@1"] / 100 for c in concepts])
    base_row = next(row for row in rows if row.method.name == NONE)
    per_concept = ctx.cells.get(row_keys(ctx, base_row)["suite"])["n_images"] // len(base)  # images behind a rate
    distance = text_distances(ctx.base, concepts, concepts).double().cpu().numpy()
    deltas = graph_rows(recs)
    graphs = {}
    for method in methods:
        by_erased = {erased: row for m, erased, row in deltas if m == method}
        delta = np.array([by_erased[c] for c in concepts])
        edits = {row.erase[0]: ctx.cells.edit_dir(erasure_key(ctx, row)) for row in rows if row.method.label == method}
        graphs[method] = FullGraph(
            method,
            list(concepts),
            delta,
            g0,
            distance,
            per_concept,
            graph_properties(delta, g0, distance, per_concept, concepts),
            edits,
        )
    return graphs


def properties_table(graphs: dict[str, FullGraph]) -> str:
    """One markdown row per method: the three properties as numbers."""
    lines = [
        "| method | mean δ off-diagonal | locality ρ(δ, d) [95% CI] (rows < 0) | asymmetry mean |Δij − Δji| "
        "(noise floor; pairs beyond noise) | abnormal concepts (ρ(G_0, column δ)) |",
        "|---|---|---|---|---|",
    ]
    for m, g in graphs.items():
        p = g.properties
        loc, asym, ab = p["locality"], p["asymmetry"], p["abnormal"]
        lo, hi = loc["interval"]
        lines.append(
            f"| {m} | {p['mean_off_diagonal_delta']:.3f} | {loc['spearman_delta_distance']:.2f} "
            f"[{lo:.2f}, {hi:.2f}] ({loc['rows_negative']}/{loc['rows_defined']}) | "
            f"{asym['mean_abs_difference']:.3f} ({asym['noise_floor']:.3f}; "
            f"{len(asym['pairs_beyond_noise'])}/{asym['pairs']}) | "
            f"{', '.join(ab['concepts']) or 'none'} ({ab['spearman_g0_column_delta']:.2f}) |"
        )
    return "\n".join(lines) + "\n"


def write_graphs(graphs: dict[str, FullGraph], out: str | Path) -> list[Path]:
    """graph-{method}.csv and .png, properties.json and properties.md in `out` (each written whole or not at all)."""
    from erasekit.report.plots import graph_heatmap

    out = Path(out)
    written = []
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        for m, g in graphs.items():
            save_graph(g.delta, [f"{m} − {c}" for c in g.concepts], g.concepts, g.concepts, tmp)
            os.replace(Path(tmp) / "graph.csv", out / f"graph-{m}.csv")
            graph_heatmap(g.delta, [f"{m}: erase {c}" for c in g.concepts], g.concepts, Path(tmp) / "graph.png")
            os.replace(Path(tmp) / "graph.png", out / f"graph-{m}.png")
            written += [out / f"graph-{m}.csv", out / f"graph-{m}.png"]
    data = {
        m: {
            "concepts": g.concepts,
            "delta": g.delta.round(4).tolist(),
            "g0": g.g0.tolist(),
            "n": g.n,
            "distance": g.distance.round(4).tolist(),
            "properties": g.properties,
        }
        for m, g in graphs.items()
    }
    written.append(write_text(out / "properties.json", json.dumps(data, indent=2)))
    written.append(write_text(out / "properties.md", properties_table(graphs)))
    return written
