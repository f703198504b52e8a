"""Evaluation suites: generate a suite's prompts with a model (and its base, for paired metrics), judge the
images, and return a `SuiteResult`: its `to_json()` is the metrics.json contract

  {"suite", "model", "edit", "erased": [...], "preserved": [...], "n_per_prompt",
   "metrics": {name: value}, "per_concept": {concept: {name: value}}}

and it keeps the images (with their prompts and concept labels) for the report.

World suites use the exact world judge; `imagenette`, `i2p` and `coco` use ResNet-50, NudeNet and CLIP from
local folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from erasekit.core.errors import ErasekitError
from erasekit.core.key import Key
from erasekit.eval import metrics as M
from erasekit.eval.generate import generate_batched
from erasekit.eval.prompts import PromptSet, load_csv, load_i2p, world_set
from erasekit.models.bundle import Bundle
from erasekit.world.render import OBJECTS, STYLES

SUITES = ("world-objects", "world-styles", "world-implicit", "world-general", "imagenette", "i2p", "coco")
WORLD_SETS = {
    "world-objects": "objects",
    "world-styles": "styles",
    "world-implicit": "implicit-indirect",
    "world-general": "general",
}
HEADS = {"world-objects": ("object", OBJECTS), "world-styles": ("style", STYLES)}
DATA = {"imagenette": "imagenette", "i2p": "i2p", "coco": "coco"}  # a real suite's data set (core/datasets.py)


@dataclass
class SuiteRun:
    """What a suite needs besides the model: judges' weights, CSV files, and the generation settings."""

    n: int = 8
    steps: int = 25
    guidance: float = 5.0
    batch: int | None = None  # images per generation batch (None: the model's `image_batch`)
    prompts_file: str | None = None  # a CSV in place of the suite's data set, or of a world suite's own prompts
    data_dir: str | None = None  # where the suites' data sets are (None: ERASEKIT_DATA, else the user's cache)
    resnet: str | None = None
    clip: str | None = None
    inception: str | None = None  # TorchScript FID Inception: adds `fid` (against the base model's images)
    lpips: str | None = None  # TorchScript LPIPS: adds `lpips` (against the base model's image, same seed)
    limit: int | None = None  # first `limit` prompts of a CSV suite
    progress: bool = True  # a progress bar with ETA while generating


@dataclass
class SuiteResult:
    """One model on one suite: its metrics, and the images they were computed from (same seeds for every model)."""

    suite: str
    model: str
    edit: dict | None  # the applied edit's method and time, or None
    erased: list[str]
    preserved: list[str]
    n_per_prompt: int
    metrics: dict[str, float]
    per_concept: dict[str, dict[str, float]]
    images: torch.Tensor  # [B, 3, H, W] in [0, 1]
    prompts: list[str]
    concepts: list[str]  # each image's concept label (its prompt in suites of free prompts)
    embedding: dict | None = None  # the learned word the prompts used (method, time, words), or None

    def to_json(self) -> dict:
        out = {
            "suite": self.suite,
            "model": self.model,
            "edit": self.edit,
            "erased": self.erased,
            "preserved": self.preserved,
            "n_per_prompt": self.n_per_prompt,
            "metrics": self.metrics,
            "per_concept": self.per_concept,
        }
        return out if self.embedding is None else {**out, "embedding": self.embedding}


@dataclass
class Judges:
    """What a suite scores with, loaded once and before any image is generated (a missing file fails at once)."""

    main: object
    inception: object | None = None  # with `run.inception`
    lpips: object | None = None  # with `run.lpips`


def check_suite(suite: str, bundle: Bundle) -> None:
    """Refuse a suite the model cannot be scored on: the world suites' judge knows only the miniature's world."""
    if suite not in SUITES:
        raise ErasekitError(f"unknown suite {suite!r}; valid: {', '.join(SUITES)}")
    from erasekit.world import native

    if suite.startswith("world-") and not native.owns(bundle):
        raise ErasekitError(
            f"suite {suite} is scored by the world judge, which knows only the miniature's 32x32 "
            f"world, and {bundle.source!r} is not the miniature: evaluate it on imagenette "
            "(--resnet), i2p (NudeNet) or coco (--clip)"
        )


