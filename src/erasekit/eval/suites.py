"""Evaluation suites: generate a suite's prompts with a model (and its base, for paired metrics), judge the
images, and return the metrics.json contract:

  {"suite", "model", "edit", "erased": [...], "preserved": [...], "n_per_prompt",
   "metrics": {name: value}, "per_concept": {concept: {name: value}}}

World suites use the exact world judge; `imagenette`, `i2p` and `coco` use ResNet-50, NudeNet and CLIP from
local folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from erasekit.core.bundle import Bundle
from erasekit.core.errors import ErasekitError
from erasekit.core.files import write_text
from erasekit.eval import metrics as M
from erasekit.eval.generate import generate_batched
from erasekit.eval.prompts import PromptSet, load_csv, load_i2p, world_set
from erasekit.world.render import OBJECTS, STYLES

SUITES = ("world-objects", "world-styles", "world-implicit", "world-general", "imagenette", "i2p", "coco")
HEADS = {"world-objects": ("object", OBJECTS, "objects"), "world-styles": ("style", STYLES, "styles")}


@dataclass
class SuiteRun:
    """What a suite needs besides the model: judges' weights, CSV files, and the generation settings."""

    n: int = 8
    steps: int = 25
    guidance: float = 5.0
    batch: int = 64
    prompts_file: str | None = None  # imagenette / i2p / coco CSV
    resnet: str | None = None
    clip: str | None = None
    inception: str | None = None  # TorchScript FID Inception: adds `fid` (against the base model's images)
    lpips: str | None = None  # TorchScript LPIPS: adds `lpips` (against the base model's image, same seed)
    limit: int | None = None  # first `limit` prompts of a CSV suite
    extra: dict = field(default_factory=dict)


def _images(bundle: Bundle, ps: PromptSet, run: SuiteRun) -> tuple[torch.Tensor, list[tuple]]:
    rows = ps.expand(run.n)
    images = generate_batched(bundle, [r[1] for r in rows], [r[2] for r in rows], steps=run.steps,
                              guidance=run.guidance, batch=run.batch)
    return images, rows


def _split_rates(probs: torch.Tensor, labels: list[int], concepts: list[str], erased, preserved) -> tuple[dict, dict]:
    """acc@1 overall; acc@1/5 per concept; ESR/PSR-1/5 over the images of erased / preserved concepts.
    `labels[i]` is the class index of image i in `probs`, `concepts[i]` its concept name."""
    labels_arr, concepts_arr = np.asarray(labels), np.asarray(concepts)
    metrics = {"acc@1": M.psr(probs, labels_arr, 1)}
    per = {}
    for name in dict.fromkeys(concepts):
        rows = concepts_arr == name
        per[name] = {"acc@1": M.psr(probs[rows], labels_arr[rows], 1), "acc@5": M.psr(probs[rows], labels_arr[rows], 5)}
    for kind, group, fn in (("esr", erased, M.esr), ("psr", preserved, M.psr)):
        rows = np.isin(concepts_arr, list(group))
        if rows.any():
            for k in (1, 5):
                metrics[f"{kind}@{k}"] = fn(probs[rows], labels_arr[rows], k)
    return metrics, per


def _check_concepts(concepts, names, suite):
    unknown = [c for c in concepts if c not in names]
    if unknown:
        raise ErasekitError(f"unknown concept(s) for {suite}: {', '.join(unknown)}; known: {', '.join(names)}")


def evaluate(bundle: Bundle, suite: str, run: SuiteRun = SuiteRun(), erased: list[str] = (),
             preserved: list[str] | None = None, base_images: torch.Tensor | None = None,
             judge=None) -> tuple[dict, dict]:
    """(metrics.json dict, images {"edited": tensor, "base": base_images, "prompts": [...]}).

    `base_images`: the base model's images for the same suite and seeds; adds the paired `pixel_distance`."""
    if suite not in SUITES:
        raise ErasekitError(f"unknown suite {suite!r}; valid: {', '.join(SUITES)}")
    erased = list(erased)
    result = {"suite": suite, "model": bundle.source, "edit": bundle.meta.get("edit"), "erased": erased,
              "n_per_prompt": run.n}
    if suite.startswith("world-"):
        from erasekit.eval.judges import world_judge

        judge = judge or world_judge()
        metrics, per, images, ps_rows = _world(bundle, suite, run, erased, preserved, judge, result)
    else:
        metrics, per, images, ps_rows = _real(bundle, suite, run, erased, preserved, result)
    if base_images is not None:
        metrics["pixel_distance"] = M.pixel_distance(images, base_images)
        if run.lpips:
            from erasekit.eval.judges import LpipsJudge

            metrics["lpips"] = float(LpipsJudge(run.lpips)(images, base_images).mean())
        if run.inception:
            from erasekit.eval.judges import InceptionFeatures

            features = InceptionFeatures(run.inception)
            metrics["fid"] = M.frechet_distance(features(images), features(base_images))
    result["metrics"], result["per_concept"] = metrics, per
    return result, {"edited": images, "base": base_images, "prompts": [r[1] for r in ps_rows]}


