"""The bench's table, made from its cells alone (so a merged run and an unsharded one give the same bytes):
one record per row, rates with n and a 95% Wilson interval, KID and FJD with a seeded bootstrap interval, the
splits' mean ± std per method, and the concept graph when the spec asks for it.

KID and FJD compare a model's general-set images (seeds A) with the base model's images of the same prompts on
other seeds (B); the base row's figure is the base model's own split-half distance (A against B), the floor that
every other row is read against.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from erasekit.bench.cells import Cells
from erasekit.bench.compute import Context, domain_of, missing, row_keys
from erasekit.bench.spec import NONE, Row
from erasekit.core.errors import ErasekitError
from erasekit.eval import metrics as M
from erasekit.eval.attack import worst_case

RATE_ORDER = ("esr@1", "esr@5", "psr@1", "psr@5", "mark_rate", "ner@0.3", "ner@0.5", "ner@0.7", "ner@0.8")
BOOTSTRAP = 100


def _features(cells: Cells, key: str) -> np.ndarray:
    from safetensors.numpy import load_file

    return load_file(str(cells.path(key, ".safetensors")))["features"].astype(np.float64)


def _distances(edit: np.ndarray, reference: np.ndarray) -> dict:
    """KID (x 10^3) and FJD of a row's features against the base model's reference half, with their intervals."""
    return M.feature_distances(edit, reference, resamples=BOOTSTRAP, seed=0)


def _pooled(cells_: list[dict], name: str) -> tuple[float, list[float], int]:
    """One rate over several cells' images (a row that erases several concepts is attacked once per concept)."""
    n = sum(c[f"{name}_n"] for c in cells_)
    hits = sum(round(c[name] * c[f"{name}_n"] / 100) for c in cells_)
    rate = 100.0 * hits / n if n else 0.0
    return rate, M.wilson(rate, n), n


def records(ctx: Context, rows: list[Row]) -> list[dict]:
    """The table's records, in the spec's order; refused (naming what is missing) unless every cell is there."""
    keyed = [(row, row_keys(ctx, row)) for row in rows]
    absent = [(row.label, k) for row, keys in keyed for k in missing(ctx, keys)]
    if absent:
        first = ", ".join(sorted({label for label, _ in absent})[:4])
        raise ErasekitError(
            f"bench {ctx.cells.out}: {len(absent)} cell(s) are missing (rows {first}...): run the "
            "shards that hold them, then collect again"
        )
    base_general = None
    if ctx.spec.general:
        base_key = next(keys["general"] for row, keys in keyed if row.method.name == NONE)
        features = _features(ctx.cells, base_key)
        base_general = M.seed_halves(features, ctx.spec.general["n"])
    base_suite = {row.concept: ctx.cells.get(keys["suite"]) for row, keys in keyed if row.method.name == NONE}
    out = []
    for row, keys in keyed:
        out.append(_record(ctx, row, keys, base_suite[row.concept], base_general))
    return out


def _record(ctx: Context, row: Row, keys: dict, base_suite: dict, base_general) -> dict:
    cells = ctx.cells
    erasure = cells.get(keys["erasure"]) or {}
    rec: dict = {
        "method": row.method.label,
        "concept": row.concept,
        "erased": "+".join(row.erase),
        "kind": domain_of(ctx, row.erase).kind,
        "iterations": erasure.get("iterations"),
    }
    budget = erasure.get("budget")
    rec["budget"] = f"ESR-1>={budget['esr']:g} every {budget['every']} to {budget['max']}" if budget else None
    rec["reached"] = erasure.get("reached")
    suite = cells.get(keys["suite"])
    m = suite["metrics"]
    for column, name in domain_of(ctx, row.erase).rates.items():
        n = m.get(f"{name}_n", m.get(f"{name.split('@')[0]}_n", suite["n_images"]))
        rec[column], rec[f"{column}_n"] = m[name], n
        rec[f"{column}_ci"] = m.get(f"{name}_ci") or M.wilson(m[name], n)  # cells before rates kept their interval
    if "psr@1" in rec:
        rec["psr@1_of_base"] = (
            100.0 * m["psr@1"] / base_suite["metrics"]["psr@1"] if base_suite["metrics"]["psr@1"] else None
        )
    if base_general is not None:
        general = cells.get(keys["general"])
        edit = base_general[0] if row.method.name == NONE else _features(cells, keys["general"])
        rec.update(_distances(edit, base_general[1]))
        rec["general_n"] = len(edit)
        rec["features"] = general.get("features", "world")
        for name in ("attribute_agreement", "clip_score"):
            if name in general:
                rec[name] = general[name]
    if ctx.spec.attacks:
        names = ctx.spec.attacks["names"]
        for name in names:
            per = [cells.get(keys["attacks"][(name, c)]) for c in row.erase]
            rec[f"asr_{name}"], rec[f"asr_{name}_ci"], rec[f"asr_{name}_n"] = _pooled(per, "asr")
            rec[f"{name}_seconds"] = sum(c["seconds"] for c in per)
            if all("asr_cal" in c for c in per):  # the original prompt kept as a candidate (cells since issue 30)
                rec[f"asr_{name}_cal"], rec[f"asr_{name}_cal_ci"], rec[f"asr_{name}_cal_n"] = _pooled(per, "asr_cal")
        grids = {c: {name: cells.get(keys["attacks"][(name, c)]).get("broken") for name in names} for c in row.erase}
        if all(g is not None for per_concept in grids.values() for g in per_concept.values()):
            worst = [worst_case(grids[c]) for c in row.erase]
            rec["asr_any"], rec["asr_any_ci"], rec["asr_any_n"] = _pooled(worst, "asr_any")
        first = [cells.get(keys["attacks"][(names[0], c)]) for c in row.erase]
        rec["pre_attack"], rec["pre_attack_ci"], rec["pre_attack_n"] = _pooled(first, "pre_attack_rate")
    rec["erase_seconds"] = (erasure["seconds"] - erasure.get("check_seconds", 0.0)) if "seconds" in erasure else None
    rec["check_seconds"] = erasure.get("check_seconds")
    rec["grid"] = str(cells.path(keys["suite"], ".png").relative_to(cells.out))
    rec["per_concept"] = suite["per_concept"]
    return rec