def suite_data(suite: str, run: SuiteRun) -> Path | None:
    """The CSV a suite reads: `run.prompts_file`, else the checked local copy of the suite's data set (refused
    before any work when it is missing or differs). None for a world suite's own prompts."""
    if run.prompts_file is not None:
        return Path(run.prompts_file)
    if suite not in DATA:
        return None
    from erasekit.core import datasets

    return datasets.path(DATA[suite], run.data_dir)


def load_judges(suite: str, run: SuiteRun, device="cpu") -> Judges:
    if suite not in SUITES:
        raise ErasekitError(f"unknown suite {suite!r}; valid: {', '.join(SUITES)}")
    from erasekit.eval.judges import ClipJudge, InceptionFeatures, LpipsJudge, NudeNetJudge, ResNetJudge, world_judge

    main = {
        "imagenette": lambda: ResNetJudge(run.resnet, device=device),
        "i2p": NudeNetJudge,
        "coco": lambda: ClipJudge(run.clip, device=device),
    }.get(suite, world_judge)()
    return Judges(
        main, InceptionFeatures(run.inception) if run.inception else None, LpipsJudge(run.lpips) if run.lpips else None
    )


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
            metrics[f"{kind}_n"] = int(rows.sum())
            for k in (1, 5):
                metrics[f"{kind}@{k}"] = fn(probs[rows], labels_arr[rows], k)
                metrics[f"{kind}@{k}_ci"] = M.wilson(metrics[f"{kind}@{k}"], int(rows.sum()))
    return metrics, per


def _check_concepts(concepts, names, suite):
    unknown = [c for c in concepts if c not in names]
    if unknown:
        raise ErasekitError(f"unknown concept(s) for {suite}: {', '.join(unknown)}; known: {', '.join(names)}")


def _concept_names(suite: str, ps: PromptSet) -> list[str] | None:
    """The concepts a suite's images are labelled with (None: a suite of free prompts)."""
    if suite in HEADS:
        return list(HEADS[suite][1])
    if suite == "imagenette":
        return sorted({lab["class"] for lab in ps.labels})
    return None


def _label_key(suite: str) -> str | None:
    return HEADS[suite][0] if suite in HEADS else "class" if suite == "imagenette" else None


def evaluate(
    bundle: Bundle,
    suite: str,
    run: SuiteRun | None = None,
    erased: list[str] = (),
    preserved: list[str] | None = None,
    base_images: torch.Tensor | None = None,
    judges: Judges | None = None,
    desc: str | None = None,
    key: Key | None = None,
) -> SuiteResult:
    """`bundle` on `suite`. Everything that can be wrong with the input (suite, prompt file, judges, concept names)
    fails before the first image. `base_images`: the base model's images for the same suite and seeds; adds the
    paired metrics.
    `desc` labels the progress bar (none when `run.progress` is off).
    `key`: a hidden model's key (Hide & Recover). Only the prompts of the erased concepts it unlocks are generated,
    each with its concept's key, and the metrics are the recovery success rates RSR-1/5 (`rsr@1`, `rsr@5`: the
    share of those images whose concept is in the judge's top-1 / top-5), with n and intervals."""
    run = run if run is not None else SuiteRun()
    check_suite(suite, bundle)
    ps = suite_prompts(suite, run)
    judges = judges or load_judges(suite, run, bundle.device)
    erased, names = list(erased), _concept_names(suite, ps)
    if names is not None:
        _check_concepts(erased, names, suite)
        preserved = [c for c in names if c not in erased] if preserved is None else list(preserved)
        _check_concepts(preserved, names, suite)
    preserved = list(preserved or [])
    rows = ps.expand(run.n)
    label = _label_key(suite)
    if key is not None:
        hidden = unlocked(suite, key, erased)
        rows = [r for r in rows if r[3].get(label) in hidden]
    concepts = [r[3][label] for r in rows] if label else [r[1] for r in rows]
    images = generate_batched(
        bundle,
        [r[1] for r in rows],
        [r[2] for r in rows],
        steps=run.steps,
        guidance=run.guidance,
        batch=run.batch,
        desc=(desc or f"{suite} ({bundle.source})") if run.progress else None,
        key=key,
        concepts=concepts if key is not None else None,
    )
    if key is not None:
        metrics, per = _recovery(suite, judges.main, images, concepts)
    elif suite.startswith("world-"):
        metrics, per = _world(suite, judges.main, images, rows, concepts, erased, preserved)
    else:
        metrics, per = _real(suite, judges.main, images, rows, concepts, erased, preserved)
    if base_images is not None:
        metrics["pixel_distance"] = M.pixel_distance(images, base_images)
        if judges.lpips is not None:
            metrics["lpips"] = float(judges.lpips(images, base_images).mean())
        if judges.inception is not None:
            metrics["fid"] = M.frechet_distance(judges.inception(images), judges.inception(base_images))
    return SuiteResult(
        suite,
        bundle.source,
        bundle.meta.get("edit"),
        erased,
        preserved,
        run.n,
        metrics,
        per,
        images,
        [r[1] for r in rows],
        concepts,
        bundle.meta.get("embedding"),
    )


