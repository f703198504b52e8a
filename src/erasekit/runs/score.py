"""Generate, evaluate, inspect and graph: the runs that score a model (and an edit against its base) and write
their folder (or grid) atomically. Every input is read and checked before the first image is drawn."""

from __future__ import annotations

import json
from pathlib import Path

from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_dir, check_output, claim_partial, write_text
from erasekit.runs.inputs import edit_and_base, key_for, model_with


def generate(
    source,
    edit_path,
    out,
    *,
    prompt: str | None = None,
    prompt_set: str | None = None,
    embedding=None,
    key_path=None,
    n: int = 16,
    seed: int = 0,
    steps: int = 25,
    guidance: float = 5.0,
    resume: bool = False,
    overwrite: bool = False,
    force: bool = False,
    resolution: int | None = None,
    data_dir: str | None = None,
    progress: bool = True,
) -> str:
    """A grid of one prompt's seeds SEED..SEED+N-1 (`out`: a .png), or a resumable folder of a prompt set's images
    and index.jsonl; returns what was written, in words."""
    from erasekit.eval.generate import check_image_path, generate_batched, generate_set, grid, save_image
    from erasekit.eval.prompts import load_prompt_set

    if (prompt is None) == (prompt_set is None):
        raise ErasekitError("give exactly one of --prompt TEXT or --prompts SET")
    if prompt is not None:
        if not prompt.strip():
            raise ErasekitError("empty prompt: give a text prompt to generate from")
        check_image_path(out)
        check_output(out, overwrite, kind="file")
    else:
        prompts = load_prompt_set(prompt_set, data_dir)
        check_output(out, overwrite)
    bundle = model_with(source, edit_path, force, embedding, resolution)
    key = key_for(key_path, bundle, edit_path, [prompt] if prompt is not None else prompts.prompts)
    if prompt is None:
        claim_partial(out, resume, overwrite)
        rows = generate_set(
            bundle,
            prompts,
            n,
            out,
            steps=steps,
            guidance=guidance,
            progress=progress,
            resume=resume,
            overwrite=overwrite,
            key=key,
        )
        return f"{len(rows)} images and index.jsonl to {out}"
    images = generate_batched(
        bundle,
        [prompt] * n,
        list(range(seed, seed + n)),
        steps=steps,
        guidance=guidance,
        desc="generate" if progress else None,
        key=key,
    )
    tile = max(128, images.shape[-1])  # the miniature's 32 px enlarged; a real model's images as drawn
    return str(save_image(grid(images, nrow=min(8, n), tile=tile), out))


def split_concepts(suite: str, split: int | None, erased, preserved):
    """(erased, preserved): as given, or one of the seeds' four 5+5 splits of world-objects or imagenette."""
    if split is None:
        return erased, preserved
    from erasekit.eval.metrics import IMAGENETTE_SPLITS, splits_for
    from erasekit.world.render import OBJECTS

    if suite not in ("world-objects", "imagenette"):
        raise ErasekitError("--split applies to the world-objects and imagenette suites")
    chosen = IMAGENETTE_SPLITS if suite == "imagenette" else splits_for(OBJECTS)
    return tuple(list(part) for part in chosen[split - 1])


def evaluate(
    source,
    edit_path,
    suite: str,
    run,
    out,
    *,
    erased=None,
    preserved=None,
    embedding=None,
    key_path=None,
    overwrite: bool = False,
    force: bool = False,
    resolution: int | None = None,
):
    """Evaluate a model, and an edit against its base, on a suite (`run`: an `eval.suites.SuiteRun`): metrics.json
    and report.html in `out`. Returns the `eval.evaluation.Evaluation`."""
    from erasekit.core.edit import load_embedding
    from erasekit.core.key import Key
    from erasekit.eval.evaluation import evaluate_edit
    from erasekit.eval.suites import check_suite, load_judges, suite_data
    from erasekit.report.html import write_evaluation

    check_output(out, overwrite)  # every input before any work: the output, the data, the edit, the judges
    suite_data(suite, run)
    loaded, base = edit_and_base(edit_path, source, force, resolution)
    check_suite(suite, base)
    word = load_embedding(embedding) if embedding is not None else None
    key = Key.load(key_path) if key_path is not None else None
    judges = load_judges(suite, run, base.device)
    ev = evaluate_edit(base, loaded, suite, run, erased, preserved, judges=judges, force=force, word=word, key=key)
    write_evaluation(ev, out, run_folder=edit_path, overwrite=overwrite)
    return ev


