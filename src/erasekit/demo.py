"""`erasekit demo`: the main job on the miniature. Erase one object with ESD and with UCE, evaluate base and both
edits on the world suites (the object's ESR, the other nine objects' PSR, and on the general set the judge-feature
Fréchet distance to the base model's images), and write the edits, the reports and a five-line summary table.

A distance on a few hundred images is mostly noise, so the table reads each edit's FJD against the base model's own
split-half FJD (its images on seeds A against its images on seeds B, the floor): an edit's figure is printed only
where its interval lies wholly above the floor's, and otherwise as `~base`, a difference the sample cannot show.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_dir, check_output
from erasekit.eval import metrics as M
from erasekit.eval.evaluation import evaluate_edit
from erasekit.eval.suites import SuiteRun, evaluate, load_judges
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle
from erasekit.report.html import write_evaluation
from erasekit.runs import erase as runs
from erasekit.world.render import OBJECTS

METHODS = ("esd", "uce")
GENERAL_N = 2  # images per general-set prompt (100 prompts) and half; the base draws two halves (seeds A and B)


def run_demo(
    out: str | Path, concept: str = "star", n: int = 16, overwrite: bool = False, echo=print, progress: bool = True
) -> list[str]:
    """Run the demo into `out` (written under a temporary name, renamed when complete); returns the summary."""
    if concept not in OBJECTS:
        raise ErasekitError(f"unknown concept {concept!r} for the demo; choose an object: {', '.join(OBJECTS)}")
    out = Path(out)
    check_output(out, overwrite)
    base = load_bundle("mini")
    run = SuiteRun(n=n, progress=progress)
    judges = load_judges("world-objects", run)  # the world judge, loaded once for every evaluation below
    rows = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        echo(f"evaluating the base miniature ({n} images per prompt)")
        base_obj = evaluate(base, "world-objects", run, [concept], judges=judges, desc="base: objects")
        seeds_a, seeds_b = general_halves(base, judges, progress)
        floor = M.feature_distances(seeds_a, seeds_b)
        rows.append(("base", base_obj.metrics, floor, None))
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
                edit.apply(base),
                "world-general",
                SuiteRun(n=GENERAL_N, progress=progress),
                judges=judges,
                desc=f"{name}: general set",
            )
            distances = M.feature_distances(_features(judges.main, general.images), seeds_b)
            ev.edited.metrics.update({f"{k}_general": v for k, v in distances.items()})
            ev.edited.metrics.update({f"{k}_general_floor": floor[k] for k in ("fjd", "fjd_ci")})
            write_evaluation(
                ev,
                tmp / f"{name}-eval",
                run_folder=tmp / name,
                title=f"erasekit demo: {name} erases {concept!r} from the miniature",
            )
            rows.append((name, ev.edited.metrics, distances, seconds))
        lines = summary(concept, n, out, rows)
        (tmp / "summary.txt").write_text("\n".join(lines) + "\n")
    return lines


def _features(judge, images) -> np.ndarray:
    return judge.score(images).features.double().numpy()


def general_halves(base, judges, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """The base model's world-general judge features on seeds A (the seeds every edit is drawn with) and on seeds B
    (the reference): 2 x GENERAL_N images per prompt, split by seed."""
    run = SuiteRun(n=2 * GENERAL_N, progress=progress)
    result = evaluate(base, "world-general", run, judges=judges, desc="base: general set")
    return M.seed_halves(_features(judges.main, result.images), GENERAL_N)


def summary(concept: str, n: int, out: Path, rows) -> list[str]:
    floor = rows[0][2]
    lines = [
        f"erasing {concept!r} from the miniature ({n} images per prompt; FJD to the base's images, shown only where "
        f"it clears the base's own split-half {floor['fjd']:.1f} [{floor['fjd_ci'][0]:.1f}, {floor['fjd_ci'][1]:.1f}]; "
        f"reports: {out}/*-eval/report.html)",
        f"{'model':<6}{'ESR-1':>7}{'ESR-5':>7}{'PSR-1':>7}{'PSR-5':>7}{'FJD':>8}{'time':>9}",
    ]
    for name, m, d, seconds in rows:
        took = "-" if seconds is None else f"{seconds:.1f} s"
        if seconds is None:
            fjd = f"{d['fjd']:.1f}"  # the floor itself
        else:
            fjd = f"{d['fjd']:.1f}" if M.separates(d["fjd_ci"], floor["fjd_ci"]) else "~base"
        lines.append(
            f"{name:<6}{m['esr@1']:>7.1f}{m['esr@5']:>7.1f}{m['psr@1']:>7.1f}{m['psr@5']:>7.1f}{fjd:>8}{took:>9}"
        )
    return lines
