"""Attack: try to bring an erased concept back and measure how often it comes.

`attack_once` is the attack itself (the search, then `eval.attack.evaluate_attack`), shared by `erasekit attack`
and the bench's attack cells. `attack` writes its run folder: metrics.json, prompts.csv, the learned word where
the attack ends in one (embedding/ and learned_embeds.safetensors), the changed weights where it ends in those
(relearned/, an edit of the edited model), images/ as `generate` writes them, and
report.html.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from erasekit.core.files import RUN_RECORD, finish_dir, partial_of, write_text
from erasekit.core.loop import Run
from erasekit.eval.attack import AttackRun, evaluate_attack
from erasekit.models.bundle import Bundle
from erasekit.runs.record import claim


def attack_once(
    spec, config, edited: Bundle, base: Bundle, goal, run: AttackRun, search: Run, found=None, base_images=None
):
    """(result, evaluation): attack `edited` with `spec` for `goal`, then judge it. `found`: a dict of the searches
    of model-agnostic attacks (they never look at the edited weights), reused across the edits of one base."""
    from erasekit.eval.attack import MODEL_AGNOSTIC

    slot = (goal.concept, spec.name, repr(config)) if found is not None and spec.name in MODEL_AGNOSTIC else None
    if slot is not None and slot in found:
        result = found[slot]
    else:
        result = spec.run(edited, goal, config, search)
        if slot is not None:
            found[slot] = result
    return result, evaluate_attack(result, goal, edited, base, run, base_images=base_images)


def judge_provenance(base: Bundle, concept: str, run) -> dict:
    """What decided the attack's success (metrics.json's `judges`): the concept's domain's judge, named and hashed."""
    from erasekit.eval.registries import JUDGES, Files, domain_for

    domain = domain_for(base, concept)
    return {domain.judge: {**JUDGES.get(domain.judge).provenance(Files.of(run)), "domain": domain.name}}


def attack(
    spec,
    config,
    edited: Bundle,
    base: Bundle,
    goal,
    run: AttackRun,
    out: str | Path,
    *,
    resume=False,
    overwrite=False,
    progress=True,
):
    """Attack into the run folder `out` (its partial folder claimed by `record.prepare`); returns (metrics.json's
    content, the attack's result)."""
    from erasekit.report.html import write_attack_report

    out = Path(out)
    work = partial_of(out)
    claim(
        work,
        resume,
        {
            "attack": spec.name,
            "config": asdict(config),
            "concept": goal.concept,
            "prompts": goal.prompts,
            "model": base.source,
            "fingerprint": edited.fingerprint(),
        },
    )
    result, ev = attack_once(
        spec, config, edited, base, goal, run, Run(work=work / "search", resume=resume, progress=progress)
    )
    data = ev.to_json(result, base.source, edited.meta.get("edit"))
    data["judges"] = judge_provenance(base, goal.concept, run)
    write_text(work / "metrics.json", json.dumps(data, indent=2, sort_keys=True))
    write_text(work / "prompts.csv", result.prompts_csv(goal.seeds))
    if result.embedding is not None:
        from erasekit.models.export import export as export_edit

        result.embedding.save(work / "embedding")
        export_edit(result.embedding, None, work / "learned_embeds.safetensors", format="textual-inversion")
    if result.weights is not None:  # an edit of the edited model: apply it on top (`--edit` then this)
        result.weights.save(work / "relearned")
    write_images(work / "images", ev)
    write_attack_report(work, data, ev)
    shutil.rmtree(work / "search", ignore_errors=True)
    (work / RUN_RECORD).unlink()
    finish_dir(work, out, overwrite)
    return data, result


def write_images(folder: Path, ev) -> None:
    """The attacked images as `erasekit generate --prompts prompts.csv` writes them (so a replay compares file by
    file): NNNNNN.png and index.jsonl."""
    from PIL import Image

    from erasekit.eval.generate import INDEX, save_image, to_uint8

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (r, im) in enumerate(zip(ev.attacked_rows, to_uint8(ev.attacked_images), strict=True)):
        rows.append({"index": i, "row": r["adv"], "prompt": r["prompt"], "seed": r["seed"], "path": f"{i:06d}.png"})
        save_image(Image.fromarray(im), folder / rows[-1]["path"])
    write_text(folder / INDEX, "".join(json.dumps(r) + "\n" for r in rows))
