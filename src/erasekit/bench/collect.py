"""Running a bench and collecting it: `run` computes this shard's rows (all of them by default) and, unsharded,
writes the outputs; `collect` writes them from the cells of a bench folder and of the shard folders inside it.

    OUT/spec.yaml       the spec the table was made from (what --collect reads)
    OUT/table.csv       one line per row: every figure, intervals as _lo/_hi, n, seconds
    OUT/table.md        the same for people, the splits' mean ± std, the base model's split-half KID/FJD
    OUT/report.html     sortable tables, every method's images for the same seeds, the ESR-PSR scatter with its
                        Pareto front, ASR bars per attack, the concept graph
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from erasekit.bench.cells import CELLS, Cells
from erasekit.bench.compute import Context, check_rows, run_row
from erasekit.bench.spec import NONE, Spec, load_spec, parse_spec
from erasekit.bench.table import display, graph, records, split_summary, to_csv, to_markdown
from erasekit.core.errors import ErasekitError
from erasekit.core.files import write_text

SPEC_FILE = "spec.yaml"
OUTPUTS = ("table.csv", "table.md", "report.html")


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' (1 <= i <= n) -> (i, n); None -> (1, 1)."""
    if text is None:
        return 1, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ErasekitError(f"--shard takes i/n (e.g. 2/4), got {text!r}") from None
    if not 1 <= i <= n:
        raise ErasekitError(f"--shard {text}: i must be between 1 and n")
    return i, n


def context(spec: Spec, out: Path, roots=(), progress: bool = True) -> Context:
    from erasekit.eval.generate import process_state
    from erasekit.eval.registries import world_of
    from erasekit.models.load import load_bundle

    state = process_state()
    base = load_bundle(spec.model)
    world = world_of(base) is not None
    if world != spec.world:  # a miniature export named by its folder: whose splits, now that the model is known
        spec = parse_spec(spec.text, f"{spec.name}.yaml", world)
    return Context(
        spec, base, Cells(out, tuple(roots), writer=state is None or state.is_main_process), progress, state=state
    )


def run(spec_path: str | Path, out: str | Path, shard: str | None = None, progress: bool = True) -> list[Path]:
    """Compute the cells of this shard's rows (every n-th row, the i-th first); unsharded, also write the
    outputs. Returns the outputs written (none for a shard)."""
    return run_spec(load_spec(spec_path), out, shard, progress)


def run_spec(
    spec: Spec, out: str | Path, shard: str | None = None, progress: bool = True, ctx: Context | None = None
) -> list[Path]:
    """`run` for a spec already parsed (`erasekit graph --all` builds its own, and passes the context it reads the
    cells with, so the base model is loaded once)."""
    out = Path(out)
    i, n = parse_shard(shard)
    if out.exists() and not out.is_dir():
        raise ErasekitError(f"bench output {out} is a file")
    if out.is_dir() and any(out.iterdir()) and not (out / SPEC_FILE).exists():
        raise ErasekitError(
            f"{out} holds files but is not a bench folder (no {SPEC_FILE}): give a new or empty "
            "folder, or a bench folder to extend"
        )
    ctx = ctx or context(spec, out, progress=progress)
    spec = ctx.spec
    rows = spec.rows()
    check_rows(ctx, rows)
    if ctx.main:
        _write_spec(out / SPEC_FILE, spec.text)
    mine = [row for index, row in enumerate(rows) if index % n == i - 1]
    done = 0
    for row in mine:
        computed = run_row(ctx, row)
        done += computed
        if ctx.main and progress:
            print(f"bench {spec.name}: {row.label}: {'computed' if computed else 'every cell cached'}", flush=True)
    if n > 1:
        print(
            f"bench {spec.name}: shard {i}/{n} finished ({done} of its {len(mine)} rows computed now); when every "
            f"shard has finished: erasekit bench --collect {out}"
        )
        return []
    return write_outputs(ctx, rows) if ctx.main else []


