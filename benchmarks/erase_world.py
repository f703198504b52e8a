"""Erasure methods on the miniature, at their default (miniature) configs, scored by the world judge.

    .venv/bin/python benchmarks/erase_world.py [--methods esd,target,ca,uce] [--n 16] [--out bench/erase-world]

- single concept: erase each of the 10 objects in turn and keep the other nine: ESR-1/5 of the erased object,
  PSR-1/5 of the kept nine (and PSR-1 as a share of the base model's), the judge-feature Fréchet distance (FJD)
  on the general prompt set, and the method's wall time per concept;
- five concepts at once on the seeds' four 5+5 splits: ESR-1/5 and PSR-1/5, mean ± std over the splits (with
  `--split-budget per-concept` every fine-tuning method gets 5x its default iterations, the single-concept budget
  per erased concept);
- UCE edit circle -> square and UCE debias of the biased object over four colours;
- with ap/age: the concept graph of erasing one object (--graph-object) under ESD, AP and AGE (graph.csv/png in
  --out/graph-OBJECT/), the concepts each hurts most, what AP and AGE searched (mean π weight over the run's
  top-3 logs) and Spearman's ρ between the search weight of each kept object (its names summed) and how much
  ESD hurts it.

Only UCE receives the kept objects as its preservation set P (its paper's setup); the fine-tuning methods get the
erased concepts alone. UCE, TIME and CA take, at their miniature defaults, the object nearest the (first) erased
object in the text encoder's output space as their guide concept or anchor (`guide=nearest`, methods/guide.py);
`uce:empty`, `time:empty` and `ca:empty` map onto the empty prompt instead (`guide=""`, their papers' defaults
for SD); `METHOD:key=value+...` runs a method with other options (`uce:tokens=last`). Every run's figures are
cached in --out/results.json, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from erasekit.cli import quiet_libraries
from erasekit.core.files import write_text
from erasekit.core.loop import Run, read_log
from erasekit.eval.graph import concept_graph, save_graph
from erasekit.eval.judges import attribute_scorer, method_scorer, world_judge
from erasekit.eval.metrics import spearman, splits_for
from erasekit.eval.suites import Judges, SuiteRun, evaluate
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle
from erasekit.report.plots import graph_heatmap
from erasekit.world.captions import BIAS_COLOUR, BIASED_OBJECT, OBJECT_NAMES
from erasekit.world.render import OBJECTS

DEBIAS_COLOURS = (BIAS_COLOUR, "red", "blue", "green")


class Bench:
    def __init__(self, out: Path, n: int, general_n: int):
        self.out, self.file = out, out / "results.json"
        self.results = json.loads(self.file.read_text()) if self.file.exists() else {}
        self.base = load_bundle("mini", device="cpu")
        self.judge = world_judge()
        self.run = SuiteRun(n=n)
        self.general = SuiteRun(n=general_n)

    def cached(self, key: str, fn):
        if key not in self.results:
            self.results[key] = fn()
            write_text(self.file, json.dumps(self.results, indent=1, sort_keys=True))
        return self.results[key]

    def erase(self, method: str, concepts: ConceptSet, **values):
        spec = registry.get(method)
        config = registry.build_config(spec, values=values, preset="mini")
        scorer = method_scorer(spec, self.base, config, concepts)
        start = time.perf_counter()
        edit = spec.erase(self.base, concepts, config, Run(progress=False, scorer=scorer))
        return edit.apply(self.base), time.perf_counter() - start, edit

    def objects(self, bundle, erased):
        result = evaluate(bundle, "world-objects", self.run, erased, judges=Judges(self.judge))
        return result.metrics, result.per_concept

    def fjd(self, bundle):
        return evaluate(bundle, "world-general", self.general, judges=Judges(self.judge)).metrics["fjd"]

    def erasure(self, method: str, erased: list[str], scale: int = 1) -> dict:
        """`scale`: the fine-tuning methods run `scale` times their default iterations. `method:empty`: the
        method with guide="" (the empty prompt as UCE/TIME's guide and CA's anchor); `method:key=value+key=value`:
        the method with those options (e.g. `uce:tokens=last`)."""
        method, _, variant = method.partition(":")
        kept = [o for o in OBJECTS if o not in erased]
        values = {"guide": ""} if variant == "empty" else dict(kv.split("=", 1) for kv in variant.split("+") if kv)
        if scale != 1 and "iterations" in registry.get(method).presets["mini"]:
            values["iterations"] = scale * registry.get(method).presets["mini"]["iterations"]
        concepts = ConceptSet(erased, kept if method == "uce" else [])
        bundle, seconds, _ = self.erase(method, concepts, **values)
        metrics, _ = self.objects(bundle, erased)
        return {
            **{k: metrics[k] for k in ("esr@1", "esr@5", "psr@1", "psr@5")},
            "fjd": self.fjd(bundle),
            "seconds": seconds,
        }


def base_figures(bench: Bench) -> dict:
    """The base model's per-object top-1/top-5 rates (one evaluation; every object has the same image count,
    so the PSR of any kept set is the mean of its objects' rates) and its general-set FJD."""
    _, per = bench.objects(bench.base, [])
    return {"per_object": per, "fjd": bench.fjd(bench.base)}