def inspect(
    source,
    edit_path,
    against,
    out,
    config,
    *,
    vocab=None,
    erased=None,
    top=6,
    n=8,
    overwrite=False,
    force=False,
    progress=True,
):
    """Which concepts did a fine-tune change (talk Eq. 19; `config`: an `eval.inspect.InspectConfig`): table.csv,
    inspect.json and report.html in `out`. Returns the inspection."""
    from erasekit.core.vocab import load_vocabulary
    from erasekit.eval.inspect import attach, inspect_models, judged, shown_judge, table_csv
    from erasekit.models.load import load_bundle
    from erasekit.report.html import write_inspect_report

    if (edit_path is None) == (against is None):
        raise ErasekitError("inspect compares two models: give --edit RUN (BASE with the edit) or --against MODEL")
    check_output(out, overwrite)
    loaded, base = edit_and_base(edit_path, source, force)
    if loaded is not None and loaded.kind == "sampler":
        raise ErasekitError(
            f"{edit_path} is a sampler edit ({loaded.method}): it changes no weight, so every noise "
            "prediction is the same and there is nothing for Eq. 19 to rank; its whole change is "
            "its manifest's sampling settings"
        )
    edited = loaded.apply(base, force=force) if loaded is not None else load_bundle(against)
    probe, judge = shown_judge(base)
    if vocab is None and judge is None:
        raise ErasekitError("give --vocab FILE (one concept per line): only the miniature has a default vocabulary")
    ins = inspect_models(base, edited, load_vocabulary(vocab or "world"), config, erased, progress=progress)
    shown = judged(base, edited, ins.top(top), n, probe, judge, progress=progress) if top else []
    attach(ins, shown)
    what = f"{loaded.method} edit {edit_path}" if loaded is not None else f"{against}"
    with atomic_dir(out, overwrite=overwrite) as tmp:
        write_text(tmp / "table.csv", table_csv(ins))
        write_text(
            tmp / "inspect.json",
            json.dumps(
                {
                    "base": source or (loaded.base["source"] if loaded else None),
                    "edited": what,
                    "erased": erased,
                    "lam": config.lam,
                    "search": ins.searched,
                    "vocabulary_size": ins.vocabulary_size,
                    "probes": config.probes,
                    "top": [
                        {"concept": r.concept, "score": r.score, "l2": r.l2, "l1": r.l1, "judge_delta": r.delta}
                        for r in ins.rows
                    ],
                },
                indent=2,
            ),
        )
        write_inspect_report(tmp, ins, shown, f"erasekit inspect: {what}")
    return ins


def unique_names(names: list[str]) -> list[str]:
    """Row names for edits: their folder names, numbered where two are the same."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if names.count(name) == 1 else f"{name}#{seen[name]}")
    return out


def graph(source, edit_paths, out, *, n=8, steps=25, overwrite=False, force=False, progress=True):
    """The concept graph of some edits (graph.csv, graph.png in `out`): how each changes the judge's score of every
    object. Returns [(name, erased concepts, row of deltas)] and the objects."""
    from erasekit.core.edit import Edit
    from erasekit.eval.graph import concept_graph, graph_judge, save_graph
    from erasekit.report.plots import graph_heatmap

    check_output(out, overwrite)
    loaded = [Edit.load(e) for e in edit_paths]
    _, base = edit_and_base(None, source or loaded[0].base["source"])
    judge, objects = graph_judge(base)
    for e in loaded:
        e.check(base, force=force)
    names = unique_names([Path(p).name for p in edit_paths])
    erased = [e.concepts.get("erase", []) for e in loaded]
    edited = {name: e.apply(base, force=force) for name, e in zip(names, loaded, strict=True)}
    matrix = concept_graph(base, edited, judge, objects, n=n, steps=steps, progress=progress)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        save_graph(matrix, names, [", ".join(e) for e in erased], objects, tmp)
        labels = [f"{name}: erase {', '.join(e)}" for name, e in zip(names, erased, strict=True)]
        graph_heatmap(matrix, labels, objects, tmp / "graph.png")
    return list(zip(names, erased, matrix, strict=True)), objects
