"""What each model family costs before anything is downloaded: parameters per component and per group, the memory
its weights take, and the peak memory of one ESD step and one UCE edit (issue 29).

Every family is built at full size from the configs that ship in `models/configs` (random weights: time and memory
do not depend on them). Parameter counts come from modules built on the meta device (no memory at all). Each
measured case runs in its own process, which builds the model in the asked dtype, runs the step, and reports its
peak resident memory (the whole process: weights, the step's activations and optimizer state, and Python and
torch themselves, about 0.5 GB). A family whose weights would not fit this machine's memory in the asked dtype is
measured in bf16 when that fits (the row says which), and otherwise not run, and the table says so.

    .venv/bin/python benchmarks/families.py                          # every family, 512 px, fp32 where it fits
    .venv/bin/python benchmarks/families.py --family sdxl --dtype bf16 --resolution 1024
On a GPU (`--device cuda`) the peak is torch's max_memory_allocated instead. A run over every family writes
docs/results/families-DEVICE.json (benchmarks/record.py), which the docs' cost table is rendered from.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import record

FAMILIES = ("sd1", "sd2", "sdxl", "sd3", "flux")
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def counts(family: str) -> dict:
    """Parameters per component and per group of the denoiser, from modules on the meta device."""
    from erasekit.core.errors import ErasekitError
    from erasekit.models.groups import groups_of, select
    from erasekit.models.synthetic import full_size_components

    modules, *_ = full_size_components(family, device="meta")
    denoiser = next(iter(modules.values()))
    out = {"components": {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}, "groups": {}}
    for group in groups_of(denoiser):
        try:
            out["groups"][group] = sum(p.numel() for p in select(denoiser, group)[1])
        except ErasekitError:  # a group this family has nothing of (SD3 has no single blocks)
            out["groups"][group] = 0
    return out


def case(family: str, what: str, dtype: str, resolution: int, device: str) -> dict:
    """One ESD step (ESD-x, batch 1, 2 sampling steps) or one UCE edit, in this process; its time and peak."""
    import torch

    from erasekit.core.loop import Run
    from erasekit.methods import registry
    from erasekit.methods.concepts import ConceptSet
    from erasekit.models.load import assemble, resolve_dtype
    from erasekit.models.synthetic import full_size_components

    modules, tokenizers, scheduler, options = full_size_components(family, dtype=resolve_dtype(dtype))
    for module in modules.values():
        module.to(device=device)
    bundle = assemble(modules, tokenizers, scheduler, options, f"random {family}", family).at_resolution(resolution)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    spec = registry.get(what)
    values = {"iterations": 1, "ddim_steps": 2} if what == "esd" else {}
    config = registry.build_config(spec, values=values, preset=bundle.preset)
    started = time.perf_counter()
    spec.erase(bundle, ConceptSet(["a cat"]), config, Run(progress=False))
    seconds = time.perf_counter() - started
    peak = (
        torch.cuda.max_memory_allocated()
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {"seconds": seconds, "peak_gb": peak / 1e9}


def fits(family: str, dtype: str) -> bool:
    """Whether the weights alone fit in this machine's memory with 4 GB to spare."""
    total = sum(counts(family)["components"].values()) * BYTES[dtype]
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return total + 4e9 < available


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", action="append", choices=FAMILIES)
    parser.add_argument("--dtype", default="fp32", choices=list(BYTES))
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--out",
        help="also write this run's figures here (a run over every family writes docs/results/families-DEVICE.json)",
    )
    parser.add_argument("--case", nargs=2, metavar=("FAMILY", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # a child process: one measurement, printed as JSON
        print(json.dumps(case(*args.case, args.dtype, args.resolution, args.device)))
        return
    started, rows = time.perf_counter(), {}
    for family in args.family or FAMILIES:
        rows[family] = counts(family)
        weights = sum(rows[family]["components"].values())
        rows[family]["weights_gb"] = {d: weights * b / 1e9 for d, b in BYTES.items()}
        dtype = args.dtype
        if args.device == "cpu" and not fits(family, dtype) and fits(family, "bf16"):
            dtype = "bf16"
        fit = args.device != "cpu" or fits(family, dtype)
        rows[family]["dtype"] = dtype if fit else None
        for what in ("uce", "esd"):
            if not fit:
                tried = dtype if dtype == "bf16" else f"{dtype} or bf16"
                rows[family][what] = {"skipped": f"its weights do not fit this machine's memory in {tried}"}
                continue
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--case",
                    family,
                    what,
                    "--dtype",
                    dtype,
                    "--resolution",
                    str(args.resolution),
                    "--device",
                    args.device,
                ],
                capture_output=True,
                text=True,
            )
            rows[family][what] = (
                json.loads(done.stdout.strip().splitlines()[-1])
                if done.returncode == 0
                else {
                    "failed": (
                        done.stderr.strip().splitlines() or [f"exit status {done.returncode} (killed: out of memory?)"]
                    )[-1]
                }
            )
            print(family, what, rows[family][what], flush=True)
    results = {"dtype": args.dtype, "resolution": args.resolution, "device": args.device, "families": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    if not args.family:  # every family: the docs' results file
        print("wrote", record.save(f"families-{args.device.split(':')[0]}", results, started))
    print(table(results))


def table(results: dict) -> str:
    """The markdown table of a run's results (what docs/gen.py renders from docs/results/families-DEVICE.json)."""
    rows = results["families"]

    def gb(entry):
        if "peak_gb" in entry:
            return f"{entry['peak_gb']:.1f} GB, {entry['seconds']:.0f} s"
        return "not run: " + entry.get("skipped", entry.get("failed", "?"))

    lines = [
        f"Device {results['device']}, {results['resolution']} px; parameters in millions; peak memory of the whole "
        "process (CPU) or torch's peak allocation (GPU), and the wall time.",
        "",
        "| family | denoiser | text encoders | weights fp32 / bf16 | xattn | xattn-kv | measured in | UCE edit | "
        "one ESD-x step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for family, row in rows.items():
        comps = row["components"]
        denoiser = next(iter(comps.values()))
        text = sum(v for k, v in comps.items() if k.startswith("text_encoder"))
        lines.append(
            f"| {family} | {denoiser / 1e6:,.0f} | {text / 1e6:,.0f} | {row['weights_gb']['fp32']:.1f} / "
            f"{row['weights_gb']['bf16']:.1f} GB | {row['groups']['xattn'] / 1e6:,.1f} | "
            f"{row['groups']['xattn-kv'] / 1e6:,.1f} | {row['dtype'] or '–'} | {gb(row['uce'])} | {gb(row['esd'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
