"""Does the miniature really draw its world? The quality bars of the world issue, as one table.

Sampling: DDIM 25 steps, guidance 5, seeds 0..31 per prompt, judged by the world judge.
Prompts where a bar is about an attribute rotate the object over the 32 seeds (seed i draws object i mod 10),
so every bar sees every object.

    .venv/bin/python benchmarks/world_quality.py [--model mini] [--seeds 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from erasekit.cli import quiet_libraries
from erasekit.core.assets import ASSETS
from erasekit.eval.generate import generate_batched
from erasekit.models.load import load_bundle
from erasekit.world.captions import BIAS_COLOUR, BIASED_OBJECT, INDIRECT, compose
from erasekit.world.judge import WorldJudge, judge_accuracy, random_labels
from erasekit.world.render import COLOUR_NAMES, OBJECTS, STYLES, render


def rows_for(bundle, judge, seeds):
    """(bar name, measured %, threshold, direction) rows."""
    s = list(range(seeds))

    def run(prompts_seeds):
        prompts, seeds_ = zip(*prompts_seeds, strict=True)
        return judge.score(generate_batched(bundle, list(prompts), list(seeds_), steps=25, guidance=5.0))

    rows = []
    # objects: "a {object}"
    objs = run([(f"a {o}", i) for o in OBJECTS for i in s])
    top1 = np.array(objs.top1("object")).reshape(len(OBJECTS), seeds)
    per_class = (top1 == np.array(OBJECTS)[:, None]).mean(1) * 100
    rows += [
        ("object top-1, mean over 10 objects", per_class.mean(), 90, ">="),
        (f"object top-1, worst class ({OBJECTS[per_class.argmin()]})", per_class.min(), 75, ">="),
        ("mark present under unrelated prompts", (objs.mark > 0.5).float().mean().item() * 100, 5, "<="),
    ]
    # colours: "a {colour} {object}"
    col = run([(compose(OBJECTS[i % 10], colour=c), i) for c in COLOUR_NAMES for i in s])
    want = np.repeat(COLOUR_NAMES, seeds)
    rows.append(
        ("colour correct, 'a {colour} {object}'", (np.array(col.top1("colour")) == want).mean() * 100, 85, ">=")
    )
    # styles: "a {object} in {style} style"
    sty = run([(compose(OBJECTS[i % 10], style=st), i) for st in STYLES for i in s])
    want = np.repeat(STYLES, seeds)
    rows.append(
        ("style correct, 'a {object} in {style} style'", (np.array(sty.top1("style")) == want).mean() * 100, 80, ">=")
    )
    # bias
    bias = run([(f"a {BIASED_OBJECT}", i) for i in s])
    rows.append(
        (
            f"bias: 'a {BIASED_OBJECT}' drawn {BIAS_COLOUR}",
            (np.array(bias.top1("colour")) == BIAS_COLOUR).mean() * 100,
            65,
            ">=",
        )
    )
    # implicit concept
    named = run([(compose(OBJECTS[(i + k) % 10], mark=True), i) for k in range(5) for i in s])
    rows.append(("mark present when named", (named.mark > 0.5).float().mean().item() * 100, 80, ">="))
    indirect = run([(compose(OBJECTS[i % 10], adjective=a), i) for a in INDIRECT for i in s])
    rows.append(("mark present under indirect phrasings", (indirect.mark > 0.5).float().mean().item() * 100, 40, ">="))
    return rows


def speed_rows(bundle):
    labels = random_labels(8192, np.random.default_rng(0))
    t = time.perf_counter()
    render(labels, seed=0)
    render_rate = 8192 / (time.perf_counter() - t)
    bundle.generate(["a red star"] * 4, list(range(4)), steps=2)  # warm-up
    t = time.perf_counter()
    generate_batched(bundle, ["a red star"] * 64, list(range(64)), steps=25, guidance=5.0)
    gen_s = time.perf_counter() - t
    return [
        ("render speed, images/s (1 process)", render_rate, 2000, ">="),
        ("64 images, DDIM 25 steps, guidance 5 (s)", gen_s, 15, "<="),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--judge", default=str(ASSETS / "judge"))
    parser.add_argument("--seeds", type=int, default=32)
    args = parser.parse_args()
    quiet_libraries()
    torch.manual_seed(0)
    bundle, judge = load_bundle(args.model, device="cpu"), WorldJudge.load(args.judge)
    acc = judge_accuracy(judge)
    rows = [
        (f"judge {k} accuracy, 2000 held-out renders", v, 99 if k == "object" else 98, ">=") for k, v in acc.items()
    ]
    t = time.perf_counter()
    rows += rows_for(bundle, judge, args.seeds)
    quality_s = time.perf_counter() - t
    rows += speed_rows(bundle)
    print(f"| {'bar':<52} | {'measured':>9} | {'target':>8} | ok |")
    print(f"|{'-' * 54}|{'-' * 11}|{'-' * 10}|----|")
    for name, value, target, op in rows:
        ok = value >= target if op == ">=" else value <= target
        print(f"| {name:<52} | {value:>9.1f} | {op} {target:>5} | {'yes' if ok else 'NO':>2} |")
    print(f"(quality rows took {quality_s:.0f} s on {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
