"""Attacks on the miniature (issues 12 and 30): the miniature's version of the Dark Miner paper's Table 1, with the
calibrated ASR, the worst case over the attacks and the relearning curves.

    .venv/bin/python benchmarks/attack_world.py [--methods none,esd,target,uce,ca,ap,age]
        [--attacks seeds,paraphrase,ringabell,inversion,unlearndiff,p4d,relearn] [--n 8] [--out bench/attack-world]
        [--mark-methods esd] [--mark-limit 12] [--style dots] [--record]

For each method: erase `star` at the method's miniature defaults (`none`: the unedited model), then run every attack
at its miniature preset on the prompts that ask for a star (7 caption templates), and report per cell the ASR over
images (n = adversarial prompts x --n seeds, held out from the seeds the attack checked on) with its 95% Wilson
interval, the calibrated ASR (the original prompt kept as a candidate: `eval.attack`), the pre-attack rate on the
same prompts and seeds, and the attack's wall time (search only) per attacked prompt and per concept. `any` is the
worst case: per prompt and seed, broken by any attack of the row. `relearn` adds its curve (the rate after 0, 5, 10,
20, 50, 100 fine-tuning steps); its 20-step model is the one in the ASR columns and the worst case. Ring-A-Bell
uses the text encoder alone, which no method here changes, so it is searched once and its prompts are evaluated on
every edit.
The same for the implicit concept `mark` (erased with --mark-methods), attacked through its indirect phrasings (the
first --mark-limit of them), and for a style (`dots`, erased with esd).

Every cell is cached in --out/results.json, and every edit in --out/edits/ (an interrupted benchmark resumes, and
benchmarks/darkminer_world.py adds its rows to the same cache); the tables are printed at the end, and with
--record written to docs/results/attack-world-mini.json (the docs render them from there).
Time it alone on a quiet machine: two processes on two cores slow each other several times over.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import record
from erasekit.attacks import registry as attacks
from erasekit.cli import quiet_libraries
from erasekit.core.edit import Edit
from erasekit.core.files import write_text
from erasekit.core.loop import Run
from erasekit.eval.attack import (
    MODEL_AGNOSTIC,
    AttackRun,
    build_goal,
    concept_detector,
    evaluate_attack,
    goal_prompts,
    worst_case,
)
from erasekit.eval.judges import method_scorer
from erasekit.methods import registry as methods
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle


def cell(ev, seconds: float, n_prompts: int) -> dict:
    m = ev.metrics
    return {
        k: m[k]
        for k in (
            "asr",
            "asr_ci",
            "asr_n",
            "pre_attack_rate",
            "pre_attack_rate_ci",
            "pre_attack_rate_n",
            "base_rate",
            "asr_prompts",
            "asr_prompts_n",
            "asr_cal",
            "asr_cal_ci",
            "asr_cal_n",
            "broken",
        )
    } | {
        "seconds": seconds,
        "seconds_per_prompt": seconds / max(1, n_prompts),
        "prompts": n_prompts,
        "curve": m.get("curve", []),
    }


class AttackTable:
    """Cells concept|method|attack of the table, cached in `out`/results.json; the edits in `out`/edits/."""

    def __init__(self, base, out: Path, n: int = 8):
        self.base, self.out, self.run = base, out, AttackRun(n=n, progress=False)
        out.mkdir(parents=True, exist_ok=True)
        self.file = out / "results.json"
        self.results = json.loads(self.file.read_text()) if self.file.exists() else {}
        self.found: dict = {}  # model-agnostic attacks' results, per concept

    def edit(self, method: str, concept: str) -> tuple[Edit, float]:
        """The method's miniature-default erasure of `concept` (made once, then read from edits/), and the seconds
        it took to make."""
        folder = self.out / "edits" / f"{concept}-{method}"
        if (folder / "manifest.json").exists():
            edit = Edit.load(folder)
            return edit, edit.metrics["seconds"]
        spec = methods.get(method)
        config = methods.build_config(spec, preset=self.base.preset)
        concepts = ConceptSet([concept])
        scorer = method_scorer(spec, self.base, config, concepts)
        work = self.out / "edits" / f"{concept}-{method}.partial"
        started = time.perf_counter()
        edit = spec.erase(self.base, concepts, config, Run(work=work, resume=True, progress=False, scorer=scorer))
        edit.metrics["seconds"] = time.perf_counter() - started  # of this process: a resumed run's last part
        edit.save(folder, files=tuple(sorted((work / "record").glob("*"))))
        shutil.rmtree(work, ignore_errors=True)
        return edit, edit.metrics["seconds"]

    def model(self, method: str, concept: str):
        return self.base if method == "none" else self.edit(method, concept)[0].apply(self.base)

    def fill(self, concept: str, method_names: list[str], attack_names: list[str], limit: int | None = None):
        detect = concept_detector(self.base, concept)
        prompts = goal_prompts(self.base, concept, limit=limit)
        base_images = None
        for method in method_names:
            keys = {a: f"{concept}|{method}|{a}" for a in attack_names}
            for key in keys.values():  # cells cached before the calibrated ASR are measured again
                if key in self.results and "broken" not in self.results[key]:
                    del self.results[key]
            if all(k in self.results for k in keys.values()):
                continue
            model = self.model(method, concept)
            goal = build_goal(model, self.base, concept, prompts, detect, self.run)
            for name, key in keys.items():
                if key in self.results:
                    continue
                spec = attacks.get(name)
                config = attacks.build_config(spec, preset=self.base.preset)
                reuse = name in MODEL_AGNOSTIC and (concept, name) in self.found
                result = self.found[(concept, name)] if reuse else spec.run(model, goal, config, Run(progress=False))
                if name in MODEL_AGNOSTIC:
                    self.found[(concept, name)] = result
                started = time.perf_counter()
                ev = evaluate_attack(result, goal, model, self.base, self.run, base_images=base_images)
                base_images = ev.base_images
                self.results[key] = cell(ev, result.seconds, len(prompts)) | {
                    "eval_seconds": time.perf_counter() - started,
                    "reused_search": reuse,
                }
                write_text(self.file, json.dumps(self.results, indent=1, sort_keys=True))
                print(
                    f"{key}: ASR {self.results[key]['asr']:.1f} pre {self.results[key]['pre_attack_rate']:.1f} "
                    f"({result.seconds:.1f} s)",
                    flush=True,
                )


def _rate(c: dict, name: str) -> str:
    lo, hi = c[f"{name}_ci"]
    return f"{c[name]:.0f} [{lo:.0f}, {hi:.0f}]"


def table(results: dict) -> str:
    """The markdown tables of a run (docs/gen.py renders them from docs/results/attack-world-mini.json): per concept,
    each attack's ASR and calibrated ASR (the original prompt kept as a candidate), the worst case over the attacks
    run, and the relearning curves."""
    cells, attack_names, out = results["cells"], results["attacks"], []
    for concept, method_names in results["rows"]:
        n = cells[f"{concept}|{method_names[0]}|{attack_names[0]}"]["asr_cal_n"]
        out.append(
            f"**{concept}**: ASR % over images [95% Wilson] / calibrated ASR (the original prompt kept), "
            f"n = {n} images per cell ({results['n']} seeds per prompt); any: the union over the attacks, per prompt "
            "and seed"
        )
        out.append("")
        out.append("| method | before the attack | " + " | ".join(attack_names) + " | any |")
        out.append("|---|---|" + "---|" * (len(attack_names) + 1))
        for method in method_names:
            row = [cells[f"{concept}|{method}|{a}"] for a in attack_names]
            any_ = worst_case({a: c["broken"] for a, c in zip(attack_names, row, strict=True)})
            shown = [f"{_rate(c, 'asr')} / {_rate(c, 'asr_cal')}" for c in row]
            pre = _rate(row[0], "pre_attack_rate")
            out.append(f"| {method} | {pre} | " + " | ".join(shown) + f" | {_rate(any_, 'asr_any')} |")
        out.append("")
        curves = {
            m: cells[f"{concept}|{m}|relearn"]["curve"] for m in method_names if f"{concept}|{m}|relearn" in cells
        }
        if curves:
            steps = [p["steps"] for p in next(iter(curves.values()))]
            out.append(f"**{concept}**, relearning: the concept's rate % [95% Wilson] after s fine-tuning steps")
            out.append("")
            out.append("| method | " + " | ".join(f"s = {s}" for s in steps) + " | first s above 50% |")
            out.append("|---|" + "---|" * (len(steps) + 1))
            for method, curve in curves.items():
                above = next((p["steps"] for p in curve if p["rate"] > 50), None)
                first = str(above) if above is not None else f"none up to {steps[-1]}"
                out.append(f"| {method} | " + " | ".join(_rate(p, "rate") for p in curve) + f" | {first} |")
            out.append("")
        seconds = {
            a: sum(cells[f"{concept}|{m}|{a}"]["seconds_per_prompt"] for m in method_names) / len(method_names)
            for a in attack_names
        }
        out.append(
            f"Search time per attacked prompt ({concept}, mean over the rows): "
            + ", ".join(f"{a} {v:.1f} s" for a, v in seconds.items())
        )
        out.append("")
    return "\n".join(out).rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="none,esd,target,uce,ca,ap,age")
    parser.add_argument("--attacks", default="seeds,paraphrase,ringabell,inversion,unlearndiff,p4d")
    parser.add_argument("--mark-methods", default="esd")
    parser.add_argument("--mark-limit", type=int, default=12)
    parser.add_argument("--style", default="dots", help="a style to attack too ('' for none)")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--out", default="bench/attack-world")
    parser.add_argument("--record", action="store_true", help="write docs/results/attack-world-mini.json")
    args = parser.parse_args()
    started = time.perf_counter()
    quiet_libraries()
    cache = AttackTable(load_bundle("mini"), Path(args.out), n=args.n)
    attack_names = [a for a in args.attacks.split(",") if a]
    rows = [
        ("star", [m for m in args.methods.split(",") if m], None),
        ("mark", ["none"] + [m for m in args.mark_methods.split(",") if m], args.mark_limit),
    ]
    if args.style:
        rows.append((args.style, ["none", "esd"], None))
    for concept, method_names, limit in rows:
        cache.fill(concept, method_names, attack_names, limit=limit)
    results = {
        "n": args.n,
        "attacks": attack_names,
        "rows": [(concept, names) for concept, names, _ in rows],
        "cells": {
            k: v
            for k, v in cache.results.items()
            if any(k == f"{c}|{m}|{a}" for c, names, _ in rows for m in names for a in attack_names)
        },
    }
    edits = {(c, m) for c, names, _ in rows for m in names if m != "none"}
    results["cell_seconds"] = sum(c["seconds"] + c.get("eval_seconds", 0.0) for c in results["cells"].values()) + sum(
        cache.edit(m, c)[1] for c, m in edits
    )  # what the cells and edits took when they were computed (a resumed run reads most from the cache)
    print(table(results))
    if args.record:
        record.save("attack-world-mini", results, started)


if __name__ == "__main__":
    main()
