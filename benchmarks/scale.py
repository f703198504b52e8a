"""What each method costs at real size, at its paper's defaults (issue 35): seconds per iteration, the projected
total, peak memory, and the denoiser passes per iteration (the floor).

Time and memory do not depend on the weights, so every model is the family's full-size architecture built from the
configs that ship in `models/configs` with random weights (`models.synthetic.full_size_components`). Each measured
case runs in its own process (its peak resident memory is the case's alone). Three measurements make a row:

1. **Passes**, counted on the tiny random model of the same family at the method's paper defaults (the count of
   denoiser passes does not depend on the width): the samples every denoiser call carries, with and without grad,
   split into the setup (before the first training step: image pools, saliency masks) and the iterations (the
   mean over the first `--count-iterations` steps: ESD's trajectory length is drawn per step). Dark Miner: per
   loop, its stages apart.
2. **One sample-pass**: the seconds of one no-grad denoiser pass per sample at full size (a classifier-free
   guidance pass of batch 2, halved; the median of 3).
3. **The run**: the method at full size at its paper defaults for `--iterations` steps, with the setup-only
   sizes (image pools) cut to the least that runs (`SETUP_ONLY`) and the no-grad sampling inside a step (ESD's
   trajectory to z_t, Dark Miner's images) shortened to 2 DDIM steps (`TRAJECTORY`): on 2 CPU cores one step of
   ESD at 50 DDIM steps takes minutes, nearly all of it no-grad passes whose cost case 2 already measures. Its
   clocked steps, less their own no-grad samples x (one sample-pass), give the step's measured part (the median
   of the steps after the first); the process gives its peak memory, beside the memory guard's estimate of it.

    s/iteration         = measured part + (no-grad samples per iteration at paper defaults) x (one sample-pass)
    floor/iteration     = (samples per iteration) x (one sample-pass): the forward passes alone, no backward
    projected total     = setup samples x (one sample-pass) + iterations x (s/iteration)
    Dark Miner's total  = pool + 48 loops x (mine x s/mine step + circumvent x s/circ step + loop samples x pass)
                          (48: the loops the paper reports for nudity, set beside its 59.3 A100-hours)

    .venv/bin/python benchmarks/scale.py                                 # SD-1.x, every method, CPU
    .venv/bin/python benchmarks/scale.py --methods esd --options ckpt,bf16,half,all
    .venv/bin/python benchmarks/scale.py --device cuda                   # on a GPU: torch's peak allocation

`--options` runs a method again with memory options: `ckpt` (gradient checkpointing), `bf16` (bf16 autocast, fp32
masters), `half` (the model loaded in bf16: the frozen rest in half precision), `all` (the three). Results are
cached per case in --out (an interrupted run resumes); a run writes docs/results/scale-DEVICE.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import record

FINE_TUNING = ("esd", "target", "ca", "ap", "age", "hide", "fmn", "salun", "mace", "darkminer")
CLOSED_FORM = ("uce", "time")
METHODS = FINE_TUNING + CLOSED_FORM
SETUP_ONLY = {  # sizes that only the setup uses, cut for the full-size run (the setup is projected from counts)
    "ca": {"pool_size": 1},
    "fmn": {"pool_size": 1},
    "salun": {"pool_size": 1, "retain_size": 1},
    "mace": {"pool_size": 1},
    "darkminer": {"pool_size": 3, "steps": 1, "circ_images": 1, "max_loops": 1, "tau": -0.999},
}
OPTIONS = {
    "none": ({}, "fp32"),
    "ckpt": ({"gradient_checkpointing": True}, "fp32"),
    "bf16": ({"precision": "bf16"}, "fp32"),
    "half": ({}, "bf16"),
    "all": ({"gradient_checkpointing": True}, "bf16"),
}
TRAJECTORY = {"ddim_steps": 2, "steps": 2}  # the no-grad sampling inside a step, shortened at full size (added back)
CONSUMER_GB = 24  # a peak at or under it is marked ✓ (an RTX 3090/4090)
DARKMINER_LOOPS = 48  # the paper's loops for nudity (its 59.3 A100-hours)
CONCEPT = "nudity"


def vocabulary(tokenizer, path: Path, n: int = 5000) -> str:
    """A vocabulary file of the CLIP tokenizer's first `n` whole alphabetic words (AP/AGE search one; SalUn's
    retain set on SD comes from one): the search's cost depends on its size, not on which words."""
    words = [w[:-4] for w in tokenizer.get_vocab() if w.endswith("</w>") and w[:-4].isalpha() and len(w) > 6]
    path.write_text("\n".join(sorted(set(words))[:n]) + "\n")
    return str(path)


