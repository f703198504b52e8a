"""Computing a bench's cells: for each row of the spec (this shard's rows), the erasure (trained to its budget when
it has one), the erasure suite, the general suite and every attack, each cached as a cell (`bench/cells.py`).

Generation inside a cell goes through `eval.generate.generate_batched`, which splits its images over the processes
of an `accelerate launch` as `generate` does; under several processes only the main one trains and writes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from erasekit.bench.cells import Cells, cell_key
from erasekit.bench.spec import NONE, Budget, Row, Spec
from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.eval.generate import generate_batched, grid, save_image
from erasekit.methods.concepts import ConceptSet
from erasekit.models.bundle import Bundle

CHECK_SEED = 20_000  # the budget's checks use seeds no suite or attack uses
GRID_CONCEPTS, GRID_SEEDS = 4, 8  # a suite cell keeps the images of its first concepts (erased first), same seeds


@dataclass
class Context:
    spec: Spec
    base: Bundle
    cells: Cells
    progress: bool = True
    fingerprint: str = ""
    found: dict = field(default_factory=dict)  # model-agnostic attacks' searches (`runs.attack.attack_once`)
    state: object = None  # accelerate's PartialState under a launch of several processes, else None
    legacy: str | None = None  # the base's version-1 fingerprint (erasekit 0.1.0 keyed its cells by it), or None
    judges: dict = field(default_factory=dict)  # judge name -> the judge, loaded once by check_rows
    provenance: dict = field(default_factory=dict)  # judge name -> its provenance (weights hashed once)

    def __post_init__(self):
        self.fingerprint = self.fingerprint or self.base.fingerprint()
        self.legacy = self.legacy or self.base.legacy_fingerprint()

    @property
    def main(self) -> bool:
        return self.state is None or self.state.is_main_process

    def sync(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def domain_of(ctx: Context, erase: tuple[str, ...]):
    """The domain of a row's concepts (`eval.registries`), one per row, with a suite that scores their erasure;
    refused when no judge can score it."""
    from erasekit.eval.registries import domain_for

    found = []
    for concept in erase:
        try:
            domain = domain_for(ctx.base, concept, ctx.spec.domain)
        except ErasekitError as e:
            raise ErasekitError(f"bench: the judges cannot score the erasure of {concept} ({e})") from None
        if domain.suite is None:
            raise ErasekitError(
                f"bench: the {domain.judge} judge cannot score the erasure of {concept} (domain {domain.name} has no "
                "suite)"
            )
        found.append(domain)
    kinds = list(dict.fromkeys(d.kind for d in found))
    if len(kinds) > 1:
        raise ErasekitError(f"bench: a row erases one kind of concept; {', '.join(erase)} mixes {', '.join(kinds)}")
    return found[0]


def erasure_suite(ctx: Context, erase: tuple[str, ...]) -> str:
    """The suite that scores a row's erasure: the spec's (`suites.erasure.suite`), else its domain's."""
    return ctx.spec.erasure.get("suite") or domain_of(ctx, erase).suite


def _need(ctx: Context, name: str):
    """A judge, loaded once (a missing weights folder fails here, before any work)."""
    from erasekit.eval.registries import JUDGES

    if name not in ctx.judges:
        try:
            ctx.judges[name] = JUDGES.get(name).load(ctx.spec.files, ctx.base.device)
        except ErasekitError as e:
            raise ErasekitError(f"bench: the {name} judge (the spec's judges: ...): {e}") from None
    return ctx.judges[name]


def general_suite(ctx: Context) -> str:
    """The preservation suite: the world's own captions on a model with a world, else COCO's captions."""
    from erasekit.eval.registries import world_tool

    own = world_tool(ctx.base, "general")
    return own() if own is not None else "coco"


def feature_judge(ctx: Context) -> str:
    """What the general suite's KID and FJD are computed on: the world judge's features, else FID's Inception
    where the spec gives it, else CLIP's image embeddings."""
    from erasekit.eval.registries import world_of

    own = world_of(ctx.base)
    if own is not None:
        return own.name
    return "inception" if ctx.spec.files.inception else "clip"


