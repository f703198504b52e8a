"""The docs site's measured rows and images, from nothing: every registered method erasing `star` from the
miniature, scored by the world judge, attacked with Ring-A-Bell and CCE (the bench spec benchmarks/specs/docs.yaml).

    .venv/bin/python benchmarks/docs_results.py [--out bench/docs]

It runs the bench (cells cached in --out: an interrupted run resumes; `erasekit bench benchmarks/specs/docs.yaml
--out bench/docs` computes the same cells), then writes

- docs/results/methods-mini.json: every row's figures (rates with their 95% Wilson interval and n, ASR per
  attack), with the command, commit, machine, date and wall time
  (benchmarks/record.py);
- docs/images/: the base-vs-erased grid of the main methods on "a star" (`grid-methods.png`, the README's), one
  per method (`grid-NAME.png`: "a star" by the base model and the edited one, then "a circle" by both, six seeds),
  the ESR-PSR scatter (`scatter.png`), the ASR bars (`asr.png`) and the concept graph (`graph.png`), each a small
  PNG.

`python docs/gen.py` renders the table into the method pages and docs/results.md. The method's seconds in the file
are its wall time in this run; they are only comparable between rows of one run on a quiet machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import record

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "benchmarks" / "specs" / "docs.yaml"
IMAGES = ROOT / "docs" / "images"
GRID_METHODS = ("esd", "uce+P", "ap", "darkminer")  # the base-vs-erased grid's rows after the base model's
GRID_SEEDS = 6
KEEP = (  # the record keys the docs show (the rest, file paths and per-concept detail, stay in the bench folder)
    "method",
    "concept",
    "iterations",
    "esr@1",
    "esr@5",
    "psr@1",
    "psr@5",
    "psr@1_of_base",
    "kid_x1e3",
    "fjd",
    "general_n",
    "attribute_agreement",
    "pre_attack",
    "erase_seconds",
)


def trimmed(rec: dict) -> dict:
    """The figures the docs render, each with its interval and n where it has them."""
    out = {}
    for key, value in rec.items():
        base = key.removesuffix("_ci").removesuffix("_n")
        if key in KEEP or base in KEEP or base.startswith("asr_") and not base.endswith("_seconds"):
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def draw_images(ctx, recs: list[dict]) -> list[Path]:
    """The docs' four images, small (their size is checked by the tests)."""
    import numpy as np
    import torch

    from erasekit.bench.compute import erasure, erasure_key
    from erasekit.bench.spec import NONE
    from erasekit.bench.table import graph
    from erasekit.eval.generate import grid
    from erasekit.report.plots import asr_bars, graph_heatmap, pareto_scatter

    IMAGES.mkdir(parents=True, exist_ok=True)
    written = []
    points = [(r["method"], r["esr@1"], r["psr@1"]) for r in recs if r["method"] != NONE]
    written.append(pareto_scatter(points, IMAGES / "scatter.png"))
    attacks = [k[4:] for k in recs[0] if k.startswith("asr_") and not k.endswith(("_ci", "_n", "_seconds"))]
    bars = {a: [(r["method"], r[f"asr_{a}"], *r[f"asr_{a}_ci"]) for r in recs] for a in attacks}
    written.append(asr_bars(bars, IMAGES / "asr.png"))
    labels, matrix, objects = graph(recs)
    written.append(graph_heatmap(np.array(matrix), labels, objects, IMAGES / "graph.png"))

    seeds = list(range(GRID_SEEDS))
    star = ctx.base.generate("a star", seeds=seeds)
    circle = ctx.base.generate("a circle", seeds=seeds)
    rows, overview = {}, [star]
    for row in ctx.spec.rows():
        if row.method.name == NONE:
            continue
        model, _ = erasure(ctx, row, erasure_key(ctx, row))
        rows[row.method.label] = model.generate("a star", seeds=seeds)
        picture = grid(
            torch.cat([star, rows[row.method.label], circle, model.generate("a circle", seeds=seeds)]),
            nrow=len(seeds),
            tile=48,
        )
        path = IMAGES / f"grid-{row.method.name}.png"
        picture.save(path, optimize=True)
        written.append(path)
    overview += [rows[label] for label in GRID_METHODS]
    path = IMAGES / "grid-methods.png"
    grid(torch.cat(overview), nrow=len(seeds), tile=64).save(path, optimize=True)
    written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/docs", help="the bench folder (cells cached there)")
    args = parser.parse_args()
    from erasekit.bench.collect import context, run_spec
    from erasekit.bench.spec import load_spec
    from erasekit.bench.table import records
    from erasekit.cli import quiet_libraries

    quiet_libraries()
    started = time.perf_counter()
    spec = load_spec(SPEC)
    out = Path(args.out)
    run_spec(spec, out)
    ctx = context(spec, out)
    recs = records(ctx, spec.rows())
    results = {
        "spec": SPEC.relative_to(ROOT).as_posix(),
        "model": spec.model,
        "fingerprint": ctx.fingerprint,
        "erasure_n": spec.erasure["n"],
        "attacks": spec.attacks["names"],
        "attack_n": spec.attacks["n"],
        "records": [trimmed(r) for r in recs],
        # the time the cells took when they were computed (a rerun reads them from --out: its own wall time is
        # only the collection's)
        "cell_seconds": round(
            sum(
                (r.get("erase_seconds") or 0)
                + sum(v for k, v in r.items() if k.endswith("_seconds") and k.startswith(tuple(spec.attacks["names"])))
                for r in recs
            ),
            1,
        ),
    }
    print("wrote", record.save("methods-mini", results, started))
    for path in draw_images(ctx, recs):
        print("wrote", path)


def table(results: dict) -> str:
    """The markdown table of a methods-mini results file (what docs/gen.py renders)."""
    from erasekit.bench.table import display, markdown_table

    return markdown_table(*display(results["records"]))


if __name__ == "__main__":
    main()
