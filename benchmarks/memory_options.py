"""Do the memory options change what a method erases? (issue 35) Each fine-tuning option against the plain fp32 run
on the miniature: the method erases `star` at its miniature preset with the option, and the world judge scores
ESR-1 and PSR-1 on `world-objects` at n images per prompt, on the same seeds as the fp32 run.

    .venv/bin/python benchmarks/memory_options.py [--methods esd] [--options ckpt,bf16,fp16,half,all,seed1] [--n 32]

`half` trains on the miniature loaded in bf16 (only the trained group in fp32); `all` is checkpointing and the
bf16 model together; `seed1` is the fp32 run with another training seed, the yardstick of run-to-run noise. Every
edit is applied to the fp32 miniature for scoring, so only the training differs. A row *agrees* with fp32 when each
of its rates' 95% Wilson interval overlaps the fp32 run's (a difference n images cannot show, the rule the docs
use to rank methods); `inside` is the stricter check that its rates fall inside fp32's intervals. `flipped`
counts the images whose judged object changed, to set beside `seed1`'s. The figures go to
docs/results/memory-options-mini.json (`--record`).
"""

from __future__ import annotations

import argparse
import time

import torch

import record
from erasekit.cli import quiet_libraries
from erasekit.core.loop import Run
from erasekit.eval.evaluation import evaluate_edit
from erasekit.eval.suites import SuiteRun
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle
from erasekit.world.judge import WorldJudge

OPTIONS = {  # name: (method options, the dtype the model is loaded in for training)
    "fp32": ({}, "fp32"),
    "ckpt": ({"gradient_checkpointing": True}, "fp32"),
    "bf16": ({"precision": "bf16"}, "fp32"),
    "fp16": ({"precision": "fp16"}, "fp32"),
    "half": ({}, "bf16"),
    "all": ({"gradient_checkpointing": True}, "bf16"),
    "seed1": ({"seed": 1}, "fp32"),  # the yardstick: fp32 with another training seed (the run-to-run noise)
}
RATES = ("esr@1", "psr@1")


def scored(method: str, option: str, n: int, base, models: dict, judge: WorldJudge) -> dict:
    """One edit with `option`: its rates on the fp32 miniature and each image's judged object."""
    values, dtype = OPTIONS[option]
    model = models.setdefault(dtype, base if dtype == "fp32" else load_bundle("mini", dtype=dtype))
    spec = registry.get(method)
    config = registry.build_config(spec, values=values, preset=model.preset)
    edit = spec.erase(model, ConceptSet(["star"]), config, Run(progress=False))
    result = evaluate_edit(base, edit, "world-objects", SuiteRun(n=n, progress=False)).edited
    m = result.metrics
    row = {k: m[k] for k in RATES} | {f"{k}_ci": m[f"{k}_ci"] for k in RATES}
    row |= {"esr_n": m["esr_n"], "psr_n": m["psr_n"]}
    row["labels"] = judge.score(result.images).object.argmax(-1).tolist()  # each image's judged object
    return row


def compare(rows: dict) -> dict:
    """Each option's row beside fp32's: agrees (both rates inside fp32's interval), the differences, flipped images."""
    ref = rows["fp32"]
    for row in rows.values():
        row["delta"] = {k: row[k] - ref[k] for k in RATES}
        row["inside"] = all(ref[f"{k}_ci"][0] <= row[k] <= ref[f"{k}_ci"][1] for k in RATES)
        row["agrees"] = all(
            row[f"{k}_ci"][0] <= ref[f"{k}_ci"][1] and ref[f"{k}_ci"][0] <= row[f"{k}_ci"][1] for k in RATES
        )
        row["flipped"] = sum(a != b for a, b in zip(row["labels"], ref["labels"], strict=True))
        row["images"] = len(ref["labels"])
    return rows


def run(methods: list[str], options: list[str], n: int) -> dict:
    torch.manual_seed(0)
    base = load_bundle("mini")
    models: dict = {"fp32": base}
    judge = WorldJudge.load()
    out = {}
    for method in methods:
        rows = {o: scored(method, o, n, base, models, judge) for o in ["fp32", *[o for o in options if o != "fp32"]]}
        out[method] = compare(rows)
        for option, row in out[method].items():
            print(method, option, {k: round(v, 1) for k, v in row["delta"].items()}, row["agrees"], flush=True)
    return out


def table(results: dict) -> str:
    lines = [
        "| method | option | ESR-1 | PSR-1 | Δ ESR-1 | Δ PSR-1 | inside fp32's interval | intervals overlap | "
        "images judged otherwise |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, rows in results["methods"].items():
        for option, r in rows.items():
            e, p = (f"{r[k]:.1f} [{r[k + '_ci'][0]:.1f}, {r[k + '_ci'][1]:.1f}]" for k in RATES)
            lines.append(
                f"| {method} | {option} | {e} (n={r['esr_n']}) | {p} (n={r['psr_n']}) | {r['delta']['esr@1']:+.1f} | "
                f"{r['delta']['psr@1']:+.1f} | {'yes' if r['inside'] else 'no'} | {'yes' if r['agrees'] else 'no'} | "
                f"{r['flipped']} of {r['images']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="esd")
    parser.add_argument("--options", default="ckpt,bf16,fp16,half,all,seed1")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--record", action="store_true", help="write docs/results/memory-options-mini.json")
    args = parser.parse_args()
    quiet_libraries()
    started = time.perf_counter()
    results = {"n": args.n, "methods": run(args.methods.split(","), args.options.split(","), args.n)}
    for rows in results["methods"].values():
        for row in rows.values():
            del row["labels"]
    if args.record:
        print("wrote", record.save("memory-options-mini", results, started))
    print(table(results))


if __name__ == "__main__":
    main()