def check_rows(ctx: Context, rows: list[Row]) -> None:
    """Everything about the rows that can be wrong, before any work: the model, every concept, every config, every
    judge's weights and every data set."""
    from erasekit.eval.registries import SUITES
    from erasekit.eval.suites import check_suite, suite_prompts

    for row in rows:
        domain, suite = domain_of(ctx, row.erase), erasure_suite(ctx, row.erase)
        check_suite(suite, ctx.base)
        if _suite_judge(suite) != domain.judge:
            raise ErasekitError(
                f"bench: suite {suite} is scored by the {_suite_judge(suite)} judge, and {', '.join(row.erase)} by "
                f"the {domain.judge} judge"
            )
        if domain.erased_in_suite and SUITES.get(suite).label is None:
            raise ErasekitError(
                f"bench: suite {suite} does not name each prompt's concept: it cannot score erasing {row.erase[0]}"
            )
        ps = suite_prompts(suite, _suite_run(ctx.spec.erasure, False, ctx.spec))
        if domain.erased_in_suite:
            known = SUITES.get(suite).names(ps)
            unknown = [c for c in row.erase if c not in known]
            if unknown:
                raise ErasekitError(
                    f"bench: suite {suite} knows {', '.join(known)}; not {', '.join(unknown)} (write it as the suite does)"
                )
        _need(ctx, domain.judge)
        if row.method.name != NONE:
            from erasekit.methods import registry
            from erasekit.runs.erase import plan

            plan(
                ctx.base,
                registry.get(row.method.name),
                concept_set(ctx, row),
                erasure_config(ctx, row),
                ctx.spec.files.clip,
            )
    if ctx.spec.general:
        suite = general_suite(ctx)
        check_suite(suite, ctx.base)
        suite_prompts(suite, _suite_run(ctx.spec.general, False, ctx.spec))
        _need(ctx, _suite_judge(suite))
        _need(ctx, feature_judge(ctx))


def _suite_judge(suite: str) -> str:
    from erasekit.eval.registries import SUITES

    return SUITES.get(suite).judge


def concept_set(ctx: Context, row: Row) -> ConceptSet:
    preserve = row.method.preserve
    if preserve == "kept":
        domain = domain_of(ctx, row.erase)
        pool = domain.pool() if domain.pool is not None else ()
        preserve = tuple(c for c in pool if c not in row.erase)
    return ConceptSet(list(row.erase), list(preserve))


def erasure_config(ctx: Context, row: Row):
    from erasekit.methods import registry

    spec = registry.get(row.method.name)
    values = dict(row.method.values)
    if row.method.budget is not None:
        values["iterations"] = row.method.budget.max
    return registry.build_config(spec, values=values, preset=ctx.base.preset)


def erasure_key(ctx: Context, row: Row) -> str:
    """The key of the row's erasure, which every other cell of the row is keyed by in turn. It names the base by
    its fingerprint; a row whose cells erasekit 0.1.0 computed keeps that version's fingerprint (`ctx.legacy`), so
    that none of them is computed again."""
    current = _erasure_key(ctx, row, ctx.fingerprint)
    if ctx.legacy is None:
        return current
    legacy = _erasure_key(ctx, row, ctx.legacy)

    def cached(ekey: str) -> bool:  # the erasure's cell, or for the unedited model (no erasure) its suite's
        return ctx.cells.get(ekey if row.method.name != NONE else suite_key(ctx, row, ekey)) is not None

    return legacy if cached(legacy) and not cached(current) else current


def _erasure_key(ctx: Context, row: Row, fingerprint: str) -> str:
    if row.method.name == NONE:
        return cell_key("base", base=fingerprint)
    budget = row.method.budget.as_dict() if row.method.budget else None
    return cell_key(
        "erase",
        base=fingerprint,
        method=row.method.name,
        config=asdict(erasure_config(ctx, row)),
        concepts=concept_set(ctx, row).as_dict(),
        budget=budget,
        **(judged_by(ctx, domain_of(ctx, row.erase).judge) if budget else {}),  # a budget stops by the judge's eye
    )


