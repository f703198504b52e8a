"""Dark Miner on the miniature (issue 13), beside esd, uce, ap and age at their miniature defaults, in one run.

    .venv/bin/python benchmarks/darkminer_world.py [--methods esd,uce,ap,age,darkminer] [--concepts mark,star]
        [--attacks ringabell,inversion,unlearndiff,p4d] [--n 8] [--suite-n 4] [--general-n 2] [--mark-limit 6]
        [--out bench/attack-world]

Per concept and method:
- erasure: for `mark`, the implicit concept's rate on its 60 indirect phrasings (world-implicit, as the paper counts
  nudity on I2P); for `star`, ESR-1 of the star and PSR-1 of the other nine objects (world-objects); --suite-n
  images per prompt;
- preservation: the general set's judge-feature Fréchet distance (FJD) and attribute agreement (world-general, its
  100 prompts x --general-n), with the unedited model's own split-half FJD (even against odd images) beside them;
- robustness: ASR of each attack, the cells of benchmarks/attack_world.py (the same cache when --out is the same
  folder: rows already measured there are reused, not recomputed);
- cost: the method's wall time; for Dark Miner its loops, s(c) per loop and the time of each stage.
Every rate comes with n and its 95% Wilson interval. Edits and cells are cached in --out (a killed run resumes).
Time it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from attack_world import AttackTable
from erasekit.cli import quiet_libraries
from erasekit.core.files import write_text
from erasekit.eval import metrics as M
from erasekit.eval.suites import SuiteRun, evaluate
from erasekit.models.load import load_bundle
from erasekit.world.judge import WorldJudge


def suite_cells(model, concept: str, n: int, general_n: int):
    """Erasure and preservation figures of one model (see the module docstring), and its general-set images."""
    run = SuiteRun(n=n, steps=25, progress=False)
    out = {}
    if concept == "mark":
        m = evaluate(model, "world-implicit", run).metrics
        images = 60 * n  # its 60 indirect phrasings
        out["mark_rate"], out["mark_rate_n"] = m["implicit_rate"], images
        out["mark_rate_ci"] = M.wilson(m["implicit_rate"], images)
    else:
        m = evaluate(model, "world-objects", run, erased=[concept]).metrics
        for key in ("esr@1", "psr@1"):
            out[key], out[f"{key}_ci"] = m[key], m[f"{key}_ci"]
        out["esr_n"], out["psr_n"] = m["esr_n"], m["psr_n"]
        out["implicit_rate_erased"] = m.get("implicit_rate_erased")
    general = evaluate(model, "world-general", SuiteRun(n=general_n, steps=25, progress=False))
    out["fjd"], out["attribute_agreement"] = general.metrics["fjd"], general.metrics["attribute_agreement"]
    out["general_n"] = len(general.images)
    return out, general.images


def split_half_fjd(images) -> float:
    """The FJD between the even and the odd images of one model: the noise floor of an FJD at this n."""
    features = WorldJudge.load().score(images).features.numpy()
    return M.frechet_distance(features[0::2], features[1::2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="esd,uce,ap,age,darkminer")
    parser.add_argument("--concepts", default="mark,star")
    parser.add_argument("--attacks", default="ringabell,inversion,unlearndiff,p4d")
    parser.add_argument("--n", type=int, default=8, help="images per attacked prompt")
    parser.add_argument("--suite-n", type=int, default=4, help="images per prompt of world-implicit/world-objects")
    parser.add_argument("--general-n", type=int, default=2, help="images per prompt of world-general")
    parser.add_argument("--mark-limit", type=int, default=6)
    parser.add_argument("--out", default="bench/attack-world")
    args = parser.parse_args()
    quiet_libraries()
    base = load_bundle("mini")
    table = AttackTable(base, Path(args.out), n=args.n)
    file = Path(args.out) / "darkminer.json"
    cells = json.loads(file.read_text()) if file.exists() else {}
    method_names = [m for m in args.methods.split(",") if m]
    attack_names = [a for a in args.attacks.split(",") if a]
    for concept in [c for c in args.concepts.split(",") if c]:
        for method in ["none", *method_names]:
            key = f"{concept}|{method}"
            if key not in cells:
                seconds, record = 0.0, None
                if method != "none":
                    edit, seconds = table.edit(method, concept)
                    record = {k: edit.metrics.get(k) for k in ("loops", "stopped_by", "s")}
                    loops = Path(args.out) / "edits" / f"{concept}-{method}" / "loops.json"
                    if loops.exists():
                        record["per_loop_seconds"] = [r.get("seconds") for r in json.loads(loops.read_text())]
                figures, images = suite_cells(table.model(method, concept), concept, args.suite_n, args.general_n)
                if method == "none":
                    figures["split_half_fjd"] = split_half_fjd(images)
                cells[key] = figures | {"seconds": seconds, "record": record}
                write_text(file, json.dumps(cells, indent=1, sort_keys=True))
                print(f"{key}: {figures}", flush=True)
        table.fill(concept, ["none", *method_names], attack_names, limit=args.mark_limit if concept == "mark" else None)
        show(concept, ["none", *method_names], attack_names, cells, table.results)


def show(concept, method_names, attack_names, cells, results) -> None:
    def ci(v, c):
        return f"{v:.0f} [{c[0]:.0f}, {c[1]:.0f}]"

    first = ("mark % (indirect)",) if concept == "mark" else ("ESR-1", "PSR-1")
    print(f"\n### {concept}: erasure, preservation, ASR % [95% Wilson] and cost")
    print("| method | " + " | ".join(first) + " | FJD | attr. agr. | " + " | ".join(attack_names) + " | time |")
    print("|---|" + "---|" * (len(first) + 3 + len(attack_names)))
    for method in method_names:
        c = cells[f"{concept}|{method}"]
        head = (
            [ci(c["mark_rate"], c["mark_rate_ci"]) + f" n={c['mark_rate_n']}"]
            if concept == "mark"
            else [
                ci(c["esr@1"], c["esr@1_ci"]) + f" n={c['esr_n']}",
                ci(c["psr@1"], c["psr@1_ci"]) + f" n={c['psr_n']}",
            ]
        )
        fjd = f"{c['fjd']:.1f}" + (f" (split-half {c['split_half_fjd']:.1f})" if "split_half_fjd" in c else "")
        attacked = [
            ci(results[f"{concept}|{method}|{a}"]["asr"], results[f"{concept}|{method}|{a}"]["asr_ci"])
            for a in attack_names
        ]
        print(
            f"| {method} | "
            + " | ".join(head)
            + f" | {fjd} | {c['attribute_agreement']:.1f} | "
            + " | ".join(attacked)
            + f" | {c['seconds']:.0f} s |"
        )
    for method in method_names:
        record = cells[f"{concept}|{method}"].get("record") or {}
        if record.get("s"):
            print(
                f"\n{method}: {record['loops']} loops, stopped by {record['stopped_by']}; s(c) per loop: "
                + ", ".join(f"{s:.3f}" for s in record["s"])
            )
            for i, sec in enumerate(record.get("per_loop_seconds") or []):
                print(f"  loop {i}: " + ", ".join(f"{k} {v:.0f} s" for k, v in (sec or {}).items()))


if __name__ == "__main__":
    main()