def config_for(method: str, bundle, values: dict, work: Path):
    from erasekit.methods import registry

    spec = registry.get(method)
    fields = spec.config.__dataclass_fields__
    if "vocab" in fields:
        values = {"vocab": vocabulary(bundle.tokenizers["tokenizer"], work / "vocab.txt"), **values}
    return spec, registry.build_config(spec, values=values, preset=bundle.family)


class Passes:
    """Every denoiser call's samples, with or without grad, and when (a global forward hook)."""

    def __init__(self, denoiser_type: type):
        import torch

        self.calls: list[tuple[float, int, bool]] = []
        forward = denoiser_type.forward

        def counted(module, *args, **kwargs):
            x = args[0] if args else next(iter(kwargs.values()))
            if x.device.type != "meta":  # the memory guard's trace is not a pass
                self.calls.append((time.perf_counter(), int(x.shape[0]), torch.is_grad_enabled()))
            return forward(module, *args, **kwargs)

        denoiser_type.forward = counted

    def between(self, start: float, end: float) -> tuple[int, int]:
        """(samples without grad, samples with grad) of the calls in [start, end)."""
        inside = [(n, g) for t, n, g in self.calls if start <= t < end]
        return sum(n for n, g in inside if not g), sum(n for n, g in inside if g)


def count(method: str, family: str, iterations: int) -> dict:
    """Case 1: the passes of the method at paper defaults on the tiny model of `family`."""
    import torch

    from erasekit.core.loop import Run
    from erasekit.methods.concepts import ConceptSet
    from erasekit.models.load import load_bundle

    bundle = load_bundle("tiny" if family == "sd1" else f"tiny-{family}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        values: dict = {}
        if method in FINE_TUNING and method != "darkminer":
            values["iterations"] = iterations
        if method == "darkminer":
            values.update({"max_loops": 1, "tau": -0.999})
        spec, config = config_for(method, bundle, values, work)
        passes, clock = Passes(type(bundle.denoiser)), []
        run = Run(progress=False, clock=clock, scorer=(lambda images: images.flatten(1)))
        started = time.perf_counter()
        torch.manual_seed(0)
        edit = spec.erase(bundle, ConceptSet([CONCEPT], ["a dog"] if method == "salun" else []), config, run)
        ended = time.perf_counter()
    if not clock:  # closed form: every pass is setup
        return {"setup": passes.between(started, ended), "per_iteration": (0, 0)}
    first = clock[0][1]
    steps = [passes.between(s, e) for _, s, e in clock]
    out = {"setup": passes.between(started, first)}
    if method == "darkminer":  # one loop: mine steps, then circumvent steps; the rest is sampling (verify, pool)
        mine, circ = steps[: config.mine_iterations], steps[config.mine_iterations :]
        inside = [tuple(map(sum, zip(*part, strict=True))) for part in (mine, circ)]
        loop_total = passes.between(first, ended)
        out["mine_step"] = [v / len(mine) for v in inside[0]]
        out["circ_step"] = [v / len(circ) for v in inside[1]]
        out["loop_sampling"] = [loop_total[i] - inside[0][i] - inside[1][i] for i in range(2)]
        out["loops"] = 1
        del edit
        return out
    out["per_iteration"] = [sum(s[i] for s in steps) / len(steps) for i in range(2)]
    out["iterations_counted"] = len(steps)
    return out


def sample_pass(bundle, repeats: int = 3) -> float:
    """Seconds of one no-grad denoiser pass per sample: a CFG batch of 2, halved (median of `repeats`)."""
    import torch

    z = torch.randn(2, *bundle.latent_shape, dtype=bundle.dtype, device=bundle.device)
    cond = bundle.unconditional(2)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            started = time.perf_counter()
            bundle.model_output(z, torch.full((2,), 500, device=bundle.device), cond)
            if bundle.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:]) / 2


