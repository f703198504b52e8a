"""Hide & Recover on the miniature (issue 14): the talk's hiding table, RSR against ρ, and the attacks on a hidden
concept beside the same attacks on an erased one.

    .venv/bin/python benchmarks/hide_world.py [--n 32] [--split-n 16] [--out bench/hide-world]
        [--parts single,rho,splits,attacks]

- single: hide `star` at the miniature preset ("Ours"), and with the nine other objects as its preserved set
  ("Ours*"): ESR-1/5 without the key, PSR-1/5 (and PSR-1 as a share of the base's), RSR-1/5 with the key, each with
  n and its 95% Wilson interval, the key's distance from c_e (||p − c_e|| / ||c_e||) and the method's time;
- rho: Stage 2 (Eq. 16) from a random point of the ρ-ball, for the hidden star and for ESD's erased star: RSR-1/5
  against ρ (relative to ||c_e||);
- splits: the seeds' four 5+5 splits, five objects hidden at once, beside ESD, UCE and CA erasing the same five:
  ESR/PSR/RSR-1/5 mean ± std over the splits. Every fine-tuning method gets its miniature iterations times the five
  erased concepts (the single-concept budget per concept); UCE gets the kept five as P, as in its paper;
- attacks: every attack at its miniature preset on the hidden star (without the key) and on ESD's erasure
  (benchmarks/attack_world.py's table, whose cache it shares when --out is the same).

Every figure is cached in --out/results.json (an interrupted run resumes). Time it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from attack_world import AttackTable
from erasekit.cli import quiet_libraries
from erasekit.core.files import write_text
from erasekit.core.loop import Run
from erasekit.eval.evaluation import evaluate_edit
from erasekit.eval.judges import world_judge
from erasekit.eval.metrics import splits_for
from erasekit.eval.suites import Judges, SuiteRun, evaluate
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.hide import hide, recover, recover_config
from erasekit.models.load import load_bundle
from erasekit.world.render import OBJECTS

RATES = ("esr@1", "esr@5", "psr@1", "psr@5", "rsr@1", "rsr@5")
RHOS = (0.05, 0.1, 0.25, 0.5, 1.0)


class Bench:
    def __init__(self, out: Path):
        self.out, self.file = out, out / "results.json"
        out.mkdir(parents=True, exist_ok=True)
        self.results = json.loads(self.file.read_text()) if self.file.exists() else {}
        self.base = load_bundle("mini", device="cpu")
        self.judges = Judges(world_judge())

    def cached(self, name: str, fn):
        if name not in self.results:
            self.results[name] = fn()
            write_text(self.file, json.dumps(self.results, indent=1, sort_keys=True))
            print(f"{name}: done", flush=True)
        return self.results[name]

    def erase(self, method: str, concepts: ConceptSet, scale: int = 1):
        """The method's miniature config (its iterations times `scale`): (Edit, key or None, seconds)."""
        spec = registry.get(method)
        values = {}
        if scale != 1 and "iterations" in spec.presets["mini"]:
            values["iterations"] = scale * spec.presets["mini"]["iterations"]
        config = registry.build_config(spec, values=values, preset="mini")
        started = time.perf_counter()
        if method == "hide":
            edit, key = hide(self.base, concepts, config, Run(progress=False))
        else:
            edit, key = spec.erase(self.base, concepts, config, Run(progress=False)), None
        return edit, key, time.perf_counter() - started

    def figures(self, edit, key, erased: list[str], n: int) -> dict:
        ev = evaluate_edit(
            self.base,
            edit,
            "world-objects",
            SuiteRun(n=n, progress=False),
            erased,
            [o for o in OBJECTS if o not in erased],
            judges=self.judges,
            key=key,
        )
        m, b = ev.edited.metrics, ev.base.metrics
        out = {k: m[k] for k in m if k.split("_")[0] in RATES or k in ("esr_n", "psr_n", "rsr_n")}
        out["psr@1_of_base"] = m["psr@1"] / b["psr@1"] * 100
        out["base"] = {k: b[k] for k in b if k.split("_")[0] in RATES or k in ("esr_n", "psr_n")}
        return out


def single(bench: Bench, n: int) -> dict:
    rows = {}
    for name, preserve in (("hide", []), ("hide*", [o for o in OBJECTS if o != "star"])):

        def run(preserve=preserve):
            edit, key, seconds = bench.erase("hide", ConceptSet(["star"], preserve))
            return {
                **bench.figures(edit, key, ["star"], n),
                "seconds": seconds,
                "key_distance": key.metrics["distance"]["star"],
            }

        rows[name] = bench.cached(f"single|{name}", run)
    return rows


def rho_curve(bench: Bench, n: int) -> dict:
    out = {}
    for method in ("hide", "esd"):
        todo = [rho for rho in RHOS if f"rho|{method}|{rho}" not in bench.results]
        edit = bench.erase(method, ConceptSet(["star"]))[0] if todo else None  # one edit for every ρ
        hidden = edit.apply(bench.base) if todo else None
        for rho in RHOS:

            def run(edit=edit, hidden=hidden, rho=rho):
                config = recover_config("mini", values={"rho": rho, "start": "random"})
                started = time.perf_counter()
                key = recover(bench.base, edit, ["star"], config, Run(progress=False))
                seconds = time.perf_counter() - started
                keyed = evaluate(
                    hidden, "world-objects", SuiteRun(n=n, progress=False), ["star"], judges=bench.judges, key=key
                )  # the star's prompts alone, with the key
                return {**keyed.metrics, "distance": key.metrics["distance"]["star"], "seconds": seconds}

            out[f"{method}|{rho}"] = bench.cached(f"rho|{method}|{rho}", run)
    return out


