"""Issue 17 on the miniature: the model-diff inspector (talk Eq. 19), the full concept graph's properties, and
Eq. 17's edit and debias modes of AGE.

    .venv/bin/python benchmarks/inspect_world.py [--out bench/inspect-world] [--graph bench/concept-graph]

1. Blind identification: each single-object erasure of the ten objects by esd, uce, ap and age (the cached
   erasures of `erasekit graph --all` in --graph), inspected with no c_e over the `world` lexicon (41 words).
   A hit: the erased object or its synonym is top-1 (top-3). Also a Dark Miner LoRA edit of `star`
   (`max_loops` 4) and UCE's edit red -> blue.
2. Sensitivity: with c_e known, Eq. 19 over the nine kept objects against the judge-measured δ of the same graph
   row (Spearman per edit, then the mean over the edits with a defined ρ, and pooled over all kept pairs), for
   λ = 0, 1 and L2 alone (λ → ∞). 2b: the same against a continuous δ, the judge's mean probability drop of
   "a {object}" on seeds 0..n−1 (what `inspect` itself reports), since the graph's acc@1 δ is 0 for most kept
   objects.
3. The full graph's three properties for every method (`bench.graph`).
4. Eq. 17: AGE edit circle -> square and AGE debias star over yellow/red/blue/green (64 held-out seeds), beside
   UCE's edit here and UCE's debias as `benchmarks/erase_world.py` measures it.
5. Time: one inspection as `erasekit inspect` runs it (ranking + images and δ of the top 6 at n 8), median of 3.

Results are cached in --out/results.json (a rerun prints them again).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

from erasekit.bench.graph import full_graphs, properties_table
from erasekit.cli import quiet_libraries
from erasekit.core.edit import Edit
from erasekit.core.files import write_text
from erasekit.core.loop import Run
from erasekit.core.vocab import grouped, load_vocabulary
from erasekit.eval.generate import generate_batched
from erasekit.eval.inspect import InspectConfig, inspect_models, judged
from erasekit.eval.judges import method_scorer, world_judge
from erasekit.eval.metrics import spearman, spearman_interval, wilson
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle
from erasekit.world.captions import OBJECT_NAMES
from erasekit.world.render import OBJECTS
from erasekit.world.vocab import probe

METHODS = ("esd", "uce", "ap", "age")
COLOURS = ("yellow", "red", "blue", "green")


class Cache:
    def __init__(self, out: Path):
        self.path = out / "results.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key, fn):
        if key not in self.data:
            value = fn()
            self.data = json.loads(self.path.read_text()) if self.path.exists() else {}  # keep others' keys
            self.data[key] = value
            write_text(self.path, json.dumps(self.data, indent=2))
        return self.data[key]


def blind(base, edited, vocab) -> list[str]:
    return inspect_models(base, edited, vocab, InspectConfig()).top(3)


def identification(base, graphs, vocab, m) -> dict:
    return {c: blind(base, Edit.load(graphs[m].edits[c]).apply(base), vocab) for c in OBJECTS}


def sensitivity(base, graphs, m) -> dict:
    """Eq. 19's scores of the nine kept objects (c_e known) and the graph row's δ, per edit of method m."""
    g, rows = graphs[m], {}
    for e, c in enumerate(g.concepts):
        edited = Edit.load(g.edits[c]).apply(base)
        kept = [o for o in g.concepts if o != c]
        ins = inspect_models(base, edited, grouped([[o] for o in kept]), InspectConfig(lam=1.0), erased=c)
        by = {r.concept: r for r in ins.rows}
        rows[c] = {
            "l1": [by[o].l1 for o in kept],
            "l2": [by[o].l2 for o in kept],
            "delta": [float(g.delta[e, g.concepts.index(o)]) for o in kept],
        }
    return rows


def probabilities(model, objects, judge, n) -> dict[str, list[float]]:
    """The judge's probability of each object for "a {object}" on seeds 0..n−1 (the inspector's own δ)."""
    images = generate_batched(model, [f"a {o}" for o in objects for _ in range(n)], list(range(n)) * len(objects))
    scores = judge.score(images)
    return {o: scores.probability("object", o)[i * n : (i + 1) * n].tolist() for i, o in enumerate(objects)}


def soft_sensitivity(base, graphs, m, judge, base_p, n) -> dict:
    """The same edits' δ as the judge's mean probability drop (continuous; the graph's acc@1 δ is mostly 0)."""
    g, rows = graphs[m], {}
    for c in g.concepts:
        kept = [o for o in g.concepts if o != c]
        p = probabilities(Edit.load(g.edits[c]).apply(base), kept, judge, n)
        rows[c] = [float(np.mean(base_p[o]) - np.mean(p[o])) for o in kept]
    return rows


def lora_and_colour(base, vocab) -> dict:
    spec = registry.get("darkminer")
    config = registry.build_config(spec, values={"max_loops": 4}, preset="mini")
    concepts = ConceptSet(["star"])
    started = time.perf_counter()
    edit = spec.erase(base, concepts, config, Run(progress=True, scorer=method_scorer(spec, base, config, concepts)))
    dm_seconds = time.perf_counter() - started
    uce = registry.get("uce")
    colour = uce.erase(
        base,
        ConceptSet(["red"], target="blue"),
        registry.build_config(uce, values={"mode": "edit"}, preset="mini"),
        Run(progress=False),
    )
    return {
        "darkminer_star": {"kind": edit.kind, "top3": blind(base, edit.apply(base), vocab), "seconds": dm_seconds},
        "uce_red_to_blue": {"kind": colour.kind, "top3": blind(base, colour.apply(base), vocab)},
    }


def eq17(base, judge) -> dict:
    seeds = list(range(64))
    out = {}
    for method, values in (("age", {"mode": "edit"}), ("uce", {"mode": "edit"})):
        spec = registry.get(method)
        started = time.perf_counter()
        edit = spec.erase(
            base,
            ConceptSet(["circle"], target="square"),
            registry.build_config(spec, values=values, preset="mini"),
            Run(progress=True),
        )
        seconds = time.perf_counter() - started
        model = edit.apply(base)
        shown = judge.score(model.generate(["a circle"] * 64, seeds)).top1("object")
        kept = [o for o in OBJECTS if o not in ("circle", "square")]
        others = judge.score(
            model.generate([f"a {OBJECT_NAMES[o][0]}" for o in kept for _ in range(8)], list(range(8)) * len(kept))
        ).top1("object")
        out[f"{method}_edit"] = {
            "circle_as_square": 100 * np.mean([s == "square" for s in shown]),
            "kept_psr1": 100 * np.mean([s == o for s, o in zip(others, np.repeat(kept, 8), strict=True)]),
            "seconds": seconds,
        }
    spec = registry.get("age")
    started = time.perf_counter()
    edit = spec.erase(
        base,
        ConceptSet(["star"]),
        registry.build_config(spec, values={"mode": "debias", "attributes": COLOURS}, preset="mini"),
        Run(progress=True),
    )
    seconds = time.perf_counter() - started
    for name, model in (("before", base), ("after", edit.apply(base))):
        scores = judge.score(model.generate(["a star"] * 64, seeds))
        colours = Counter(scores.top1("colour"))
        coloured = judge.score(
            model.generate([f"a {c} star" for c in COLOURS for _ in range(16)], list(range(16)) * len(COLOURS))
        ).top1("colour")
        out[f"age_debias_{name}"] = {
            "majority": 100 * colours.most_common(1)[0][1] / 64,
            "shares": dict(colours.most_common()),
            "star_kept": 100 * np.mean([o == "star" for o in scores.top1("object")]),
            "coloured_correct": 100 * np.mean([c == t for c, t in zip(coloured, np.repeat(COLOURS, 16), strict=True)]),
        }
    out["age_debias_after"]["seconds"] = seconds
    return out


def timing(base, judge, edit_folder: Path, vocab) -> list[float]:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        edited = Edit.load(edit_folder).apply(base)
        ins = inspect_models(base, edited, vocab, InspectConfig())
        judged(base, edited, ins.top(6), 8, probe, judge)
        times.append(time.perf_counter() - started)
    return times


def rho_table(sens: dict, deltas: dict) -> str:
    """Spearman of Eq. 19's scores against δ: mean per edit at λ = 0, 1 and L2 alone, and L2 pooled with its CI."""
    lines = [
        "| method | λ = 0 (L1) mean ρ (edits) | λ = 1 mean ρ | L2 alone mean ρ | L2 pooled ρ [95% CI] (pairs) |",
        "|---|---|---|---|---|",
    ]
    for m, rows in sens.items():
        cells = []
        for lam in (0.0, 1.0, None):
            rhos = [
                spearman(
                    [a + (lam or 0) * b if lam is not None else b for a, b in zip(r["l1"], r["l2"], strict=True)],
                    deltas[m][c],
                )
                for c, r in rows.items()
            ]
            rhos = [x for x in rhos if x == x]
            cells.append(f"{statistics.mean(rhos):.2f} ({len(rhos)})" if rhos else "undefined (0)")
        l2 = [v for r in rows.values() for v in r["l2"]]
        delta = [v for c in rows for v in deltas[m][c]]
        lo, hi = spearman_interval(l2, delta)
        lines.append(
            f"| {m} | {cells[0]} | {cells[1]} | {cells[2]} | {spearman(l2, delta):.2f} [{lo:.2f}, {hi:.2f}] "
            f"({len(l2)}) |"
        )
    return "\n".join(lines)


def hits(tops: list[list[str]], erased: list[str], k: int) -> tuple[int, int]:
    ok = sum(bool(set(t[:k]) & set(OBJECT_NAMES[c])) for t, c in zip(tops, erased, strict=True))
    return ok, len(tops)


def main() -> None:
    global METHODS
    quiet_libraries()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/inspect-world")
    parser.add_argument("--graph", default="bench/concept-graph", help="the bench folder of `graph --all`")
    parser.add_argument("--n", type=int, default=16, help="images per prompt of the graph's erasure suite")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of esd,uce,ap,age")
    args = parser.parse_args()
    METHODS = tuple(args.methods.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache(out)
    base, judge, vocab = load_bundle("mini"), world_judge(), load_vocabulary("world")
    started = time.perf_counter()
    graphs = full_graphs(list(METHODS), args.graph, n=args.n, progress=True)
    graph_seconds = time.perf_counter() - started

    ident = {m: cache.get(f"identification/{m}", lambda m=m: identification(base, graphs, vocab, m)) for m in METHODS}
    print("\n1. Blind identification (λ = 0, no c_e; world lexicon, 41 words; hit = erased object or synonym)")
    print("| edits | top-1 [95% CI] | top-3 [95% CI] |\n|---|---|---|")
    for m in (*METHODS, "all"):
        tops = [(t, c) for mm in (METHODS if m == "all" else (m,)) for c, t in ident[mm].items()]
        cells = []
        for k in (1, 3):
            ok, n = hits([t for t, _ in tops], [c for _, c in tops], k)
            lo, hi = wilson(100 * ok / n, n)
            cells.append(f"{ok}/{n} = {100 * ok / n:.0f}% [{lo:.0f}, {hi:.0f}]")
        print(f"| {m} | {cells[0]} | {cells[1]} |")
    misses = [(m, c, t) for m in METHODS for c, t in ident[m].items() if not set(t[:1]) & set(OBJECT_NAMES[c])]
    print(f"misses at top-1: {misses or 'none'}")
    extra = cache.get("lora_colour", lambda: lora_and_colour(base, vocab))
    for name, r in extra.items():
        print(f"{name} ({r['kind']} edit): top-3 {r['top3']}")

    sens = {m: cache.get(f"sensitivity/{m}", lambda m=m: sensitivity(base, graphs, m)) for m in METHODS}
    print("\n2. Sensitivity: Spearman(Eq. 19 score of the nine kept objects, judge δ of the graph row)")
    print(rho_table(sens, {m: {c: r["delta"] for c, r in sens[m].items()} for m in METHODS}))
    base_p = cache.get(f"probability/base/{args.n}", lambda: probabilities(base, list(OBJECTS), judge, args.n))
    soft = {
        m: cache.get(
            f"sensitivity-p/{m}/{args.n}", lambda m=m: soft_sensitivity(base, graphs, m, judge, base_p, args.n)
        )
        for m in METHODS
    }
    print(f"\n2b. The same against the judge's mean probability drop (n = {args.n} per object; continuous)")
    print(rho_table(sens, soft))

    print(
        f"\n3. The full graph's properties (n = {graphs['esd'].n} images per rate; {graph_seconds:.0f} s with "
        "cached erasures)"
    )
    print(properties_table(graphs))

    e17 = cache.get("eq17", lambda: eq17(base, judge))
    print("4. Eq. 17 (64 held-out seeds)")
    for m in ("age", "uce"):
        r = e17[f"{m}_edit"]
        print(
            f"{m} edit circle -> square: 'a circle' judged square {r['circle_as_square']:.1f}%, kept eight "
            f"objects' PSR-1 {r['kept_psr1']:.1f}%, {r['seconds']:.1f} s"
        )
    for name in ("before", "after"):
        r = e17[f"age_debias_{name}"]
        print(
            f"age debias star, {name}: majority colour {r['majority']:.1f}% {r['shares']}, star kept "
            f"{r['star_kept']:.1f}%, 'a {{colour}} star' correct {r['coloured_correct']:.1f}%"
            + (f", {r['seconds']:.1f} s" if "seconds" in r else "")
        )

    times = timing(base, judge, graphs[METHODS[0]].edits["star"], vocab)
    print(
        f"\n5. One inspection (ranking + top 6 judged at n 8): median {statistics.median(times):.1f} s of "
        f"{[round(t, 1) for t in times]}"
    )


if __name__ == "__main__":
    main()
