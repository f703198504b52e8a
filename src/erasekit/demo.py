"""`erasekit demo`: the main job on the miniature. Erase one object with ESD and with UCE, evaluate base and both
edits on the world suites (the object's ESR, the other nine objects' PSR, the judge-feature Fréchet distance on
the general set), and write the edits, the reports and a five-line summary table.
"""

from __future__ import annotations

import time
from pathlib import Path

from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_dir, check_output
from erasekit.eval.evaluation import evaluate_edit
from erasekit.eval.suites import SuiteRun, evaluate, load_judges
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle
from erasekit.report.html import write_evaluation
from erasekit.runs import erase as runs
from erasekit.world.render import OBJECTS

METHODS = ("esd", "uce")
GENERAL_N = 2  # images per general-set prompt (100 prompts) for the FJD


def run_demo(
    out: str | Path, concept: str = "star", n: int = 16, overwrite: bool = False, echo=print, progress: bool = True
) -> list[str]:
    """Run the demo into `out` (written under a temporary name, renamed when complete); returns the summary."""
    if concept not in OBJECTS:
        raise ErasekitError(f"unknown concept {concept!r} for the demo; choose an object: {', '.join(OBJECTS)}")
    out = Path(out)
    check_output(out, overwrite)
    base = load_bundle("mini")
    run, general_run = SuiteRun(n=n, progress=progress), SuiteRun(n=GENERAL_N, progress=progress)
    judges = load_judges("world-objects", run)  # the world judge, loaded once for every evaluation below
    rows = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        echo(f"evaluating the base miniature ({n} images per prompt)")
        base_obj = evaluate(base, "world-objects", run, [concept], judges=judges, desc="base: objects")
        base_gen = evaluate(base, "world-general", general_run, judges=judges, desc="base: general set")
        rows.append(("base", base_obj.metrics, base_gen.metrics, None))
        for name in METHODS:
            spec = registry.get(name)
            config = registry.build_config(spec, preset="mini")
            keep = [o for o in OBJECTS if o != concept] if name == "uce" else []  # UCE's preservation set P
            concepts = ConceptSet([concept], keep)
            echo(f"erasing {concept!r} with {name}")
            start = time.perf_counter()
            scorer = runs.plan(base, spec, concepts, config)
            edit = runs.erase(base, spec, concepts, config, tmp / name, scorer=scorer, progress=progress)
            seconds = time.perf_counter() - start
            ev = evaluate_edit(
                base,
                edit,
                "world-objects",
                run,
                [concept],
                judges=judges,
                base_result=base_obj,
                label=f"{name}: objects",
            )
            general = evaluate(
                edit.apply(base), "world-general", general_run, judges=judges, desc=f"{name}: general set"
            )
            ev.edited.metrics["fjd_general"] = general.metrics["fjd"]
            write_evaluation(
                ev,
                tmp / f"{name}-eval",
                run_folder=tmp / name,
                title=f"erasekit demo: {name} erases {concept!r} from the miniature",
            )
            rows.append((name, ev.edited.metrics, general.metrics, seconds))
        lines = summary(concept, n, out, rows)
        (tmp / "summary.txt").write_text("\n".join(lines) + "\n")
    return lines


def summary(concept: str, n: int, out: Path, rows) -> list[str]:
    lines = [
        f"erasing {concept!r} from the miniature ({n} images per prompt; reports: {out}/*-eval/report.html)",
        f"{'model':<6}{'ESR-1':>7}{'ESR-5':>7}{'PSR-1':>7}{'PSR-5':>7}{'FJD':>8}{'time':>9}",
    ]
    for name, m, g, seconds in rows:
        took = "-" if seconds is None else f"{seconds:.1f} s"
        lines.append(
            f"{name:<6}{m['esr@1']:>7.1f}{m['esr@5']:>7.1f}{m['psr@1']:>7.1f}{m['psr@5']:>7.1f}"
            f"{g['fjd']:>8.2f}{took:>9}"
        )
    return lines