def uce_edit(bench: Bench) -> dict:
    bundle, seconds, _ = bench.erase(
        "uce",
        ConceptSet(["circle"], [o for o in OBJECTS if o not in ("circle", "square")], target="square"),
        mode="edit",
    )
    result = evaluate(bundle, "world-objects", bench.run, [], judges=Judges(bench.judge))
    scores = bench.judge.score(bundle.generate(["a circle"] * bench.run.n, list(range(bench.run.n))))
    base_result = evaluate(bench.base, "world-objects", bench.run, [], judges=Judges(bench.judge))
    others = [o for o in OBJECTS if o not in ("circle", "square")]
    kept = np.mean([result.per_concept[o]["acc@1"] for o in others])
    base_kept = np.mean([base_result.per_concept[o]["acc@1"] for o in others])
    return {
        "circle_as_square": float(np.mean([s == "square" for s in scores.top1("object")]) * 100),
        "others_psr@1": float(kept),
        "others_psr@1_of_base": float(kept / base_kept * 100),
        "seconds": seconds,
    }


def uce_debias(bench: Bench) -> dict:
    from erasekit.world.render import COLOUR_NAMES

    scorer = attribute_scorer(bench.base, DEBIAS_COLOURS, BIASED_OBJECT)  # what `erasekit erase` gives debias
    spec = registry.get("uce")
    config = registry.build_config(spec, values={"mode": "debias", "attributes": DEBIAS_COLOURS}, preset="mini")
    concepts = ConceptSet([BIASED_OBJECT])
    start = time.perf_counter()
    edit = spec.erase(bench.base, concepts, config, Run(progress=False, scorer=scorer))
    seconds = time.perf_counter() - start
    seeds = list(range(64))  # evaluation seeds: disjoint from the 10,000+ seeds debias judged

    def shares(bundle):
        colours = bench.judge.score(bundle.generate([f"a {BIASED_OBJECT}"] * len(seeds), seeds)).top1("colour")
        return {k: round(float(np.mean([c == k for c in colours])) * 100, 1) for k in COLOUR_NAMES}

    def coloured(bundle):
        right = []
        for c in DEBIAS_COLOURS:
            got = bench.judge.score(bundle.generate([f"a {c} {BIASED_OBJECT}"] * 16, seeds[:16])).top1("colour")
            right += [g == c for g in got]
        return float(np.mean(right) * 100)

    edited = edit.apply(bench.base)
    before, after = shares(bench.base), shares(edited)
    return {
        "majority_before": max(before.values()),
        "majority_after": max(after.values()),
        "shares_after": after,
        "coloured_before": coloured(bench.base),
        "coloured_after": coloured(edited),
        "alpha": {p: {k: round(v, 3) for k, v in a.items()} for p, a in edit.metrics["debias_alpha"].items()},
        "seconds": seconds,
    }


