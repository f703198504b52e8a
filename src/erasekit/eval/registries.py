"""Registries of judges, suites and concept domains, beside the methods' and the attacks'.

- A **judge** scores images: how it is loaded from local weights (`Files`), what `metrics.json` records of it
  (its provenance: network, version, weights hash), and which models' images it can score. A judge that belongs to a
  model's own world (the world judge and the miniature) also offers that world's tools (`Judge.world`).
- A **suite** is a prompt set, the judge that scores it, and how its images become metrics.
- A **domain** says which judge decides a concept, and how: whether an image shows it (the attacks' success, a
  budget's check), the prompts that ask for it, and the suite that measures its erasure.

The built-in entries are registered by `eval.builtin` (real models' judges) and `eval.world_entries` (the
miniature's world). Other packages add their own through the entry-point groups `erasekit.judges`,
`erasekit.suites` and `erasekit.domains`: each entry point names a function of no arguments that calls `JUDGES.add`,
`SUITES.add` or `DOMAINS.add`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from erasekit.core.errors import ErasekitError

BUILTIN = ("erasekit.eval.world_entries", "erasekit.eval.builtin")  # the world's first: it decides its own concepts


@dataclass(frozen=True)
class Files:
    """The judges' local weights (nothing is downloaded): folders in the transformers layout, TorchScript files."""

    resnet: str | None = None  # microsoft/resnet-50
    clip: str | None = None  # openai/clip-vit-large-patch14 (or ViT-B/32)
    inception: str | None = None  # inception-2015-12-05.pt (StyleGAN2-ADA's TorchScript FID network)
    lpips: str | None = None  # a TorchScript export of lpips.LPIPS(net="alex")

    @classmethod
    def of(cls, holder) -> Files:
        """The files an options object carries (a SuiteRun, an AttackRun, a spec's judges), None where absent."""
        return cls(**{f.name: getattr(holder, f.name, None) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class Judge:
    name: str
    summary: str
    load: Callable  # (files, device) -> the judge
    provenance: Callable = lambda files: {}  # (files) -> what metrics.json's `judges` records of it
    scores: Callable | None = None  # bundle -> whether it can score this model's images (None: any model's)
    why: str = ""  # what it can score, for the refusal on a model it cannot
    models: str = ""  # the models it scores, in words ("the miniature")
    world: dict = field(default_factory=dict)  # a model world's own tools (check, attributes, features, ...)
    features: Callable | None = None  # (judge, images) -> [B, F] image features (KID/FJD/FID), where it has any

    def check_model(self, bundle, what: str) -> None:
        if self.scores is not None and not self.scores(bundle):
            raise ErasekitError(
                f"{what} is scored by the {self.name} judge, which {self.why}, and {bundle.source!r} is not "
                f"{self.models or 'one of them'}"
            )


@dataclass(frozen=True)
class Suite:
    name: str
    summary: str
    judge: str  # the judge that scores its images
    prompts: Callable  # (suite name, run) -> its own PromptSet
    score: Callable  # (judge, images, rows, concepts, erased, preserved) -> (metrics, per concept)
    label: str | None = None  # the prompt label that names each image's concept (None: free prompts)
    names: Callable | None = None  # (PromptSet) -> the concepts its images can be labelled with
    probs: Callable | None = None  # (judge, images, concepts) -> (class probabilities, label indices): for RSR
    data: str | None = None  # the data set it reads (core/datasets.py)
    own_prompts: bool = False  # it scores its own prompts only (takes no --prompts-file)


@dataclass(frozen=True)
class Domain:
    name: str
    summary: str
    judge: str  # the judge that decides its concepts
    decides: Callable  # (bundle, concept) -> whether this domain decides `concept` on this model
    detector: Callable  # (bundle, concept, files) -> (images -> [B] bool: the image shows the concept)
    suite: str | None = None  # the suite that measures an erasure of its concepts
    rates: dict = field(default_factory=dict)  # the table's rate columns: column -> the suite's metric
    erased_in_suite: bool = True  # the suite takes the erased concepts (labelled prompts); else it is a rate
    prompts: Callable | None = None  # (bundle, concept, data_dir) -> the PromptSet that asks for the concept
    pairs: Callable | None = None  # (bundle, concept) -> prompt pairs with and without it (Ring-A-Bell)
    automatic: bool = True  # it claims the concepts it decides; False: only where a spec or option names it
    kind: str = ""  # what its concepts are ("object", "style", "class", "nudity"): a bench row erases one kind
    pool: Callable | None = None  # () -> every concept of the domain (a bench row's "kept" preservation set)


class Named:
    """Entries by name, the built-in and the entry points' loaded on first use."""

    loaded = False

    def __init__(self, kind: str, group: str):
        self.kind, self.group = kind, group
        self.items: dict = {}

    def add(self, entry) -> None:
        self.items[entry.name] = entry

    def get(self, name: str):
        load_all()
        if name not in self.items:
            raise ErasekitError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.items)}")
        return self.items[name]

    def available(self) -> list:
        load_all()
        return list(self.items.values())


JUDGES, SUITES, DOMAINS = (
    Named("judge", "erasekit.judges"),
    Named("suite", "erasekit.suites"),
    Named("domain", "erasekit.domains"),
)


def load_all() -> None:
    if Named.loaded:
        return
    import importlib

    for module in BUILTIN:
        importlib.import_module(module).register()
    for registry in (JUDGES, SUITES, DOMAINS):
        for ep in entry_points(group=registry.group):
            try:
                ep.load()()
            except Exception as e:  # a broken plugin is named, and the registries stay unloaded
                raise ErasekitError(
                    f"{registry.group} entry point {ep.name!r} failed: {type(e).__name__}: {e}"
                ) from None
    Named.loaded = True


def world_of(bundle) -> Judge | None:
    """The judge of the model's own world (the world judge, for the miniature and its edits), or None."""
    return next((j for j in JUDGES.available() if j.world and j.scores is not None and j.scores(bundle)), None)


def world_tool(bundle, name: str):
    """A tool of the model's own world (`Judge.world[name]`), or None where the model has no world or it has none."""
    judge = world_of(bundle)
    return judge.world.get(name) if judge is not None else None


def domain_for(bundle, concept: str, name: str | None = None) -> Domain:
    """The domain that decides `concept` on this model: `name`'s, else the first registered that claims it (the
    world's before the real models'). Refused when none does: no judge could tell whether it was erased."""
    if name is not None:
        domain = DOMAINS.get(name)
        if not domain.decides(bundle, concept):
            raise ErasekitError(f"domain {name} does not decide {concept!r} on {bundle.source}")
        return domain
    for domain in DOMAINS.available():
        if domain.automatic and domain.decides(bundle, concept):
            return domain
    check = world_tool(bundle, "check")
    if check is not None:
        check([concept])  # a word the model's world has not got: named as such
    named = [d for d in DOMAINS.available() if not d.automatic and d.decides(bundle, concept)]
    raise ErasekitError(
        f"no judge can see {concept!r} on {bundle.source}: the domains know "
        + "; ".join(
            f"{d.name}: {d.summary}"
            for d in DOMAINS.available()
            if d.automatic and _scores(d.judge, bundle) and (d.judge == getattr(world_of(bundle), "name", d.judge))
        )
        + (
            f"; or, from Python, name a domain that decides any text ({', '.join(d.name for d in named)})"
            if named
            else ""
        )
    )


def _scores(judge: str, bundle) -> bool:
    entry = JUDGES.get(judge)
    return entry.scores is None or entry.scores(bundle)