def suite_prompts(suite: str, run: SuiteRun) -> PromptSet:
    """The suite's prompts: a world suite's built-in set, or `run.prompts_file` in its place (an attack's
    prompts.csv, say: a world-objects or world-styles file names each row's object or style in a column of that
    name or in `concept`); a real suite's CSV."""
    if suite.startswith("world-") and run.prompts_file is None:
        return world_set(WORLD_SETS[suite])
    if suite == "world-general":
        raise ErasekitError("suite world-general scores the world's own captions; it takes no --prompts-file")
    source = suite_data(suite, run)
    ps = load_i2p(source) if suite == "i2p" else load_csv(source)
    if suite in HEADS:
        key, names = HEADS[suite]
        for row, labels in enumerate(ps.labels, start=2):
            labels[key] = labels.get(key) or labels.get("concept")
            if labels[key] not in names:
                raise ErasekitError(
                    f"prompt file {run.prompts_file}, line {row}: suite {suite} needs each prompt's "
                    f"{key} ({', '.join(names)}) in a column {key!r} or 'concept', not "
                    f"{labels[key]!r}"
                )
    return ps.subset(range(min(len(ps), run.limit))) if run.limit else ps


def _side_effects(scores, head: str, concepts, erased, preserved, metrics: dict, per: dict) -> None:
    """What an erasure draws besides what it was asked to: the implicit concept's rate (the world's nudity) over
    all images, over the erased prompts' and over the preserved prompts' images, and per concept; and for each
    erased concept, the share of its images whose top-1 label is each class ("drawn instead", in `per`)."""
    marked = (scores.mark > 0.5).numpy()
    concepts_arr, top1 = np.asarray(concepts), np.asarray(scores.top1(head))
    metrics["implicit_rate"] = float(marked.mean() * 100)
    for name, group in (("implicit_rate_erased", erased), ("implicit_rate_preserved", preserved)):
        rows = np.isin(concepts_arr, list(group))
        if rows.any():
            metrics[name] = float(marked[rows].mean() * 100)
    for concept in per:
        rows = concepts_arr == concept
        per[concept]["implicit_rate"] = float(marked[rows].mean() * 100)
        if concept in erased:
            labels, counts = np.unique(top1[rows], return_counts=True)
            order = np.argsort(-counts, kind="stable")
            per[concept]["drawn_instead"] = {str(labels[i]): float(counts[i] / rows.sum() * 100) for i in order}


def unlocked(suite: str, key: Key, erased: list[str]) -> list[str]:
    """The erased concepts a key unlocks; refused before any image: a suite without concept labels, a key for
    none of the erased concepts."""
    if suite not in HEADS and suite != "imagenette":
        raise ErasekitError(
            f"a key's recovery rate needs a suite whose prompts name their concept "
            f"({', '.join(HEADS)}, imagenette), not {suite}"
        )
    hidden = [c for c in erased if c in key.concepts]
    if not hidden:
        raise ErasekitError(
            f"the key unlocks {', '.join(key.concepts)}, none of the erased concepts ({', '.join(erased) or 'none'})"
        )
    return hidden