def search_weights(loss_csv: Path) -> dict[str, float]:
    """Mean over the run's steps of the π weight each concept had in the logged top 3 (0 when absent)."""
    rows = [r for r in read_log(loss_csv) if r.get("top3")]
    total: dict[str, float] = {}
    for r in rows:
        for word, p in r["top3"]:
            total[word] = total.get(word, 0.0) + p / len(rows)
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def concept_graphs(bench: Bench, obj: str, methods: list[str]) -> dict:
    """Erase `obj` with each method (its default config), the concept graph of the three, and what AP/AGE searched."""
    edited, searched = {}, {}
    for method in methods:
        with tempfile.TemporaryDirectory() as tmp:
            spec = registry.get(method)
            edit = spec.erase(
                bench.base,
                ConceptSet([obj]),
                registry.build_config(spec, preset="mini"),
                Run(work=Path(tmp), progress=False),
            )
            if method in ("ap", "age"):
                searched[method] = search_weights(Path(tmp) / "loss.csv")
        edited[method] = edit.apply(bench.base)
    matrix = concept_graph(bench.base, edited, bench.judge, n=2 * bench.run.n)
    save_graph(matrix, methods, [obj] * len(methods), list(OBJECTS), bench.out / f"graph-{obj}")
    graph_heatmap(matrix, methods, list(OBJECTS), bench.out / f"graph-{obj}" / "graph.png")
    return {
        "delta": {m: dict(zip(OBJECTS, map(float, row), strict=True)) for m, row in zip(methods, matrix, strict=True)},
        "searched": searched,
    }


def print_graphs(obj: str, graphs: dict) -> None:
    kept = [o for o in OBJECTS if o != obj]
    print(
        f"\nconcept graph of erasing '{obj}' (δ = base − edited judge probability of c for 'a c', "
        f"graph.csv/png in graph-{obj}/)"
    )
    print(
        "| method | mean δ over the kept nine | hurt most (δ) | searched most (mean π in top 3) | "
        "ρ(search weight, δ under ESD) |"
    )
    print("|---|---|---|---|---|")
    esd = graphs["delta"].get("esd", {})
    for method in sorted(graphs["delta"], key=["esd", "ap", "age"].index):  # (the JSON cache sorts keys)
        delta = graphs["delta"][method]
        hurt = sorted(kept, key=lambda c: -delta[c])[:3]
        found = graphs["searched"].get(method)
        top = ", ".join(f"{w} {p:.2f}" for w, p in sorted(found.items(), key=lambda kv: -kv[1])[:4]) if found else "-"
        rho = "-"
        if found and esd:
            weight = [sum(found.get(n, 0.0) for n in OBJECT_NAMES[c]) for c in kept]
            rho = f"{spearman(weight, [esd[c] for c in kept]):.2f}"
        print(
            f"| {method} | {np.mean([delta[c] for c in kept]):.3f} | "
            f"{', '.join(f'{c} {delta[c]:.2f}' for c in hurt)} | {top} | {rho} |"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="esd,target,ap,age,ca,uce")
    ap.add_argument("--n", type=int, default=8, help="images per object prompt")
    ap.add_argument("--general-n", type=int, default=1, help="images per general prompt (FJD)")
    ap.add_argument("--out", default="bench/erase-world")
    ap.add_argument(
        "--split-budget",
        choices=("default", "per-concept"),
        default="default",
        help="5+5 splits: the default iterations, or the default times the 5 erased concepts",
    )
    ap.add_argument("--graph-object", default=OBJECTS[0], help="the erasure whose concept graph is compared")
    args = ap.parse_args()
    quiet_libraries()
    torch.manual_seed(0)
    bench = Bench(Path(args.out), args.n, args.general_n)
    base = bench.cached("base", lambda: base_figures(bench))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    table = []
    for method in methods:
        single = [
            bench.cached(f"{method}/single/{o}", lambda o=o, method=method: bench.erasure(method, [o])) for o in OBJECTS
        ]
        suffix = "" if args.split_budget == "default" else "/x5"
        splits = [
            bench.cached(
                f"{method}/split{i + 1}{suffix}",
                lambda e=e, method=method, suffix=suffix: bench.erasure(method, list(e), 1 if not suffix else len(e)),
            )
            for i, (e, _) in enumerate(splits_for(OBJECTS))
        ]
        table.append((method, single, splits))
    print_table(base, table, "5 x default" if args.split_budget == "per-concept" else "default")
    if {"ap", "age"} & set(methods):
        graph_methods = [m for m in ("esd", "ap", "age") if m == "esd" or m in methods]
        key = f"graph/{args.graph_object}/{'+'.join(graph_methods)}"
        print_graphs(
            args.graph_object, bench.cached(key, lambda: concept_graphs(bench, args.graph_object, graph_methods))
        )
    if "uce" in methods:
        edit = bench.cached("uce/edit", lambda: uce_edit(bench))
        debias = bench.cached("uce/debias", lambda: uce_debias(bench))
        print(
            f"\nUCE edit circle -> square: 'a circle' judged square {edit['circle_as_square']:.1f}% (bar >= 80); "
            f"other eight objects PSR-1 {edit['others_psr@1']:.1f} = {edit['others_psr@1_of_base']:.1f}% of base "
            f"(bar >= 90); {edit['seconds']:.2f} s"
        )
        print(
            f"UCE debias '{BIASED_OBJECT}' over {', '.join(DEBIAS_COLOURS)}: majority colour "
            f"{debias['majority_before']:.1f}% -> {debias['majority_after']:.1f}% (bar <= 40); coloured prompts "
            f"correct {debias['coloured_before']:.1f}% -> {debias['coloured_after']:.1f}% (bar >= 80); "
            f"{debias['seconds']:.1f} s"
        )
        print(f"  alpha by prompt: {json.dumps(debias['alpha'])}")
        print(f"  colour shares of 'a {BIASED_OBJECT}' after: {json.dumps(debias.get('shares_after', {}))}")


