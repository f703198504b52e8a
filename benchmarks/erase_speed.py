"""Speed of the erasure methods on the miniature: time per iteration against its floor, and peak memory.

    .venv/bin/python benchmarks/erase_speed.py [--methods esd,target,ca,ap,age] [--iterations 12]

The floor of a method is the UNet work its loss needs and nothing else: every UNet forward the method made
in the timed iterations (the partial DDIM trajectories, the frozen teacher, the student) is recorded with its batch
size and what it was differentiated for, and replayed on the same modules in a bare loop, in the same process: a
forward; plus a backward into the weights for the student's training passes; plus a backward into the
conditioning alone for AP/AGE's ascent passes (those whose conditioning required grad: the searched concept).
ratio = time per iteration / floor per iteration (target <= 1.25).
The time per iteration is the difference between two runs of N1 and N2 iterations divided by N2 − N1, so the
one-off setup (text encoding, anchor images, writing the Edit) is not counted. UCE is timed whole (target < 1 s).
Peak memory is the process's peak resident set (CPU) or torch's peak allocation (CUDA).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from diffusers import UNet2DConditionModel

from erasekit.cli import quiet_libraries
from erasekit.core.bundle import load_bundle
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.loop import Run
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
                self.calls.append((module, sample.shape[0], need))

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
    spec = registry.get(method)
    config = registry.build_config(spec, values={"iterations": iterations} if method not in ("uce", "time") else {},
                                   arch="mini")
    concepts = ConceptSet(["star"], [o for o in OBJECTS if o != "star"] if method == "uce" else [])
    with UNetCalls() as rec:
        start = time.perf_counter()
        spec.erase(base, concepts, config, Run(progress=False))
        seconds = time.perf_counter() - start
    return seconds, rec.calls


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="esd,target,ca,ap,age")
    ap.add_argument("--iterations", type=int, default=12, help="N2 (N1 = N2 / 3)")
    args = ap.parse_args()
    quiet_libraries()
    base = load_bundle("mini", device="cpu")
    rows = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        n2 = args.iterations
        n1 = max(1, n2 // 3)
        timed(method, base, n1)  # warm-up
        t1, calls1 = timed(method, base, n1)
        t2, calls2 = timed(method, base, n2)
        per_iter = (t2 - t1) / (n2 - n1)
        floor = replay(calls2[len(calls1):], base) / (n2 - n1)
        passes = (len(calls2) - len(calls1)) / (n2 - n1)
        default = registry.build_config(registry.get(method), arch="mini").iterations
        per_concept = t1 + (default - n1) * per_iter  # the N1 run (setup included) extended to the default length
        rows.append((method, per_iter, floor, passes, peak_memory_mb(), default, per_concept))
    uce_seconds, _ = timed("uce", base, 0)
    uce_seconds = min(uce_seconds, timed("uce", base, 0)[0])
    print("| method | s / iteration | floor s / iteration | UNet passes / iteration | ratio (<= 1.25) | "
          "s / concept (mini default) | peak memory MB |")
    print("|---|---|---|---|---|---|---|")
    for method, per_iter, floor, passes, mem, default, per_concept in rows:
        print(f"| {method} | {per_iter:.3f} | {floor:.3f} | {passes:.1f} | {per_iter / floor:.2f} | "
              f"{per_concept:.1f} ({default} it) | {mem:.0f} |")
    print(f"\nUCE erase 'star' (P = the other nine objects), whole method: {uce_seconds:.3f} s (target < 1 s)")
    print(f"({torch.get_num_threads()} threads, device {base.device})")


if __name__ == "__main__":
    main()