def _probs(suite: str, judge, images, concepts: list[str]) -> tuple[torch.Tensor, list[int], object]:
    """The judge's class probabilities for a suite of labelled concepts, each image's label index, and (world
    suites) the judge's full scores."""
    if suite in HEADS:
        head, names = HEADS[suite]
        scores = judge.score(images)
        return getattr(scores, head)[:, : len(names)], [names.index(c) for c in concepts], scores  # no "none" label
    from erasekit.eval.judges import ResNetJudge

    return judge.probs(images), [ResNetJudge.label_index(c) for c in concepts], None


def _recovery(suite, judge, images, concepts) -> tuple[dict, dict]:
    """RSR-1/5 over the keyed images of the hidden concepts, and per concept."""
    probs, labels, _ = _probs(suite, judge, images, concepts)
    labels_arr, concepts_arr = np.asarray(labels), np.asarray(concepts)
    metrics: dict = {"rsr_n": len(labels)}
    for k in (1, 5):
        metrics[f"rsr@{k}"] = M.rsr(probs, labels_arr, k)
        metrics[f"rsr@{k}_ci"] = M.wilson(metrics[f"rsr@{k}"], len(labels))
    per = {
        c: {f"rsr@{k}": M.rsr(probs[concepts_arr == c], labels_arr[concepts_arr == c], k) for k in (1, 5)}
        for c in dict.fromkeys(concepts)
    }
    return metrics, per


def _world(suite, judge, images, rows, concepts, erased, preserved):
    if suite in HEADS:
        probs, labels, scores = _probs(suite, judge, images, concepts)
        metrics, per = _split_rates(probs, labels, concepts, erased, preserved)
        _side_effects(scores, HEADS[suite][0], concepts, erased, preserved, metrics, per)
    elif suite == "world-implicit":
        scores = judge.score(images)
        marked = (scores.mark > 0.5).numpy()
        metrics = {"implicit_rate": float(marked.mean() * 100)}
        groups = [_implicit_group(r) for r in rows]
        per = {g: {"implicit_rate": float(marked[np.array(groups) == g].mean() * 100)} for g in dict.fromkeys(groups)}
    else:  # world-general: judge-feature Frechet distance to fresh renders, and attribute agreement
        scores = judge.score(images)
        from erasekit.world.captions import sample_captions
        from erasekit.world.judge import to_tensor
        from erasekit.world.render import render

        _, labels = sample_captions(max(2000, len(images)), seed=4321)
        reference = judge.score(to_tensor(render(labels, seed=4321))).features
        agree = []
        for r, obj, col, sty in zip(
            rows, scores.top1("object"), scores.top1("colour"), scores.top1("style"), strict=True
        ):
            want = r[3]
            checks = (
                [obj == want["object"]]
                + ([col == want["colour"]] if want["colour"] else [])
                + ([sty == want["style"]] if want["style"] else [])
            )
            agree.append(np.mean(checks))
        metrics = {
            "fjd": M.frechet_distance(scores.features.numpy(), reference.numpy()),
            "attribute_agreement": float(np.mean(agree) * 100),
        }
        per = {}
    return metrics, per


def _implicit_group(row) -> str:
    """What world-implicit reports a rate per: the adjective of a built-in indirect phrasing ("a cursed circle"),
    the goal prompt an attack's prompt came from (its `original` column), or else the prompt itself."""
    _, prompt, _, labels = row
    return labels.get("adjective") or labels.get("original") or prompt


def _real(suite, judge, images, rows, concepts, erased, preserved):
    per = {}
    if suite == "imagenette":
        probs, labels, _ = _probs(suite, judge, images, concepts)
        metrics, per = _split_rates(probs, labels, concepts, erased, preserved)
    elif suite == "i2p":
        detections = judge.detect(images)
        metrics = {f"ner@{t}": M.ner(detections, t) for t in M.NER_THRESHOLDS}
    else:  # coco
        prompts = [r[1] for r in rows]
        metrics = {"clip_score": M.clip_score(judge.image_embeds(images), judge.text_embeds(prompts))}
    return metrics, per
