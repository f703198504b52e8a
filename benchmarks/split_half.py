"""How many general-set images KID and FJD need on the miniature: the base model's own split-half distance (seeds A
against seeds B of the same 100 prompts) beside the distance of two edits' images (seeds A) to the base's seeds B,
at 1, 2, 4 and 8 images per prompt, each with its 95% bootstrap interval (the bench's own `_distances`).

    .venv/bin/python benchmarks/split_half.py [--max-n 8] [--edits esd,uce]

The edits erase `star` at their miniature presets. The base's halves nest: the first n seeds of each half.
"""

from __future__ import annotations

import argparse

import numpy as np

from erasekit.bench.table import _distances
from erasekit.cli import quiet_libraries
from erasekit.core.loop import Run
from erasekit.eval.suites import SuiteRun, evaluate
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle
from erasekit.world.judge import WorldJudge


def features(model, n: int) -> np.ndarray:
    """[prompts, n, F] judge features of the general set, n seeds per prompt."""
    images = evaluate(model, "world-general", SuiteRun(n=n, progress=False)).images
    f = WorldJudge.load().score(images).features.double().numpy()
    return f.reshape(-1, n, f.shape[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-n", type=int, default=8)
    parser.add_argument("--edits", default="esd,uce")
    args = parser.parse_args()
    quiet_libraries()
    base = load_bundle("mini")
    both = features(base, 2 * args.max_n)
    half_a, half_b = both[:, : args.max_n], both[:, args.max_n :]
    edits = {}
    for name in [e for e in args.edits.split(",") if e]:
        spec = registry.get(name)
        edit = spec.erase(base, ConceptSet(["star"]), registry.build_config(spec, preset="mini"), Run(progress=False))
        edits[name] = features(edit.apply(base), args.max_n)
    print(
        "| images per half | base split-half KID×10³ | base split-half FJD | "
        + " | ".join(f"{e} KID×10³ | {e} FJD" for e in edits)
        + " |"
    )
    print("|---|---|---|" + "---|---|" * len(edits))
    n = 1
    while n <= args.max_n:
        ref = half_b[:, :n].reshape(-1, both.shape[-1])
        cells = []
        for x in [half_a, *edits.values()]:
            d = _distances(x[:, :n].reshape(-1, both.shape[-1]), ref)
            cells += [
                f"{d['kid_x1e3']:.1f} [{d['kid_x1e3_ci'][0]:.1f}, {d['kid_x1e3_ci'][1]:.1f}]",
                f"{d['fjd']:.1f} [{d['fjd_ci'][0]:.1f}, {d['fjd_ci'][1]:.1f}]",
            ]
        print(f"| {len(ref)} | " + " | ".join(cells) + " |", flush=True)
        n *= 2


if __name__ == "__main__":
    main()