def _suite_prompts(suite: str, run: SuiteRun) -> PromptSet:
    if suite == "world-objects":
        return world_set("objects")
    if suite == "world-styles":
        return world_set("styles")
    if suite == "world-implicit":
        return world_set("implicit-indirect")
    if suite == "world-general":
        return world_set("general")
    if run.prompts_file is None:
        raise ErasekitError(f"suite {suite} needs its prompt CSV: pass --prompts-file (e.g. ../shared/data/prompts/...)")
    ps = load_i2p(run.prompts_file) if suite == "i2p" else load_csv(run.prompts_file)
    return ps.subset(range(min(len(ps), run.limit))) if run.limit else ps


def _world(bundle, suite, run, erased, preserved, judge, result):
    ps = _suite_prompts(suite, run)
    images, rows = _images(bundle, ps, run)
    scores = judge.score(images)
    if suite in HEADS:
        head, names, _ = HEADS[suite]
        _check_concepts(erased, names, suite)
        preserved = [c for c in names if c not in erased] if preserved is None else list(preserved)
        _check_concepts(preserved, names, suite)
        result["preserved"] = preserved
        concepts = [r[3][head] for r in rows]
        probs = getattr(scores, head)[:, : len(names)]  # the object head's "none" never counts as a label
        metrics, per = _split_rates(probs, [names.index(c) for c in concepts], concepts, erased, preserved)
        metrics["implicit_rate"] = float((scores.mark > 0.5).float().mean() * 100)
    elif suite == "world-implicit":
        result["preserved"] = list(preserved or [])
        marked = (scores.mark > 0.5).numpy()
        metrics = {"implicit_rate": float(marked.mean() * 100)}
        adjectives = [r[1].split()[1] for r in rows]
        per = {a: {"implicit_rate": float(marked[np.array(adjectives) == a].mean() * 100)}
               for a in dict.fromkeys(adjectives)}
    else:  # world-general: judge-feature Frechet distance to fresh renders, and attribute agreement
        from erasekit.world.captions import sample_captions
        from erasekit.world.judge import to_tensor
        from erasekit.world.render import render

        result["preserved"] = list(preserved or [])
        _, labels = sample_captions(max(2000, len(images)), seed=4321)
        reference = judge.score(to_tensor(render(labels, seed=4321))).features
        agree = []
        for r, obj, col, sty in zip(rows, scores.top1("object"), scores.top1("colour"), scores.top1("style")):
            want = r[3]
            checks = [obj == want["object"]] + ([col == want["colour"]] if want["colour"] else []) + \
                     ([sty == want["style"]] if want["style"] else [])
            agree.append(np.mean(checks))
        metrics = {"fjd": M.frechet_distance(scores.features.numpy(), reference.numpy()),
                   "attribute_agreement": float(np.mean(agree) * 100)}
        per = {}
    return metrics, per, images, rows


def _real(bundle, suite, run, erased, preserved, result):
    from erasekit.eval.judges import ClipJudge, NudeNetJudge, ResNetJudge

    ps = _suite_prompts(suite, run)  # prompts and judge first: a missing file fails before any generation
    judge = {"imagenette": lambda: ResNetJudge(run.resnet, device=bundle.device), "i2p": NudeNetJudge,
             "coco": lambda: ClipJudge(run.clip, device=bundle.device)}[suite]()
    if suite == "imagenette":
        names = sorted({lab["class"] for lab in ps.labels})
        _check_concepts(erased, names, suite)
        preserved = [c for c in names if c not in erased] if preserved is None else list(preserved)
    result["preserved"] = list(preserved or [])
    images, rows = _images(bundle, ps, run)
    per = {}
    if suite == "imagenette":
        concepts = [r[3]["class"] for r in rows]
        probs = judge.probs(images)
        metrics, per = _split_rates(probs, [ResNetJudge.label_index(c) for c in concepts], concepts, erased, preserved)
    elif suite == "i2p":
        detections = judge.detect(images)
        metrics = {f"ner@{t}": M.ner(detections, t) for t in M.NER_THRESHOLDS}
    else:  # coco
        prompts = [r[1] for r in rows]
        metrics = {"clip_score": M.clip_score(judge.image_embeds(images), judge.text_embeds(prompts))}
    return metrics, per, images, rows


def save_metrics(result: dict, out: str | Path) -> Path:
    """Write metrics.json atomically."""
    import json

    return write_text(Path(out) / "metrics.json", json.dumps(result, indent=2, sort_keys=True))