def print_table(base: dict, table, budget: str = "default") -> None:
    base_psr1 = np.mean([base["per_object"][o]["acc@1"] for o in OBJECTS])
    print(
        f"base miniature: mean PSR-1 {base_psr1:.1f} (mean ESR-1 {100 - base_psr1:.1f}), general-set FJD "
        f"{base['fjd']:.2f}"
    )
    print("\nsingle concept (each of the 10 objects; mean over them)")
    print("| method | ESR-1 | ESR-5 | PSR-1 | PSR-1 % of base | PSR-5 | FJD general | s / concept | bars |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method, single, _ in table:
        m = {k: np.mean([r[k] for r in single]) for k in single[0]}
        of_base = m["psr@1"] / base_psr1 * 100
        ok = "pass" if m["esr@1"] >= 90 and of_base >= 80 else "FAIL"
        print(
            f"| {method} | {m['esr@1']:.1f} | {m['esr@5']:.1f} | {m['psr@1']:.1f} | {of_base:.1f} | "
            f"{m['psr@5']:.1f} | {m['fjd']:.2f} | {m['seconds']:.1f} | {ok} |"
        )
    print(f"\nfive concepts at once (the seeds' four 5+5 splits; mean ± std over splits; iterations: {budget})")
    print("| method | ESR-1 | ESR-5 | PSR-1 | PSR-5 | FJD general | s / split |")
    print("|---|---|---|---|---|---|---|")
    for method, _, splits in table:

        def f(k, splits=splits):
            return f"{np.mean([r[k] for r in splits]):.1f} ± {np.std([r[k] for r in splits]):.1f}"

        print(
            f"| {method} | {f('esr@1')} | {f('esr@5')} | {f('psr@1')} | {f('psr@5')} | {f('fjd')} | "
            f"{np.mean([r['seconds'] for r in splits]):.1f} |"
        )
    methods = [m for m in ("age", "ap", "esd") if m in {t[0] for t in table}]
    if len(methods) > 1:  # the seeds' claim: at comparable ESR-1 (within 3 points), PSR-1 ordered AGE >= AP >= ESD
        by_name = {t[0]: t for t in table}
        for part, idx in (("single concept", 1), ("5+5 splits", 2)):
            esr = {m: np.mean([r["esr@1"] for r in by_name[m][idx]]) for m in methods}
            psr = {m: np.mean([r["psr@1"] for r in by_name[m][idx]]) for m in methods}
            spread = max(esr.values()) - min(esr.values())
            order = sorted(methods, key=lambda m: -psr[m])
            ranking = " >= ".join(f"{m} {psr[m]:.1f}" for m in order)
            print(
                f"{part}: PSR-1 {ranking}; ESR-1 spread {spread:.1f} points "
                f"({'comparable' if spread <= 3 else 'not comparable'}); the claim AGE >= AP >= ESD "
                f"{'holds' if order == methods else 'does not hold'}"
            )


if __name__ == "__main__":
    main()
