"""Speed of the erasure methods on the miniature: time per iteration against its floor, and peak memory.

    .venv/bin/python benchmarks/erase_speed.py [--methods esd,target,ca,ap,age] [--iterations 12]

The floor of a method is the UNet work its loss needs and nothing else: every UNet forward the method made
in the timed iterations (the partial DDIM trajectories, the frozen teacher, the student) is recorded with its batch
size and what it was differentiated for, and replayed on the same modules in a bare loop, in the same process: a
forward; plus a backward into the weights for the student's training passes; plus a backward into the
conditioning alone for AP/AGE's ascent passes (those whose conditioning required grad: the searched concept).
ratio = time per iteration / floor per iteration (target <= 1.25). The measurement (the timed run, then its replay)
is repeated --repeats times: the table shows the median of each figure and the range of the ratio, since one
run on a shared 2-core machine moves it by ±0.15.
The time per iteration is the training loop's own wall time (the loop reports each step's start and end through
`Run.clock`) over its iterations, so the one-off setup (text encoding, anchor images, writing the Edit) is not
counted; the replayed calls are those made inside that window. UCE is timed whole (target < 1 s).
Peak memory is the process's peak resident set (CPU) or torch's peak allocation (CUDA).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from diffusers import UNet2DConditionModel

from erasekit.cli import quiet_libraries
from erasekit.core.loop import Run
from erasekit.eval.judges import method_scorer
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle
from erasekit.world.render import OBJECTS


class UNetCalls:
    """Records every UNet forward while active: (module, batch, what it is differentiated for)."""

    def __enter__(self):
        self.calls = []

        def hook(module, args, kwargs, output):
            if isinstance(module, UNet2DConditionModel):
                sample = args[0] if args else kwargs["sample"]
                cond = kwargs.get("encoder_hidden_states")
                if not torch.is_grad_enabled():
                    need = None
                elif cond is not None and cond.requires_grad:
                    need = "input"
                else:
                    need = "weights" if any(p.requires_grad for p in module.parameters()) else None
                self.calls.append((module, sample.shape[0], need, time.perf_counter()))

        self.handle = torch.nn.modules.module.register_module_forward_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def replay(calls, bundle) -> float:
    """Seconds to run the recorded UNet passes alone, each with the backward it needed."""
    d = bundle.text_encoder.config.hidden_size
    shape = bundle.latent_shape
    inputs = {b: (torch.randn(b, *shape), torch.full((b,), 500), torch.randn(b, 77, d)) for _, b, _ in calls}
    start = time.perf_counter()
    for module, b, need in calls:
        z, t, c = inputs[b]
        c = c.detach().requires_grad_(need == "input")
        with torch.set_grad_enabled(need is not None):
            out = module(z, t, encoder_hidden_states=c).sample
            if need == "weights":
                out.square().mean().backward()
            elif need == "input":
                torch.autograd.grad(out.square().mean(), c)
    return time.perf_counter() - start


def timed(method: str, base, iterations: int):
    """(whole run seconds, seconds per training iteration, the UNet calls made inside the training loop)."""
    spec = registry.get(method)
    config = registry.build_config(
        spec, values={"iterations": iterations} if method not in ("uce", "time") else {}, preset="mini"
    )
    concepts = ConceptSet(["star"], [o for o in OBJECTS if o != "star"] if method == "uce" else [])
    clock: list = []
    scorer = method_scorer(spec, base, config, concepts)  # MACE's segmented images on the miniature
    with UNetCalls() as rec:
        start = time.perf_counter()
        spec.erase(base, concepts, config, Run(progress=False, clock=clock, scorer=scorer))
        seconds = time.perf_counter() - start
    if not clock:
        return seconds, None, []
    begin, end = clock[0][1], clock[-1][2]
    calls = [(m, b, need) for m, b, need, at in rec.calls if begin <= at <= end]
    return seconds, (end - begin) / len(clock), calls


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="esd,target,ca,ap,age")
    ap.add_argument("--iterations", type=int, default=12, help="training iterations timed per method")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs (each with its replay) per method")
    args = ap.parse_args()
    quiet_libraries()
    base = load_bundle("mini", device="cpu")
    rows = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        timed(method, base, 2)  # warm-up
        default = registry.build_config(registry.get(method), preset="mini").iterations
        runs = []
        for _ in range(args.repeats):
            seconds, per_iter, calls = timed(method, base, args.iterations)
            floor = replay(calls, base) / args.iterations
            per_concept = seconds + (default - args.iterations) * per_iter  # the measured run at the default length
            runs.append((per_iter, floor, per_iter / floor, per_concept, len(calls) / args.iterations))
        per_iter, floor, ratio, per_concept, passes = (float(np.median(col)) for col in zip(*runs, strict=True))
        ratios = [r[2] for r in runs]
        rows.append(
            (method, per_iter, floor, passes, ratio, min(ratios), max(ratios), peak_memory_mb(), default, per_concept)
        )
    uce_seconds = min(timed("uce", base, 0)[0], timed("uce", base, 0)[0])
    mace = [row for row in rows if row[0] == "mace"]
    print(f"median of {args.repeats} runs of {args.iterations} iterations each")
    print(
        "| method | s / iteration | floor s / iteration | UNet passes / iteration | ratio (<= 1.25) | ratio range | "
        "s / concept (mini default) | peak memory MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for method, per_iter, floor, passes, ratio, low, high, mem, default, per_concept in rows:
        print(
            f"| {method} | {per_iter:.3f} | {floor:.3f} | {passes:.1f} | {ratio:.2f} | {low:.2f}–{high:.2f} | "
            f"{per_concept:.1f} ({default} it) | {mem:.0f} |"
        )
    print(f"\nUCE erase 'star' (P = the other nine objects), whole method: {uce_seconds:.3f} s (target < 1 s)")
    if mace:
        _, per_iter, _, _, _, _, _, _, default, per_concept = mace[0]
        print(
            f"MACE erase 'star': {per_concept:.2f} s, of which its {default} LoRA steps {default * per_iter:.2f} s; "
            f"the rest ({per_concept - default * per_iter:.2f} s) is the two closed forms and the setup"
        )
    print(f"({torch.get_num_threads()} threads, device {base.device})")


if __name__ == "__main__":
    main()