# ---- columns: (header, record key, kind of value) ----


def columns(recs: list[dict]) -> list[str]:
    """The CSV's columns: every figure the records have, in a fixed order (intervals as _lo/_hi)."""
    order = ["method", "concept", "erased", "iterations", "budget", "reached"]
    for name in RATE_ORDER:
        if any(name in r for r in recs):
            order += [name, f"{name}_lo", f"{name}_hi", f"{name}_n"]
    if any("psr@1_of_base" in r for r in recs):
        order.append("psr@1_of_base")
    for name in ("kid_x1e3", "fjd"):
        if any(name in r for r in recs):
            order += [name, f"{name}_lo", f"{name}_hi"]
    if any("general_n" in r for r in recs):
        order += ["general_n"] + [n for n in ("attribute_agreement", "clip_score") if any(n in r for r in recs)]
        order += ["features"]  # what KID and FJD were computed on: world (judge), inception (FID), clip
    attacks = [k[4:] for k in recs[0] if k.startswith("asr_") and not k.endswith(("_ci", "_n"))]
    for name in attacks:
        order += [f"asr_{name}", f"asr_{name}_lo", f"asr_{name}_hi", f"asr_{name}_n"]
    if attacks:
        order += ["pre_attack", "pre_attack_lo", "pre_attack_hi", "pre_attack_n"]
    order += ["erase_seconds", "check_seconds"] + [f"{name}_seconds" for name in attacks]
    return order


def _value(rec: dict, col: str):
    for suffix, i in (("_lo", 0), ("_hi", 1)):
        if col.endswith(suffix) and f"{col[: -len(suffix)]}_ci" in rec:
            return rec[f"{col[: -len(suffix)]}_ci"][i]
    return rec.get(col)


def _cell(value, col: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}" if col.endswith("seconds") else f"{value:.2f}"
    return str(value)


def to_csv(recs: list[dict]) -> str:
    cols = columns(recs)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in recs:
        writer.writerow([_cell(_value(r, c), c) for c in cols])
    return buf.getvalue()


def shown(rec: dict, name: str, digits: int = 1) -> str:
    """A figure as the markdown and the report print it: value [low, high] n=N where it has them."""
    if rec.get(name) is None:
        return "–"
    text = f"{rec[name]:.{digits}f}"
    if f"{name}_ci" in rec:
        low, high = rec[f"{name}_ci"]
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    if f"{name}_n" in rec:
        text += f" n={rec[f'{name}_n']}"
    return text


