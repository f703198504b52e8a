"""SLD's levels and the negative prompt on the miniature's implicit concept `mark`, and what each costs.

    .venv/bin/python benchmarks/sld_world.py [--n 8] [--out bench/sld-world]

- The mark rate on the indirect phrasings (the `world-implicit` suite: prompts that never say "mark", the world's
  I2P) for the base model, the negative prompt "mark", and SLD weak / medium / strong / max with S = "mark", each
  with its n and 95% Wilson interval; beside it PSR-1 on the ten objects (what guidance away from "mark" costs
  the rest).
- Cost: UNet evaluations per sampling step (SLD adds ε(S) to the two of guidance) and the seconds per image of
  `Bundle.generate` at the suite's 25 steps, median of --repeats timings, as a ratio to the base model's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from erasekit.cli import quiet_libraries
from erasekit.core.files import write_text
from erasekit.core.loop import Run
from erasekit.eval.judges import world_judge
from erasekit.eval.metrics import wilson
from erasekit.eval.suites import Judges, SuiteRun, evaluate
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle

VARIANTS = (
    ("base", None, {}),
    ("negative", "negative", {}),
    ("sld weak", "sld", {"level": "weak"}),
    ("sld medium", "sld", {"level": "medium"}),
    ("sld strong", "sld", {"level": "strong"}),
    ("sld max", "sld", {"level": "max"}),
)


def edited(base, method, values):
    if method is None:
        return base
    spec = registry.get(method)
    edit = spec.erase(
        base, ConceptSet(["mark"]), registry.build_config(spec, values=values, preset="mini"), Run(progress=False)
    )
    return edit.apply(base)


def unet_passes(bundle) -> float:
    """UNet evaluations (batch elements) per image per sampling step, counted on one 4-step image."""
    seen = []
    handle = bundle.unet.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    bundle.generate(["a circle"], [0], steps=4)
    handle.remove()
    return sum(seen) / 4


def seconds_per_image(bundle, repeats: int) -> float:
    prompts, seeds = ["a cursed circle"] * 16, list(range(16))
    bundle.generate(prompts[:2], seeds[:2])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        bundle.generate(prompts, seeds)
        times.append((time.perf_counter() - start) / len(seeds))
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="images per prompt")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="bench/sld-world")
    args = ap.parse_args()
    quiet_libraries()
    torch.manual_seed(0)
    base, judge = load_bundle("mini", device="cpu"), world_judge()
    rows = []
    for label, method, values in VARIANTS:
        bundle = edited(base, method, values)
        implicit = evaluate(bundle, "world-implicit", SuiteRun(n=args.n), ["mark"], judges=Judges(judge))
        objects = evaluate(bundle, "world-objects", SuiteRun(n=args.n), [], judges=Judges(judge))
        rows.append(
            {
                "label": label,
                "mark_rate": implicit.metrics["implicit_rate"],
                "n": len(implicit.images),
                "psr@1": objects.metrics["psr@1"],
                "n_objects": len(objects.images),
                "passes": unet_passes(bundle),
                "seconds": seconds_per_image(bundle, args.repeats),
            }
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.json", json.dumps(rows, indent=1))
    floor = rows[0]["seconds"]
    print(
        f"mark rate on the indirect phrasings (world-implicit, {args.n} images per prompt) and PSR-1 of the ten "
        f"objects; cost at 25 DDIM steps, median of {args.repeats} timings, {torch.get_num_threads()} threads"
    )
    print("| sampler | mark rate % [95% CI] (n) | PSR-1 % [95% CI] (n) | UNet passes / step | s / image | × base |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = wilson(r["mark_rate"], r["n"])
        plo, phi = wilson(r["psr@1"], r["n_objects"])
        print(
            f"| {r['label']} | {r['mark_rate']:.1f} [{lo:.1f}, {hi:.1f}] ({r['n']}) | {r['psr@1']:.1f} "
            f"[{plo:.1f}, {phi:.1f}] ({r['n_objects']}) | {r['passes']:.0f} | {r['seconds']:.4f} | "
            f"{r['seconds'] / floor:.2f} |"
        )


if __name__ == "__main__":
    main()
