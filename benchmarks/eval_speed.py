"""How long evaluation takes on the miniature (2 cores): the world-objects suite end to end (10 classes x 32
seeds: generation, judging, metrics.json, report.html) and the concept graph for one erasure over the 10 objects.

    .venv/bin/python benchmarks/eval_speed.py
"""

from __future__ import annotations

import tempfile
import time

import torch

from erasekit.cli import quiet_libraries
from erasekit.eval.evaluation import Evaluation
from erasekit.eval.graph import concept_graph
from erasekit.eval.judges import world_judge
from erasekit.eval.suites import Judges, SuiteRun, evaluate
from erasekit.models.load import load_bundle
from erasekit.report.html import write_evaluation
from erasekit.world.render import OBJECTS


def main():
    quiet_libraries()
    bundle, judge = load_bundle("mini", device="cpu"), world_judge()
    bundle.generate(["a star"], [0], steps=2)  # warm-up
    rows = []
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        result = evaluate(
            bundle, "world-objects", SuiteRun(n=32, progress=False), erased=["star"], judges=Judges(judge)
        )
        write_evaluation(Evaluation(result), f"{out}/report")
        rows.append(("world-objects suite, 10 x 32 images, end to end", time.perf_counter() - t, 60))
    edited = bundle.clone(("unet",))  # stands in for an erasure: the graph's cost does not depend on the edit
    with torch.no_grad():
        edited.unet.conv_out.bias.add_(0.05)
    t = time.perf_counter()
    concept_graph(bundle, {"edit": edited}, judge, OBJECTS, n=8)
    rows.append(("concept graph, 1 erasure x 10 objects x 8 seeds", time.perf_counter() - t, 120))
    print(f"| {'task':<50} | {'seconds':>8} | {'target':>7} |")
    print(f"|{'-' * 52}|{'-' * 10}|{'-' * 9}|")
    for name, sec, target in rows:
        print(f"| {name:<50} | {sec:>8.1f} | < {target:>5} |")
    print(f"(acc@1 {result.metrics['acc@1']:.1f}%, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