def splits(bench: Bench, n: int) -> dict:
    out = {}
    for method in ("hide", "esd", "uce", "ca"):
        for i, (erased, kept) in enumerate(splits_for(OBJECTS)):

            def run(method=method, erased=tuple(erased), kept=tuple(kept)):
                concepts = ConceptSet(list(erased), list(kept) if method == "uce" else [])
                edit, key, seconds = bench.erase(method, concepts, scale=len(erased))
                return {**bench.figures(edit, key, list(erased), n), "seconds": seconds}

            out[f"{method}|{i + 1}"] = bench.cached(f"split|{method}|{i + 1}", run)
    return out


def ci(row: dict, name: str) -> str:
    low, high = row[f"{name}_ci"]
    return f"{row[name]:.0f} [{low:.0f}, {high:.0f}]"


def show(bench: Bench, parts: list[str], n: int) -> None:
    r = bench.results
    if "single" in parts:
        base = r["single|hide"]["base"]
        print(f"\n### single concept: star (world-objects, {n} images per prompt; % [95% Wilson], n in the header)")
        print(
            f"| model | ESR-1 (n={base['esr_n']}) | ESR-5 | PSR-1 (n={base['psr_n']}) | PSR-1 % of base | PSR-5 | "
            f"RSR-1 with key (n={r['single|hide']['rsr_n']}) | RSR-5 | ||p − c_e|| / ||c_e|| | s / concept |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        print(
            f"| base | {ci(base, 'esr@1')} | {ci(base, 'esr@5')} | {ci(base, 'psr@1')} | 100 | {ci(base, 'psr@5')} "
            "| - | - | - | - |"
        )
        for name, label in (("hide", "hide (Ours)"), ("hide*", "hide* (Ours*, the other nine preserved)")):
            x = r[f"single|{name}"]
            print(
                f"| {label} | {ci(x, 'esr@1')} | {ci(x, 'esr@5')} | {ci(x, 'psr@1')} | {x['psr@1_of_base']:.1f} | "
                f"{ci(x, 'psr@5')} | {ci(x, 'rsr@1')} | {ci(x, 'rsr@5')} | {x['key_distance']:.2f} | "
                f"{x['seconds']:.0f} |"
            )
    if "rho" in parts:
        print("\n### Stage 2 (Eq. 16) from a random point of the ρ-ball: RSR % [95% Wilson] with the recovered key")
        print("| ρ / ||c_e|| | hidden star: RSR-1 | RSR-5 | ESD-erased star: RSR-1 | RSR-5 | s per key |")
        print("|---|---|---|---|---|---|")
        for rho in RHOS:
            h, e = r[f"rho|hide|{rho}"], r[f"rho|esd|{rho}"]
            print(
                f"| {rho} | {ci(h, 'rsr@1')} n={h['rsr_n']} | {ci(h, 'rsr@5')} | {ci(e, 'rsr@1')} n={e['rsr_n']} | "
                f"{ci(e, 'rsr@5')} | {h['seconds']:.0f} |"
            )
    if "splits" in parts:
        print("\n### the seeds' four 5+5 splits (mean ± std over the splits; iterations: 5 x the miniature preset)")
        print("| method | ESR-1 | ESR-5 | PSR-1 | PSR-5 | RSR-1 | RSR-5 | s / split |")
        print("|---|---|---|---|---|---|---|---|")
        base = [r[f"split|esd|{i}"]["base"] for i in range(1, 5)]
        f = lambda rows, k: f"{np.mean([x[k] for x in rows]):.1f} ± {np.std([x[k] for x in rows]):.1f}"  # noqa: E731
        print(
            f"| base | {f(base, 'esr@1')} | {f(base, 'esr@5')} | {f(base, 'psr@1')} | {f(base, 'psr@5')} | - | - | - |"
        )
        for method in ("esd", "ca", "uce", "hide"):
            rows = [r[f"split|{method}|{i}"] for i in range(1, 5)]
            rsr = (f"{f(rows, 'rsr@1')} | {f(rows, 'rsr@5')}") if "rsr@1" in rows[0] else "N/A | N/A"
            print(
                f"| {method} | {f(rows, 'esr@1')} | {f(rows, 'esr@5')} | {f(rows, 'psr@1')} | {f(rows, 'psr@5')} | "
                f"{rsr} | {np.mean([x['seconds'] for x in rows]):.0f} |"
            )
        print(f"(n per split: ESR {base[0]['esr_n']}, PSR {base[0]['psr_n']}, RSR {r['split|hide|1']['rsr_n']} images)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32, help="images per prompt, single concept and ρ")
    parser.add_argument("--split-n", type=int, default=16, help="images per prompt on the splits")
    parser.add_argument("--attack-n", type=int, default=8, help="images per attacked prompt")
    parser.add_argument("--attacks", default="ringabell,inversion,unlearndiff,p4d")
    parser.add_argument("--parts", default="single,rho,splits,attacks")
    parser.add_argument("--out", default="bench/hide-world")
    args = parser.parse_args()
    quiet_libraries()
    bench = Bench(Path(args.out))
    parts = [p for p in args.parts.split(",") if p]
    if "single" in parts:
        single(bench, args.n)
    if "rho" in parts:
        rho_curve(bench, args.n)
    if "splits" in parts:
        splits(bench, args.split_n)
    show(bench, parts, args.n)
    if "attacks" in parts:
        table = AttackTable(bench.base, Path(args.out) / "attacks", n=args.attack_n)
        names = [a for a in args.attacks.split(",") if a]
        table.fill("star", ["esd", "hide"], names)
        table.show("star", ["esd", "hide"], names)


if __name__ == "__main__":
    main()
