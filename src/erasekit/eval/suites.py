"""Evaluation suites: generate a suite's prompts with a model (and its base, for paired metrics), judge the
images, and return a `SuiteResult`: its `to_json()` is the metrics.json contract

  {"suite", "model", "edit", "erased": [...], "preserved": [...], "n_per_prompt",
   "metrics": {name: value}, "per_concept": {concept: {name: value}}}

and it keeps the images (with their prompts and concept labels) for the report.

Suites are registered (`eval.registries.SUITES`): the world's use the exact world judge (`eval.world_entries`);
`imagenette`, `i2p`, `coco` and `artists` use ResNet-50, NudeNet and CLIP from local folders (`eval.builtin`).
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
from erasekit.eval.prompts import PromptSet, load_csv
from erasekit.eval.registries import JUDGES, SUITES, Files
from erasekit.models.bundle import Bundle

BUILTIN_SUITES = ("world-objects", "world-styles", "world-implicit", "world-general", "imagenette", "i2p", "coco")


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
    limit: int | None = None  # first `limit` prompts of a CSV suite (of each concept, where prompts are labelled)
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
    judges: dict | None = None  # what scored the images: each judge's network, version, weights hash, what counts

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
        if self.judges is not None:
            out["judges"] = self.judges
        return out if self.embedding is None else {**out, "embedding": self.embedding}


@dataclass
class Judges:
    """What a suite scores with, loaded once and before any image is generated (a missing file fails at once)."""

    main: object
    inception: object | None = None  # with `run.inception`
    lpips: object | None = None  # with `run.lpips`


def check_suite(suite: str, bundle: Bundle) -> None:
    """Refuse a suite the model cannot be scored on (the world suites' judge knows only the miniature's world)."""
    entry = SUITES.get(suite)
    JUDGES.get(entry.judge).check_model(bundle, f"suite {suite}")


def suite_data(suite: str, run: SuiteRun) -> Path | None:
    """The CSV a suite reads: `run.prompts_file`, else the checked local copy of the suite's data set (refused
    before any work when it is missing or differs). None for a suite of its own prompts."""
    if run.prompts_file is not None:
        return Path(run.prompts_file)
    data = SUITES.get(suite).data
    if data is None:
        return None
    from erasekit.core import datasets

    return datasets.path(data, run.data_dir)


def load_judges(suite: str, run: SuiteRun, device="cpu") -> Judges:
    files = Files.of(run)
    return Judges(
        JUDGES.get(SUITES.get(suite).judge).load(files, device),
        JUDGES.get("inception").load(files, device) if run.inception else None,
        JUDGES.get("lpips").load(files, device) if run.lpips else None,
    )


def provenance(suite: str, run: SuiteRun, paired: bool = True) -> dict:
    """What metrics.json's `judges` section records: every judge a suite's figures came from, named, versioned and
    hashed (network, package version, weights sha256, the classes and thresholds that count)."""
    files = Files.of(run)
    names = [SUITES.get(suite).judge] + [n for n in ("inception", "lpips") if paired and getattr(run, n)]
    return {name: JUDGES.get(name).provenance(files) for name in names}


def split_rates(probs: torch.Tensor, labels: list[int], concepts: list[str], erased, preserved) -> tuple[dict, dict]:
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
    entry = SUITES.get(suite)
    erased, names = list(erased), (entry.names(ps) if entry.names else None)
    if names is not None:
        _check_concepts(erased, names, suite)
        present = {labels.get(entry.label) for labels in ps.labels}  # the concepts the prompts ask for
        preserved = [c for c in names if c not in erased and c in present] if preserved is None else list(preserved)
        _check_concepts(preserved, names, suite)
    preserved = list(preserved or [])
    rows = ps.expand(run.n)
    label = entry.label
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
    else:
        metrics, per = entry.score(judges.main, images, rows, concepts, erased, preserved)
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
        provenance(suite, run, paired=base_images is not None),
    )


def suite_prompts(suite: str, run: SuiteRun) -> PromptSet:
    """The suite's prompts: its data set or its own built-in set, or `run.prompts_file` in their place (an attack's
    prompts.csv, say: in a suite of labelled prompts, a file names each row's concept in a column of the suite's
    label, such as `object`, or in `concept`)."""
    entry = SUITES.get(suite)
    if run.prompts_file is not None and entry.own_prompts:
        raise ErasekitError(f"suite {suite} scores its own prompts; it takes no --prompts-file")
    ps = (
        load_csv(run.prompts_file) if run.prompts_file is not None and entry.data is None else entry.prompts(suite, run)
    )
    if run.prompts_file is not None and entry.label is not None:
        key, names = entry.label, entry.names(None)  # the suite's own concept names, not the file's
        for row, labels in enumerate(ps.labels, start=2):
            labels[key] = labels.get(key) or labels.get("concept")
            if labels[key] not in names:
                raise ErasekitError(
                    f"prompt file {run.prompts_file}, line {row}: suite {suite} needs each prompt's "
                    f"{key} ({', '.join(names)}) in a column {key!r} or 'concept', not {labels[key]!r}"
                )
    if not run.limit:
        return ps
    if entry.label is None:
        return ps.subset(range(min(len(ps), run.limit)))
    counts: dict = {}  # a suite of labelled prompts keeps the first `limit` of each concept: every concept stays
    keep = []
    for i, labels in enumerate(ps.labels):
        concept = labels.get(entry.label)
        counts[concept] = counts.get(concept, 0) + 1
        if counts[concept] <= run.limit:
            keep.append(i)
    return ps.subset(keep)


def unlocked(suite: str, key: Key, erased: list[str]) -> list[str]:
    """The erased concepts a key unlocks; refused before any image: a suite without concept labels, a key for
    none of the erased concepts."""
    if SUITES.get(suite).probs is None:
        labelled = [s.name for s in SUITES.available() if s.probs is not None]
        raise ErasekitError(
            f"a key's recovery rate needs a suite whose prompts name their concept ({', '.join(labelled)}), not {suite}"
        )
    hidden = [c for c in erased if c in key.concepts]
    if not hidden:
        raise ErasekitError(
            f"the key unlocks {', '.join(key.concepts)}, none of the erased concepts ({', '.join(erased) or 'none'})"
        )
    return hidden


def _recovery(suite, judge, images, concepts) -> tuple[dict, dict]:
    """RSR-1/5 over the keyed images of the hidden concepts, and per concept."""
    probs, labels, _ = SUITES.get(suite).probs(judge, images, concepts)
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