def measure(method: str, family: str, option: str, iterations: int, resolution: int | None, device: str) -> dict:
    """Case 3 (and 2): the method at full size for a few iterations; its step times, peak and the guard's estimate."""
    import torch

    from erasekit.core.loop import Run
    from erasekit.methods import darkminer, registry
    from erasekit.methods import loop as methods_loop
    from erasekit.methods.concepts import ConceptSet
    from erasekit.models.load import assemble, resolve_dtype
    from erasekit.models.synthetic import full_size_components

    values, dtype = OPTIONS[option]
    modules, tokenizers, scheduler, options = full_size_components(family, dtype=resolve_dtype(dtype))
    for module in modules.values():
        module.to(device=device)
    bundle = assemble(modules, tokenizers, scheduler, options, f"random {family}", family).at_resolution(resolution)
    autocast = values.get("precision") == "bf16"  # the method's passes (its sampling too) run under autocast
    with torch.autocast(bundle.device.type, torch.bfloat16, enabled=autocast):
        per_sample = sample_pass(bundle)
    passes = Passes(type(bundle.denoiser))
    estimates = []
    original = methods_loop.guard

    def recording_guard(*args, **kwargs):
        found = original(*args, **kwargs)
        estimates.append(found.as_dict())
        return found

    methods_loop.guard = darkminer.guard = recording_guard
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        values = {**values, **SETUP_ONLY.get(method, {})}
        spec = registry.get(method)
        values |= {k: v for k, v in TRAJECTORY.items() if k in spec.config.__dataclass_fields__}
        if method in FINE_TUNING and method != "darkminer":
            values["iterations"] = iterations
        if method == "darkminer":
            values.update({"mine_iterations": iterations, "circ_iterations": iterations})
        spec, config = config_for(method, bundle, values, Path(tmp))
        clock: list = []
        run = Run(progress=False, clock=clock, scorer=(lambda images: images.flatten(1)))
        started = time.perf_counter()
        spec.erase(bundle, ConceptSet([CONCEPT], ["a dog"] if method == "salun" else []), config, run)
        seconds = time.perf_counter() - started
    peak = (
        torch.cuda.max_memory_allocated()
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    steps = [e - s for _, s, e in clock]
    out = {"seconds": seconds, "sample_pass": per_sample, "peak_gb": peak / 1e9, "steps": steps}
    out["step_no_grad"] = [passes.between(s, e)[0] for _, s, e in clock]  # samples of the shortened sampling
    if estimates:
        out["estimate"] = estimates[0]
    return out


def child(args: list[str], script: str = __file__) -> dict:
    """One case in its own process (its peak memory is the case's alone): its JSON, or {"failed": why}."""
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if done.returncode == 0:
        return json.loads(done.stdout.strip().splitlines()[-1])
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return {"failed": lines[-1] if lines else f"exit status {done.returncode} (killed: out of memory?)"}


def paper_iterations(method: str, family: str) -> dict:
    from erasekit.methods import registry

    spec = registry.get(method)
    config = registry.build_config(spec, preset=family)
    return {k: getattr(config, k) for k in ("iterations", "mine_iterations", "circ_iterations") if hasattr(config, k)}


def project(method: str, family: str, counted: dict, measured: dict) -> dict:
    """The projected figures of one row (the module docstring's formulas)."""
    if "failed" in counted or "failed" in measured:
        return {}
    t = measured["sample_pass"]
    setup = sum(counted["setup"]) * t
    # each step less its (shortened) no-grad sampling: the part the run measures; the sampling is added from counts
    no_grad = measured.get("step_no_grad", [0] * len(measured["steps"]))
    steps = [s - n * t for s, n in zip(measured["steps"], no_grad, strict=True)]
    paper = paper_iterations(method, family)
    if method == "darkminer":
        n = len(steps) // 2
        mine, circ = steps[:n], steps[n:]
        s_mine = statistics.median(mine[1:] or mine) + counted["mine_step"][0] * t
        s_circ = statistics.median(circ[1:] or circ) + counted["circ_step"][0] * t
        per_loop = (
            paper["mine_iterations"] * s_mine + paper["circ_iterations"] * s_circ + sum(counted["loop_sampling"]) * t
        )
        return {
            "s_mine_step": s_mine,
            "s_circ_step": s_circ,
            "per_loop_s": per_loop,
            "stages_s": {
                "mine": paper["mine_iterations"] * s_mine,
                "verify+pool": sum(counted["loop_sampling"]) * t,
                "circumvent": paper["circ_iterations"] * s_circ,
            },
            "setup_s": setup,
            "total_s": setup + DARKMINER_LOOPS * per_loop,
            "loops": DARKMINER_LOOPS,
        }
    if not steps:  # closed form
        return {"total_s": measured["seconds"], "setup_s": measured["seconds"]}
    s_iter = statistics.median(steps[1:] or steps) + counted["per_iteration"][0] * t
    floor = sum(counted["per_iteration"]) * t
    return {
        "s_per_iteration": s_iter,
        "floor_s_per_iteration": floor,
        "ratio_to_floor": s_iter / floor if floor else None,
        "setup_s": setup,
        "iterations": paper["iterations"],
        "total_s": setup + paper["iterations"] * s_iter,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="sd1")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--options", default="none", help="comma-separated: " + ", ".join(OPTIONS))
    parser.add_argument("--iterations", type=int, default=2, help="full-size steps measured per case")
    parser.add_argument("--count-iterations", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=None, help="default: the family's (512 for SD-1.x)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="bench/scale", help="cache folder (resume)")
    parser.add_argument("--case", nargs=3, metavar=("KIND", "METHOD", "OPTION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # a child process: one case, printed as JSON
        kind, method, option = args.case
        if kind == "count":
            print(json.dumps(count(method, args.family, args.count_iterations)))
        else:
            print(json.dumps(measure(method, args.family, option, args.iterations, args.resolution, args.device)))
        return
    cache, rows, started, common = parent(args, args.family)
    for method in args.methods.split(","):
        for option in args.options.split(","):
            if option != "none" and method in CLOSED_FORM:
                continue
            key = f"{method}:{option}"
            if key in rows and "failed" not in rows[key]["measured"]:
                continue
            counted = rows.get(f"{method}:count") or child([*common, "--case", "count", method, option])
            rows[f"{method}:count"] = counted
            measured = child([*common, "--case", "measure", method, option])
            rows[key] = {"method": method, "option": option, "measured": measured}
            rows[key]["projected"] = project(method, args.family, counted, measured)
            cache.write_text(json.dumps(rows, indent=1))
            print(key, json.dumps(rows[key]["projected"] or measured), flush=True)
    results = {"family": args.family, "device": args.device, "iterations": args.iterations, "rows": rows}
    print("wrote", record.save(f"scale-{args.family}-{args.device.split(':')[0]}", results, started))
    print(table(results))


def parent(args, name: str, extra: tuple = ()) -> tuple[Path, dict, float, list[str]]:
    """The parent process's start: its cache in --out (what an earlier run measured), its clock, and the arguments
    every child case gets."""
    from erasekit.cli import quiet_libraries

    quiet_libraries()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / f"{name}-{args.device.split(':')[0]}.json"
    rows = json.loads(cache.read_text()) if cache.exists() else {}
    common = ["--family", args.family, "--iterations", str(args.iterations), "--device", args.device]
    common += ["--count-iterations", str(args.count_iterations), *extra]
    if args.resolution:
        common += ["--resolution", str(args.resolution)]
    return cache, rows, time.perf_counter(), common


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:,.1f} min"


def table(results: dict) -> str:
    """The markdown cost table of a run (what docs/gen.py renders from docs/results/scale-FAMILY-DEVICE.json)."""
    lines = [
        f"Device {results['device']}, SD-family `{results['family']}` at full size, {results['iterations']} measured "
        f"iterations per case; options: `none` (the paper's fp32), `ckpt` (gradient checkpointing), `bf16` (autocast, "
        f"fp32 masters), `half` (the model loaded in bf16, the trained group in fp32), `all` (ckpt and half). "
        f"✓: a peak at or under {CONSUMER_GB} GB. The guard's estimate is beside the measured peak, with its error.",
        "",
        "| method | options | passes/iteration (no grad + grad) | s/iteration | floor | ratio | setup | "
        "projected total | peak memory | guard's estimate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = results["rows"]
    for key, row in rows.items():
        if key.endswith(":count"):
            continue
        m, p, counted = row["measured"], row["projected"], rows.get(f"{row['method']}:count", {})
        if "failed" in m:
            lines.append(f"| {row['method']} | {row['option']} | | | | | | | not run: {m['failed']} | |")
            continue
        est = m.get("estimate", {}).get("peak")
        guard = f"{est:.1f} GB ({(est * 1e9 / (m['peak_gb'] * 1e9) - 1) * 100:+.0f}%)" if est else "–"
        if row["method"] == "darkminer":
            passes = "mine {:.0f}+{:.0f}, circ {:.0f}+{:.0f}".format(*counted["mine_step"], *counted["circ_step"])
            per = f"{p['s_mine_step']:.1f} / {p['s_circ_step']:.1f} s (mine / circ)"
            floor, ratio, total = "–", "–", f"{hours(p['total_s'])} ({p['loops']} loops)"
        elif "per_iteration" in counted and p.get("s_per_iteration"):
            passes = "{:.1f} + {:.1f}".format(*counted["per_iteration"])
            per, floor = f"{p['s_per_iteration']:.1f} s", f"{p['floor_s_per_iteration']:.1f} s"
            ratio, total = f"{p['ratio_to_floor']:.2f}", f"{hours(p['total_s'])} ({p['iterations']} it.)"
        else:
            passes, per, floor, ratio, total = (
                "{:.0f} + {:.0f}".format(*counted["setup"]),
                "–",
                "–",
                "–",
                hours(p["total_s"]),
            )
        lines.append(
            f"| {row['method']} | {row['option']} | {passes} | {per} | {floor} | {ratio} | {hours(p['setup_s'])} | "
            f"{total} | {m['peak_gb']:.1f} GB{' ✓' if m['peak_gb'] <= CONSUMER_GB else ''} | {guard} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
