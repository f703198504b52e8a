"""What each attack costs per attacked prompt at real size, at its paper's defaults (issue 35): the same three
measurements as benchmarks/scale.py, on one prompt of `nudity`.

1. **Passes**, counted on the tiny random model: the denoiser samples with and without grad in the attack's setup
   (reference images) and per iteration (Ring-A-Bell's generations pass the text encoder only), and the images
   its evaluation draws for the prompt (every adversarial prompt at `--n` seeds, or its own seeds).
2. **One sample-pass** at full size (scale.py's).
3. **The run**: the attack at full size for `--iterations` iterations (generations), its reference images cut to
   one and the images it draws to check success shortened to 2 DDIM steps (added back from the counts, as in
   scale.py). The judge never reports success, so the attack runs every iteration its paper gives it; what the
   judge itself costs is left out.

    s/iteration      = measured part + (no-grad samples per iteration at paper defaults) x (one sample-pass)
    attack / prompt  = setup samples x (one sample-pass) + iterations x (s/iteration)
    evaluation       = images x steps x 2 (classifier-free guidance) x (one sample-pass)

    .venv/bin/python benchmarks/scale_attacks.py [--attacks inversion,unlearndiff] [--device cuda]

Cached per case in --out; a run writes docs/results/scale-attacks-FAMILY-DEVICE.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from dataclasses import replace

import record
import scale

ATTACKS = ("inversion", "unlearndiff", "p4d", "ringabell", "paraphrase", "seeds")
REFERENCE = {"inversion": 25}  # reference images given, as a user's folder (drawing them: 25 x 25 x 2 passes more)
ITERATIONS = {"inversion": "iterations", "unlearndiff": "iterations", "p4d": "iterations", "ringabell": "generations"}
PROMPT = "a photo of a nude person"
CHECK_STEPS = 2  # the attack-time check images at full size (paper: the evaluation's 25)


def goal(bundle, steps: int, images: int = 0):
    import torch

    from erasekit.attacks.goal import Goal
    from erasekit.eval.attack import goal_pairs

    def never(images):
        return torch.zeros(len(images), dtype=torch.bool)

    pairs = goal_pairs(bundle, scale.CONCEPT)
    given = torch.rand(images, 3, bundle.image_size, bundle.image_size) if images else None  # the user's images
    return Goal(scale.CONCEPT, [PROMPT], [0], never, base=bundle, pairs=pairs, images=given, steps=steps)


def attack_config(attack: str, bundle, values: dict):
    from erasekit.attacks import registry

    spec = registry.get(attack)  # Ring-A-Bell's paper default: the whole vocabulary (vocab="")
    return spec, registry.build_config(spec, values=values, preset=bundle.family)


def images_evaluated(result, n: int) -> int:
    return sum(len(p.seeds) if p.seeds else n for p in result.prompts)


def count(attack: str, family: str, iterations: int, n: int) -> dict:
    import torch

    from erasekit.core.loop import Run
    from erasekit.models.load import load_bundle

    bundle = load_bundle("tiny" if family == "sd1" else f"tiny-{family}")
    values = {ITERATIONS[attack]: iterations} if attack in ITERATIONS else {}
    spec, config = attack_config(attack, bundle, values)
    passes, clock = scale.Passes(type(bundle.denoiser)), []
    torch.manual_seed(0)
    started = time.perf_counter()
    result = spec.run(bundle, goal(bundle, 25, REFERENCE.get(attack, 0)), config, Run(progress=False, clock=clock))
    ended = time.perf_counter()
    out = {"images": images_evaluated(result, n), "adversarial_prompts": len(result.prompts)}
    if not clock:  # no training loop: every pass is setup (Ring-A-Bell's generations have none)
        return out | {"setup": passes.between(started, ended), "per_iteration": (0, 0)}
    out["setup"] = passes.between(started, clock[0][1])
    after = passes.between(clock[0][1], ended)  # the steps and the success checks between them
    out["per_iteration"] = [after[i] / len(clock) for i in range(2)]
    return out


def measure(attack: str, family: str, iterations: int, resolution: int | None, device: str) -> dict:
    import torch

    from erasekit.core.loop import Run
    from erasekit.models import memory
    from erasekit.models.load import assemble
    from erasekit.models.synthetic import full_size_components

    modules, tokenizers, scheduler, options = full_size_components(family)
    for module in modules.values():
        module.to(device=device)
    bundle = assemble(modules, tokenizers, scheduler, options, f"random {family}", family).at_resolution(resolution)
    per_sample = scale.sample_pass(bundle)
    passes = scale.Passes(type(bundle.denoiser))
    values: dict = {}
    if attack in ITERATIONS:
        values[ITERATIONS[attack]] = iterations
    spec, config = attack_config(attack, bundle, values)
    batch = measured_batch = getattr(config, "batch", 1)
    if attack == "inversion":  # gradients reach the word through every block: the whole trace at its batch
        while measured_batch > 1 and memory.estimate(
            bundle, "full", measured_batch, bundle.dtype, trained=0
        ).peak > memory.capacity_bytes(bundle.device):
            measured_batch //= 2  # measured at the largest batch that fits, its time scaled to the paper's batch
        config = replace(config, batch=measured_batch)
    clock: list = []
    started = time.perf_counter()
    given = REFERENCE.get(attack, 0)
    found = spec.run(bundle, goal(bundle, CHECK_STEPS, given), config, Run(progress=False, clock=clock))
    seconds = time.perf_counter() - started
    peak = (
        torch.cuda.max_memory_allocated()
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "seconds": seconds,
        "sample_pass": per_sample,
        "peak_gb": peak / 1e9,
        "steps": [e - s for _, s, e in clock],
        "step_no_grad": [passes.between(s, e)[0] for _, s, e in clock],
        "batch": batch,
        "measured_batch": measured_batch,
        "adversarial_prompts": len(found.prompts),
    }


def paper_iterations(attack: str, family: str) -> int:
    from erasekit.attacks import registry

    spec = registry.get(attack)
    return getattr(registry.build_config(spec, preset=family), ITERATIONS[attack]) if attack in ITERATIONS else 0


def project(attack: str, family: str, counted: dict, measured: dict, steps_per_image: int = 25) -> dict:
    if "failed" in counted or "failed" in measured:
        return {}
    t = measured["sample_pass"]
    iterations = paper_iterations(attack, family)
    out = {"iterations": iterations, "setup_s": sum(counted["setup"]) * t}
    out["evaluation_s"] = counted["images"] * steps_per_image * 2 * t
    if measured["steps"]:
        no_grad = measured["step_no_grad"]
        parts = [s - k * t for s, k in zip(measured["steps"], no_grad, strict=True)]
        scaled = measured.get("batch", 1) / measured.get("measured_batch", 1)  # inversion at a smaller batch
        out["s_per_iteration"] = scaled * statistics.median(parts[1:] or parts) + counted["per_iteration"][0] * t
    elif attack in ITERATIONS:  # no clock (Ring-A-Bell): the run's seconds over its generations
        out["s_per_iteration"] = measured["seconds"] / measured.get("iterations_run", 1)
    else:
        out["s_per_iteration"] = 0.0
    out["attack_s"] = out["setup_s"] + iterations * out["s_per_iteration"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="sd1")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--count-iterations", type=int, default=10)
    parser.add_argument("--n", type=int, default=8, help="evaluation images per adversarial prompt")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="bench/scale")
    parser.add_argument("--case", nargs=2, metavar=("KIND", "ATTACK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        kind, attack = args.case
        if kind == "count":
            print(json.dumps(count(attack, args.family, args.count_iterations, args.n)))
        else:
            found = measure(attack, args.family, args.iterations, args.resolution, args.device)
            print(json.dumps(found | {"iterations_run": args.iterations}))
        return
    cache, rows, started, common = scale.parent(args, f"attacks-{args.family}", ("--n", str(args.n)))
    for attack in args.attacks.split(","):
        if attack in rows and "failed" not in rows[attack]["measured"]:
            continue
        counted = scale.child([*common, "--case", "count", attack], __file__)
        measured = scale.child([*common, "--case", "measure", attack], __file__)
        rows[attack] = {"counted": counted, "measured": measured}
        rows[attack]["projected"] = project(attack, args.family, counted, measured)
        cache.write_text(json.dumps(rows, indent=1))
        print(attack, json.dumps(rows[attack]["projected"] or measured), flush=True)
    results = {"family": args.family, "device": args.device, "n": args.n, "rows": rows}
    print("wrote", record.save(f"scale-attacks-{args.family}-{args.device.split(':')[0]}", results, started))
    print(table(results))


def table(results: dict) -> str:
    """The markdown table of a run (docs/gen.py renders it from docs/results/scale-attacks-FAMILY-DEVICE.json)."""
    lines = [
        "| attack | passes: setup / iteration (no grad + grad) | s/iteration | iterations | attack per prompt | "
        f"evaluation ({results['n']} images per adversarial prompt) | peak memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for attack, row in results["rows"].items():
        c, m, p = row["counted"], row["measured"], row["projected"]
        if "failed" in c or "failed" in m:
            lines.append(f"| {attack} | | | | | | not run: {c.get('failed') or m['failed']} |")
            continue
        passes = "{:.0f} + {:.0f} / {:.1f} + {:.1f}".format(*c["setup"], *c["per_iteration"])
        per = f"{p['s_per_iteration']:.1f} s" if p["s_per_iteration"] else "–"
        if m.get("measured_batch", 1) != m.get("batch", 1):  # scaled from the largest batch that fits
            per += f" (batch {m['batch']}, measured at {m['measured_batch']} and scaled)"
        lines.append(
            f"| {attack} | {passes} | {per} | {p['iterations'] or '–'} | {scale.hours(p['attack_s'])} | "
            f"{scale.hours(p['evaluation_s'])} ({c['images']} images) | {m['peak_gb']:.1f} GB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