def _write_spec(path: Path, text: str) -> None:
    """The spec beside the cells; shards started together write the same text, each through its own temporary."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=".spec.", suffix=".tmp", delete=False, encoding="utf-8"
    ) as f:
        f.write(text)
    Path(f.name).replace(path)


def collect(folder: str | Path, progress: bool = True) -> list[Path]:
    """The outputs of the bench in `folder` from its cells and those of any bench folder inside it (shards run
    elsewhere and copied in)."""
    folder = Path(folder)
    if not (folder / SPEC_FILE).is_file():
        raise ErasekitError(f"{folder} is not a bench folder (no {SPEC_FILE}): give the --out of `erasekit bench`")
    spec = parse_spec((folder / SPEC_FILE).read_text(encoding="utf-8"), str(folder / SPEC_FILE))
    roots = sorted(p.parent for p in folder.glob(f"*/{CELLS}") if p.parent != folder)
    ctx = context(spec, folder, roots, progress)
    return write_outputs(ctx, ctx.spec.rows())


def write_outputs(ctx: Context, rows) -> list[Path]:
    """table.csv, table.md and report.html, written only once all of them are made."""
    from erasekit.report.bench import write_bench_report

    spec, out = ctx.spec, ctx.cells.out
    recs = records(ctx, rows)
    note = (
        f"model {spec.model} (fingerprint {ctx.fingerprint}); erasure suite {spec.erasure['n']} images "
        f"per prompt"
        + (f"; general set {spec.general['n']} images per prompt" if spec.general else "")
        + (
            f"; attacks {', '.join(spec.attacks['names'])} with {spec.attacks['n']} images per adversarial prompt"
            if spec.attacks
            else ""
        )
        + ". Rates in %, [95% Wilson interval], n images."
    )
    markdown = to_markdown(f"bench: {spec.name}", recs, note)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        figures = _figures(recs, tmp)
        tables = [("table", "Every row", *display(recs))]
        heads, body = split_summary(recs)
        if body:
            tables.append(("splits", "Over the splits (mean ± std)", heads, body))
        if spec.graph:
            labels, matrix, objects = graph(recs)
            markdown += (
                "\n## Concept graph (δ = (base − edited acc@1) / 100)\n\n"
                + "\n".join(
                    ["| row | " + " | ".join(objects) + " |", "|" + "---|" * (len(objects) + 1)]
                    + [
                        f"| {lab} | " + " | ".join(f"{v:.2f}" for v in row) + " |"
                        for lab, row in zip(labels, matrix, strict=True)
                    ]
                )
                + "\n"
            )
            if labels:
                import numpy as np

                from erasekit.report.plots import graph_heatmap

                figures.append(("Concept graph", graph_heatmap(np.array(matrix), labels, objects, tmp / "graph.png")))
        grids = [
            (
                concept,
                "rows: the erased concepts first, then kept ones; columns: seeds",
                [(r["method"], out / r["grid"]) for r in recs if r["concept"] == concept],
            )
            for concept in dict.fromkeys(r["concept"] for r in recs)
        ]
        report = tmp / "report.html"
        write_bench_report(report, f"bench: {spec.name}", note, tables, grids, figures)
        write_text(tmp / "table.csv", to_csv(recs))
        write_text(tmp / "table.md", markdown)
        for name in OUTPUTS:
            shutil.copyfile(tmp / name, out / f".{name}.tmp")
    for name in OUTPUTS:
        (out / f".{name}.tmp").replace(out / name)
    return [out / name for name in OUTPUTS]


def _figures(recs: list[dict], tmp: Path) -> list[tuple[str, Path]]:
    from erasekit.report.plots import asr_bars, pareto_scatter

    figures = []
    points = [
        (f"{r['method']} {r['concept']}", r["esr@1"], r["psr@1"]) for r in recs if "esr@1" in r and r["method"] != NONE
    ]
    if points:
        figures.append(("ESR-1 against PSR-1, with the Pareto front", pareto_scatter(points, tmp / "scatter.png")))
    attacks = [k[4:] for k in recs[0] if k.startswith("asr_") and not k.endswith(("_ci", "_n"))]
    if attacks:
        bars = {a: [(f"{r['method']} {r['concept']}", r[f"asr_{a}"], *r[f"asr_{a}_ci"]) for r in recs] for a in attacks}
        figures.append(("Attack success rate per attack (95% interval)", asr_bars(bars, tmp / "asr.png")))
    return figures