def display(recs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The headline table: headers and text cells (what table.md and report.html show)."""
    heads = ["method", "concept", "iterations"]
    names = [
        n
        for n in (
            "esr@1",
            "esr@5",
            "psr@1",
            "psr@5",
            "psr@1_of_base",
            "mark_rate",
            "ner@0.3",
            "ner@0.5",
            "ner@0.7",
            "ner@0.8",
            "kid_x1e3",
            "fjd",
            "attribute_agreement",
            "clip_score",
        )
        if any(n in r for r in recs)
    ]
    attacks = [k for k in recs[0] if k.startswith("asr_") and not k.endswith(("_ci", "_n"))]
    labels = {
        "esr@1": "ESR-1",
        "esr@5": "ESR-5",
        "psr@1": "PSR-1",
        "psr@5": "PSR-5",
        "psr@1_of_base": "PSR-1 % base",
        "mark_rate": "mark rate",
        **{f"ner@{t}": f"NER@{t}" for t in (0.3, 0.5, 0.7, 0.8)},
        "kid_x1e3": "KID×10³",
        "fjd": "FJD",  # on the features of rec["features"]: FID where they are Inception's
        "attribute_agreement": "attributes",
        "clip_score": "CLIP",
        "pre_attack": "pre-attack",
    }
    heads += [labels[n] for n in names] + [f"ASR {a[4:]}" for a in attacks]
    heads += ["pre-attack"] if attacks else []
    heads += ["s (method)"]
    body = []
    for r in recs:
        it = "–" if r.get("iterations") is None else str(r["iterations"])
        if r.get("budget"):
            it += " ✓" if r.get("reached") else " (max)"
        cells = [r["method"], r["concept"], it]
        cells += [shown(r, n, 2 if n == "kid_x1e3" else 1) for n in names]
        cells += [shown(r, a, 0) for a in attacks] + ([shown(r, "pre_attack", 0)] if attacks else [])
        cells.append("–" if r.get("erase_seconds") is None else f"{r['erase_seconds']:.1f}")
        body.append(cells)
    return heads, body


def split_summary(recs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Per method over its split rows: mean ± std of the rates, the iterations it needed, splits that reached the
    target."""
    heads = ["method", "splits", "ESR-1", "ESR-5", "PSR-1", "PSR-5", "iterations (min–max)", "reached"]
    body = []
    for method in dict.fromkeys(r["method"] for r in recs):
        rows = [r for r in recs if r["method"] == method and r["concept"].startswith("split") and "esr@1" in r]
        if not rows:
            continue
        stat = {
            k: f"{np.mean([r[k] for r in rows]):.1f} ± {np.std([r[k] for r in rows]):.1f}"
            for k in ("esr@1", "esr@5", "psr@1", "psr@5")
        }
        its = [r["iterations"] for r in rows if r.get("iterations") is not None]
        iterations = f"{np.mean(its):.0f} ({min(its)}–{max(its)})" if its else "–"
        reached = [r["reached"] for r in rows if r.get("reached") is not None]
        body.append(
            [
                method,
                str(len(rows)),
                stat["esr@1"],
                stat["esr@5"],
                stat["psr@1"],
                stat["psr@5"],
                iterations,
                f"{sum(reached)}/{len(reached)}" if reached else "–",
            ]
        )
    return heads, body


def graph_rows(recs: list[dict]) -> list[tuple[str, str, list[float]]]:
    """The concept graph from the erasure suites: δ_{c_e}(c) = (base acc@1(c) − edited acc@1(c)) / 100 over the ten
    objects for every single-object row, as (method, erased object, row)."""
    from erasekit.world.render import OBJECTS

    base = {r["concept"]: r["per_concept"] for r in recs if r["method"] == NONE}
    return [
        (
            r["method"],
            r["erased"],
            [(base[r["concept"]][o]["acc@1"] - r["per_concept"][o]["acc@1"]) / 100 for o in OBJECTS],
        )
        for r in recs
        if r["method"] != NONE and r["kind"] == "object" and "+" not in r["erased"]
    ]


def graph(recs: list[dict]) -> tuple[list[str], list[list[float]], list[str]]:
    """`graph_rows` as (row labels "method − object", matrix, object names)."""
    from erasekit.world.render import OBJECTS

    rows = graph_rows(recs)
    return [f"{m} − {e}" for m, e, _ in rows], [row for _, _, row in rows], list(OBJECTS)


def markdown_table(heads: list[str], body: list[list[str]]) -> str:
    """A markdown table of text cells under `heads`."""
    return "\n".join(
        ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)] + ["| " + " | ".join(row) + " |" for row in body]
    )


def to_markdown(title: str, recs: list[dict], note: str = "") -> str:
    table = markdown_table
    parts = [f"# {title}", "", note, "", table(*display(recs))]
    heads, body = split_summary(recs)
    if body:
        parts += ["", "## Over the splits (mean ± std)", "", table(heads, body)]
    base = [r for r in recs if r["method"] == NONE and "fjd" in r][:1]
    if base:
        b = base[0]
        parts += [
            "",
            f"Base model's split-half distance (general set, {b['general_n']} images per half): "
            f"KID×10³ {shown(b, 'kid_x1e3', 2)}, FJD {shown(b, 'fjd')}. A row's KID/FJD is read "
            "against it: a difference inside it is sampling noise.",
        ]
    return "\n".join(parts) + "\n"