def _check_images(ctx: Context, concept: str, n: int, prompts: str = "captions") -> tuple[list[str], list[int]]:
    """The budget's held-out check: n images of `concept`, on seeds no suite uses, of the prompts its domain asks
    for it with (`captions`: on the miniature the world's caption templates) or of the erasure suite's own prompts
    for it (`suite`: "a star"; every prompt of a suite that scores a rate, such as world-implicit for `mark`)."""
    from erasekit.eval.registries import SUITES
    from erasekit.eval.suites import suite_prompts

    domain = domain_of(ctx, (concept,))
    if prompts == "suite":
        suite = erasure_suite(ctx, (concept,))
        label = SUITES.get(suite).label
        ps = suite_prompts(suite, _suite_run(ctx.spec.erasure, False, ctx.spec))
        texts = [p for p, lab in zip(ps.prompts, ps.labels, strict=True) if label is None or lab.get(label) == concept]
        stride = max(1, len(texts) // n)  # spread over the suite's objects where it has several prompts per concept
    else:
        texts, stride = domain.prompts(ctx.base, concept, ctx.spec.data_dir).prompts, 1  # as every cell before
    if not texts:
        raise ErasekitError(f"bench: the budget's check has no prompt that asks for {concept!r}")
    return [texts[i * stride % len(texts)] for i in range(n)], [CHECK_SEED + i for i in range(n)]


def budget_rule(ctx: Context, row: Row, budget: Budget, checks: list, clock: list):
    """`Run.until` for a budget: every `budget.every` iterations (and at the last), ESR-1 of the erased concepts on
    held-out seeds (the world judge's top-1, or the mark head for `mark`); True once it reaches `budget.esr`."""
    from erasekit.eval.attack import concept_detector

    run = ctx.spec.erasure
    probe = ctx.base.clone((ctx.base.DENOISER,))
    weights = dict(probe.denoiser.named_parameters())
    detectors = {c: concept_detector(ctx.base, c, files=ctx.spec.files, domain=ctx.spec.domain) for c in row.erase}
    inputs = {c: _check_images(ctx, c, budget.n, budget.prompts) for c in row.erase}

    def until(step: int, params: dict) -> bool:
        if (step + 1) % budget.every and step + 1 != budget.max:
            return False
        started = time.perf_counter()
        with torch.no_grad():
            for name, p in params.items():
                weights[name].copy_(p.detach())
            seen = [
                detectors[c](
                    generate_batched(
                        probe, *inputs[c], steps=run.get("steps", 25), guidance=run.get("guidance", 5.0), split=False
                    )
                )
                .bool()
                .numpy()
                for c in row.erase
            ]
        esr = float(100 - np.concatenate(seen).mean() * 100)
        checks.append([step + 1, round(esr, 4)])
        clock.append(time.perf_counter() - started)
        return esr >= budget.esr

    return until


def erasure(ctx: Context, row: Row, key: str) -> tuple[Bundle, dict]:
    """The row's model and its erasure cell; the edit is trained once (resuming a killed run), then read back."""
    if row.method.name == NONE:
        return ctx.base, {"method": NONE}
    folder, cell = ctx.cells.edit_dir(key), ctx.cells.get(key)
    if cell is not None and (folder / "manifest.json").exists():
        return Edit.load(folder).apply(ctx.base), cell
    if not ctx.main:  # the main process trains; the others read its edit
        ctx.sync()
        return Edit.load(folder).apply(ctx.base), ctx.cells.get(key)
    from erasekit.methods import registry
    from erasekit.runs import erase as runs
    from erasekit.runs.record import prepare

    spec = registry.get(row.method.name)
    config, concepts = erasure_config(ctx, row), concept_set(ctx, row)
    checks, clock = [], []
    budget = row.method.budget
    until = budget_rule(ctx, row, budget, checks, clock) if budget else None
    prepare(folder, resume=True, overwrite=True)  # an edit without its cell (a run killed between the two) is redone
    started = time.perf_counter()
    edit = runs.erase(
        ctx.base,
        spec,
        concepts,
        config,
        folder,
        scorer=runs.plan(ctx.base, spec, concepts, config, ctx.spec.files.clip),
        until=until,
        resume=True,
        overwrite=True,
        progress=ctx.progress,
        fingerprint=ctx.fingerprint,
    )
    seconds = time.perf_counter() - started
    iterations = edit.metrics.get("iterations_run", getattr(config, "iterations", None))
    cell = {
        "method": row.method.name,
        "label": row.method.label,
        "config": asdict(config),
        "concepts": concepts.as_dict(),
        "iterations": iterations,
        "seconds": seconds,
        "check_seconds": float(sum(clock)),
        "budget": budget.as_dict() if budget else None,
        "checks": checks,
        "reached": bool(checks and checks[-1][1] >= budget.esr) if budget else None,
    }
    cell = ctx.cells.put(key, cell)
    ctx.sync()
    return edit.apply(ctx.base), cell


def _suite_run(settings: dict, progress: bool, spec: Spec):
    from erasekit.eval.suites import SuiteRun

    return SuiteRun(
        n=int(settings["n"]),
        steps=int(settings.get("steps", 25)),
        guidance=float(settings.get("guidance", 5.0)),
        limit=settings.get("limit"),
        data_dir=spec.data_dir,
        progress=progress,
        **{k: v for k, v in vars(spec.files).items() if v is not None},
    )


def suite_key(ctx: Context, row: Row, ekey: str) -> str:
    suite = erasure_suite(ctx, row.erase)
    return cell_key(
        "suite",
        erasure=ekey,
        suite=suite,
        run=ctx.spec.erasure,
        erased=list(row.erase),
        **judged_by(ctx, _suite_judge(suite)),
    )


def suite_cell(ctx: Context, row: Row, model: Bundle, key: str) -> dict:
    from erasekit.eval.suites import Judges, evaluate

    domain = domain_of(ctx, row.erase)
    suite, run = erasure_suite(ctx, row.erase), _suite_run(ctx.spec.erasure, ctx.progress, ctx.spec)
    erased = list(row.erase) if domain.erased_in_suite else []
    judges = Judges(_need(ctx, domain.judge))
    result = evaluate(model, suite, run, erased=erased, judges=judges, desc=f"{row.label}: {suite}")
    order = list(dict.fromkeys(result.concepts))
    order = ([c for c in order if c in erased] + [c for c in order if c not in erased])[:GRID_CONCEPTS]
    idx = [i for c in order for i in [j for j, label in enumerate(result.concepts) if label == c][:GRID_SEEDS]]
    if ctx.main:
        save_image(grid(result.images[idx], nrow=min(GRID_SEEDS, len(idx))), ctx.cells.path(key, ".png"))
    return ctx.cells.put(
        key,
        {
            "suite": suite,
            "metrics": result.metrics,
            "per_concept": result.per_concept,
            "n_images": len(result.concepts),
            "grid": order,
            "judges": provenance_of(ctx, _suite_judge(suite)),
        },
    )


def general_key(ctx: Context, ekey: str, base: bool) -> str:
    run = dict(ctx.spec.general)
    if base:
        run["n"] = 2 * run["n"]  # two halves: seeds A (as every edit's) and B (the reference)
    suite, features = general_suite(ctx), feature_judge(ctx)
    if suite == "world-general":  # the miniature's cells were keyed before the suite was chosen by the model
        return cell_key("general", erasure=ekey, run=run)
    return cell_key(
        "general",
        erasure=ekey,
        run=run,
        suite=suite,
        features=features,
        **judged_by(ctx, _suite_judge(suite), features),
    )


def general_cell(ctx: Context, model: Bundle, key: str, base: bool) -> dict:
    """The general suite on `model` (the world's captions: attribute agreement; COCO: the CLIP score), and each
    image's features (KID and FJD are computed when the table is made, against the base model's second half)."""
    from safetensors.torch import save_file

    from erasekit.core.files import atomic_path
    from erasekit.eval.suites import Judges, evaluate

    suite, features_by = general_suite(ctx), feature_judge(ctx)
    settings = dict(ctx.spec.general, n=2 * ctx.spec.general["n"] if base else ctx.spec.general["n"])
    run = _suite_run(settings, ctx.progress, ctx.spec)
    judges = Judges(_need(ctx, _suite_judge(suite)))
    result = evaluate(model, suite, run, judges=judges, desc=f"{model.source}: general")
    from erasekit.eval.registries import JUDGES

    features = JUDGES.get(features_by).features(_need(ctx, features_by), result.images).float().contiguous()
    if ctx.main:
        with atomic_path(ctx.cells.path(key, ".safetensors")) as tmp:
            save_file({"features": features}, str(tmp))
    figures = {k: result.metrics[k] for k in ("attribute_agreement", "clip_score") if k in result.metrics}
    judged = provenance_of(ctx, *dict.fromkeys((_suite_judge(suite), features_by)))
    return ctx.cells.put(
        key,
        {
            **figures,
            "n_per_prompt": settings["n"],
            "n_images": len(features),
            "features": features_by,
            "judges": judged,
        },
    )


def judged_by(ctx: Context, *names: str) -> dict:
    """What a cell's key adds for the judges that decide it: nothing on a model with a world of its own (its judge is
    shipped, and its cells keep the keys they always had), else each judge's provenance (the weights' hash, the
    package version), so that a cell computed with other weights is not taken for this one."""
    from erasekit.eval.registries import world_of

    if world_of(ctx.base) is not None:
        return {}
    return {"judges": provenance_of(ctx, *names)}


def provenance_of(ctx: Context, *names: str) -> dict:
    for name in names:
        if name not in ctx.provenance:
            ctx.provenance[name] = _judge_provenance(ctx, name)
    return {name: ctx.provenance[name] for name in names}


def _judge_provenance(ctx: Context, name: str) -> dict:
    from erasekit.eval.registries import JUDGES

    return JUDGES.get(name).provenance(ctx.spec.files)


def attack_config(ctx: Context, name: str):
    from erasekit.attacks import registry as attacks

    return attacks.build_config(
        attacks.get(name), values=dict(ctx.spec.attacks.get("set") or {}).get(name), preset=ctx.base.preset
    )


def attack_key(ctx: Context, ekey: str, name: str, concept: str) -> str:
    a = ctx.spec.attacks
    return cell_key(
        "attack",
        erasure=ekey,
        attack=name,
        config=asdict(attack_config(ctx, name)),
        concept=concept,
        n=a["n"],
        limit=a["limit"],
        steps=a["steps"],
        guidance=a["guidance"],
        **judged_by(ctx, domain_of(ctx, (concept,)).judge),
    )


def attack_cells(ctx: Context, row: Row, model: Bundle, ekey: str, todo: set[str]) -> None:
    from erasekit.attacks import registry as attacks
    from erasekit.eval.attack import AttackRun, build_goal, concept_detector, goal_prompts
    from erasekit.runs.attack import attack_once

    a = ctx.spec.attacks
    run = AttackRun(n=int(a["n"]), steps=int(a["steps"]), guidance=float(a["guidance"]), progress=ctx.progress)
    for concept in row.erase:
        mine = [(name, attack_key(ctx, ekey, name, concept)) for name in a["names"]]
        mine = [(name, key) for name, key in mine if key in todo]
        if not mine:
            continue
        prompts = goal_prompts(ctx.base, concept, limit=a["limit"], data_dir=ctx.spec.data_dir, domain=ctx.spec.domain)
        detect = concept_detector(ctx.base, concept, files=ctx.spec.files, domain=ctx.spec.domain)
        goal = build_goal(model, ctx.base, concept, prompts, detect, run)
        base_images = None
        for name, key in mine:
            spec, config = attacks.get(name), attack_config(ctx, name)
            search = Run(progress=ctx.progress)
            result, ev = attack_once(spec, config, model, ctx.base, goal, run, search, ctx.found, base_images)
            base_images = ev.base_images
            m = ev.metrics
            ctx.cells.put(
                key,
                {
                    "attack": name,
                    "concept": concept,
                    "prompts": len(prompts),
                    "seconds": result.seconds,
                    **{k: m[k] for k in ATTACK_FIGURES},
                },
            )


ATTACK_FIGURES = (
    "asr",
    "asr_ci",
    "asr_n",
    "pre_attack_rate",
    "pre_attack_rate_ci",
    "pre_attack_rate_n",
    "base_rate",
    "base_rate_ci",
    "base_rate_n",
    "asr_prompts",
    "asr_prompts_n",
    "asr_cal",
    "asr_cal_ci",
    "asr_cal_n",
    "broken",  # the calibrated slots: the worst case over attacks (`eval.attack.worst_case`)
)


def row_keys(ctx: Context, row: Row) -> dict:
    """Every cell key of a row: what the table reads."""
    ekey = erasure_key(ctx, row)
    keys = {"erasure": ekey, "suite": suite_key(ctx, row, ekey)}
    if ctx.spec.general:
        keys["general"] = general_key(ctx, ekey, row.method.name == NONE)
    if ctx.spec.attacks:
        keys["attacks"] = {(n, c): attack_key(ctx, ekey, n, c) for n in ctx.spec.attacks["names"] for c in row.erase}
    return keys


def missing(ctx: Context, keys: dict) -> list[str]:
    flat = [keys["suite"], keys.get("general"), *keys.get("attacks", {}).values()]
    if keys["erasure"].startswith("erase-"):
        flat.append(keys["erasure"])
    return [k for k in flat if k and ctx.cells.get(k) is None]


def run_row(ctx: Context, row: Row) -> bool:
    """Compute what is missing of one row; False when it was all there. Every process of a launch decides what
    is missing before any of them writes, then they compute it together."""
    keys = row_keys(ctx, row)
    ctx.sync()
    todo = set(missing(ctx, keys))
    ctx.sync()
    if not todo:
        return False
    model, _ = erasure(ctx, row, keys["erasure"])
    if keys["suite"] in todo:
        suite_cell(ctx, row, model, keys["suite"])
    if keys.get("general") in todo:
        general_cell(ctx, model, keys["general"], row.method.name == NONE)
    if "attacks" in keys:
        attack_cells(ctx, row, model, keys["erasure"], todo)
    return True
