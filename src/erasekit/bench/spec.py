"""A bench spec (YAML): the model, the methods, the concepts, the suites and the attacks, checked as a whole before
any work, and expanded into the table's rows (one per method and concept set; the unedited model first).

    name: smoke
    model: mini                       # any source `load_bundle` reads: mini, tiny, a hub id, a folder, a file
    judges: {resnet: DIR, clip: DIR, inception: FILE}  # the judges' local weights (real models' suites)
    data_dir: DIR                     # the data sets (I2P, Imagenette, COCO); default ERASEKIT_DATA or the cache
    domain: null                      # the domain that decides every concept (default: each concept's own)
    methods:                          # a name, or a mapping:
      - esd
      - {name: uce, label: uce+P, preserve: kept, set: {guide: nearest}}
      - {name: ap, budget: {esr: 90, every: 20, max: 400}}
    budget: null                      # the default budget of every method that trains for `iterations`
    concepts:                         # one row per entry: a concept, "c1,c2" (erased at once),
      - star                          # {splits: seeds} (the seeds' four 5+5 splits), {each: objects}; `of:
                                      # imagenette` or `objects` (default: the miniature's objects on mini)
    suites:
      erasure: {n: 8, limit: null}    # the concept's domain's suite: ESR/PSR (objects, styles, Imagenette),
                                      # the mark's rate, NER@tau (I2P); `limit`: its first prompts only (of each
                                      # concept); `suite`: another suite of the same judge (i2p-all: every I2P row)
      general: {n: 8}                 # KID and FJD to the base model's images on other seeds (the world judge's
                                      # features; else Inception where judges.inception is given, else CLIP's);
                                      # attribute agreement (world) or the CLIP score (COCO)
    attacks: {names: [ringabell, inversion], n: 8, limit: null, set: {inversion: {steps: 200}}}
    graph: false                      # δ of every object per row (the concept graph), from the erasure suite

`budget`: train until ESR-1 >= `esr` on the erased concepts' prompts, judged every `every` iterations on `n`
held-out seeds per concept, up to `max` iterations (the method's `iterations`). `prompts`: which prompts the check
asks: `captions` (the world's caption templates that ask for the concept; the default) or `suite` (the erasure
suite's own prompts for the concept, on the check's held-out seeds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from erasekit.core.errors import ErasekitError
from erasekit.eval.registries import Files
from erasekit.methods.concepts import split_list

TOP = ("name", "model", "methods", "budget", "concepts", "suites", "attacks", "graph", "judges", "data_dir", "domain")
JUDGE_FILES = ("resnet", "clip", "inception", "lpips")  # eval.registries.Files
METHOD_KEYS = ("name", "label", "set", "preserve", "budget")
BUDGET_KEYS = ("esr", "every", "max", "n", "prompts")
CHECK_PROMPTS = ("captions", "suite")
SUITE_KEYS = {"erasure": ("n", "steps", "guidance", "limit", "suite"), "general": ("n", "steps", "guidance", "limit")}
SPLITS_OF = ("objects", "imagenette")  # the seeds' 5+5 splits over the world's objects or the Imagenette classes
ATTACK_KEYS = ("names", "n", "limit", "steps", "guidance", "set")
NONE = "none"  # the unedited model's rows


@dataclass(frozen=True)
class Budget:
    esr: float = 90.0
    every: int = 20
    max: int = 400
    n: int = 8  # held-out images per erased concept at each check
    prompts: str = "captions"  # captions | suite: the prompts the check asks (CHECK_PROMPTS)

    def as_dict(self) -> dict:
        """What keys a budgeted cell. `prompts` came later: the default is left out, so the cells of captions-checked
        budgets keep the keys they were computed under (and the default stays `captions` for that reason)."""
        out = {"esr": self.esr, "every": self.every, "max": self.max, "n": self.n}
        return out if self.prompts == "captions" else {**out, "prompts": self.prompts}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str
    values: dict  # --set values over the method's preset
    preserve: str | tuple[str, ...] = ()  # "kept": the objects the row does not erase; or the concepts themselves
    budget: Budget | None = None


@dataclass(frozen=True)
class Row:
    """One row of the table: a method (or the unedited model) and the concepts it erases."""

    method: MethodSpec
    concept: str  # the row's concept label: "star", "split1", ...
    erase: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.method.label} | {self.concept}"


@dataclass
class Spec:
    name: str
    model: str
    methods: list[MethodSpec]
    concepts: list[tuple[str, tuple[str, ...]]]  # (label, erased concepts)
    erasure: dict = field(default_factory=lambda: {"n": 8})
    general: dict | None = None
    attacks: dict | None = None
    graph: bool = False
    text: str = ""  # the spec's YAML as given (kept in the output folder, where --collect reads it)
    files: Files = field(default_factory=Files)  # the judges' local weights
    data_dir: str | None = None  # the data sets' folder (None: ERASEKIT_DATA, else the user's cache)
    domain: str | None = None  # the domain that decides every concept (None: each concept's own)
    world: bool = True  # parsed for a model with a world of its own (the splits' default classes)

    def rows(self) -> list[Row]:
        """Every row, the unedited model's first, then each method over each concept set, in the spec's order."""
        none = MethodSpec(NONE, NONE, {})
        return [Row(m, label, erase) for m in [none, *self.methods] for label, erase in self.concepts]


def _mapping(value, where: str, keys) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ErasekitError(f"bench spec: {where} must be a mapping, got {value!r}")
    unknown = [k for k in value if k not in keys]
    if unknown:
        raise ErasekitError(
            f"bench spec: unknown key(s) in {where}: {', '.join(map(str, unknown))}; valid: {', '.join(keys)}"
        )
    return value


def _positive(value, where: str, kind=int):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ErasekitError(f"bench spec: {where} must be a number, got {value!r}") from None
    if number <= 0 or (kind is int and number != value):
        raise ErasekitError(
            f"bench spec: {where} must be a positive {'integer' if kind is int else 'number'}, got {value!r}"
        )
    return number


def _budget(value, where: str) -> Budget | None:
    if value is None:
        return None
    raw = _mapping(value, where, BUDGET_KEYS)
    esr, prompts = raw.pop("esr", Budget.esr), raw.pop("prompts", Budget.prompts)
    if prompts not in CHECK_PROMPTS:
        raise ErasekitError(f"bench spec: {where}.prompts is one of {', '.join(CHECK_PROMPTS)}, got {prompts!r}")
    if not isinstance(esr, (int, float)) or isinstance(esr, bool) or not 0 <= esr <= 100:
        raise ErasekitError(f"bench spec: {where}.esr is a rate in percent (0-100), got {esr!r}")
    return Budget(esr=float(esr), prompts=prompts, **{k: _positive(v, f"{where}.{k}") for k, v in raw.items()})


def _method(entry, default_budget: Budget | None, where: str) -> MethodSpec:
    from erasekit.methods import registry

    entry = {"name": entry} if isinstance(entry, str) else _mapping(entry, where, METHOD_KEYS)
    if "name" not in entry:
        raise ErasekitError(f"bench spec: {where} has no method name")
    spec = registry.get(str(entry["name"]))  # an unknown method fails here, with the valid names
    values = _mapping(entry.get("set"), f"{where}.set", list(spec.config.__dataclass_fields__))
    values = {k: _path(v) if isinstance(v, str) and "$" in v else v for k, v in values.items()}  # ${VAR}: a file
    preserve = entry.get("preserve") or ()
    if isinstance(preserve, str) and preserve != "kept":
        preserve = tuple(split_list(preserve))
    elif isinstance(preserve, list):
        preserve = tuple(map(str, preserve))
    budget = _budget(entry["budget"], f"{where}.budget") if "budget" in entry else default_budget
    trains = "iterations" in spec.config.__dataclass_fields__
    if budget is not None and not trains:
        if "budget" in entry:
            raise ErasekitError(
                f"bench spec: {where}: method {spec.name} does not train for iterations, so a budget cannot apply to it"
            )
        budget = None  # the spec-wide budget skips closed-form methods
    if budget is not None and "iterations" in values:
        raise ErasekitError(f"bench spec: {where}: give either set.iterations or a budget (its max), not both")
    label = str(entry.get("label") or spec.name)
    if label == NONE:
        raise ErasekitError(f"bench spec: {where}: the label {NONE!r} is the unedited model's")
    return MethodSpec(spec.name, label, dict(values), preserve, budget)


def _concepts(entry, where: str, of: str) -> list[tuple[str, tuple[str, ...]]]:
    """`of`: whose splits and `each` (the world's objects on the miniature, else the Imagenette classes)."""
    from erasekit.eval.metrics import IMAGENETTE_ORDER, splits_for
    from erasekit.world.render import OBJECTS

    if isinstance(entry, str):
        erase = tuple(split_list(entry))
        if not erase:
            raise ErasekitError(f"bench spec: {where} is empty")
        return [(",".join(erase), erase)]
    raw = _mapping(entry, where, ("splits", "each", "erase", "label", "of"))
    if "each" in raw and "of" not in raw:
        of = {"objects": "objects", "classes": "imagenette"}.get(raw["each"], of)
    of = raw.get("of", of)
    if of not in SPLITS_OF:
        raise ErasekitError(f"bench spec: {where}.of is one of {', '.join(SPLITS_OF)}, got {of!r}")
    names = OBJECTS if of == "objects" else IMAGENETTE_ORDER
    if "splits" in raw:
        if raw["splits"] != "seeds":
            raise ErasekitError(f"bench spec: {where}.splits: only 'seeds' (the seeds' four 5+5 splits) is known")
        return [(f"split{i + 1}", tuple(e)) for i, (e, _) in enumerate(splits_for(names))]
    if "each" in raw:
        if raw["each"] not in ("objects", "classes"):
            raise ErasekitError(f"bench spec: {where}.each: only 'objects' or 'classes' is known")
        return [(o, (o,)) for o in names]
    erase = tuple(split_list(str(raw.get("erase", ""))))
    if not erase:
        raise ErasekitError(f"bench spec: {where} names no concept (erase: ...)")
    return [(str(raw.get("label") or ",".join(erase)), erase)]


def _path(value) -> str:
    """A path as a spec gives it: environment variables expanded (`${ERASEKIT_JUDGES}/resnet-50`), so that one
    shipped spec serves every machine."""
    import os
    import re

    path = os.path.expandvars(os.path.expanduser(str(value)))
    unset = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", path)
    if unset:
        raise ErasekitError(f"bench spec: {value!r} names the environment variable {unset[0]}, which is not set")
    return path


def parse_spec(text: str, source: str = "spec", world: bool | None = None) -> Spec:
    """A spec from its YAML text; every mistake is one line naming where it is. `world`: whether the model has a
    world of its own (the miniature, or an edit or export of it), once it is loaded; it decides whose classes the
    seeds' splits are by default (None: assume so for `mini` alone)."""

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ErasekitError(f"bench spec {source} is not valid YAML: {str(e).splitlines()[0]}") from None
    raw = _mapping(raw, source, TOP)
    for key in ("methods", "concepts"):
        if not isinstance(raw.get(key), list) or not raw[key]:
            raise ErasekitError(f"bench spec {source}: '{key}' must be a non-empty list")
    default_budget = _budget(raw.get("budget"), "budget")
    methods = [_method(m, default_budget, f"methods[{i}]") for i, m in enumerate(raw["methods"])]
    labels = [m.label for m in methods]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ErasekitError(f"bench spec {source}: method label(s) {', '.join(twice)} used twice; give each a 'label'")
    model = str(raw.get("model") or "mini")
    if world is None:
        world = model == "mini"
    of = "objects" if world else "imagenette"  # the default splits: the miniature's objects, else the seeds' own
    concepts = [c for i, e in enumerate(raw["concepts"]) for c in _concepts(e, f"concepts[{i}]", of)]
    judges = _mapping(raw.get("judges"), "judges", JUDGE_FILES)
    files = Files(**{k: _path(v) for k, v in judges.items() if v is not None})
    domain = None
    if raw.get("domain") is not None:
        from erasekit.eval.registries import DOMAINS

        domain = DOMAINS.get(str(raw["domain"])).name  # an unknown domain fails here, with the valid names
    suites = _mapping(raw.get("suites"), "suites", tuple(SUITE_KEYS))
    erasure = {"n": 8, **_mapping(suites.get("erasure"), "suites.erasure", SUITE_KEYS["erasure"])}
    general = None
    if "general" in suites:
        general = {"n": 8, **_mapping(suites["general"], "suites.general", SUITE_KEYS["general"])}
    for where, run in (("suites.erasure", erasure), ("suites.general", general or {})):
        for k, v in run.items():
            if k == "suite":
                from erasekit.eval.registries import SUITES

                SUITES.get(str(v))  # an unknown suite fails here, with the valid names
            elif v is not None:
                _positive(v, f"{where}.{k}", float if k == "guidance" else int)
    attacks = None
    if raw.get("attacks"):
        attacks = {
            "n": 8,
            "limit": None,
            "steps": 25,
            "guidance": 5.0,
            "set": {},
            **_mapping(raw["attacks"], "attacks", ATTACK_KEYS),
        }
        names = attacks.get("names")
        if not isinstance(names, list) or not names:
            raise ErasekitError("bench spec: attacks.names must be a non-empty list")
        from erasekit.attacks import registry as attack_registry

        for name in names:
            attack_registry.get(str(name))  # unknown attacks fail here, with the valid names
        _positive(attacks["n"], "attacks.n")
        _positive(attacks["steps"], "attacks.steps")
        _positive(attacks["guidance"], "attacks.guidance", float)
        bad = [k for k in attacks["set"] or {} if k not in names]
        if bad:
            raise ErasekitError(f"bench spec: attacks.set names attacks the spec does not run: {', '.join(bad)}")
        if attacks["limit"] is not None:
            _positive(attacks["limit"], "attacks.limit")
    return Spec(
        str(raw.get("name") or Path(source).stem),
        model,
        methods,
        concepts,
        erasure,
        general,
        attacks,
        bool(raw.get("graph", False)),
        text,
        files,
        _path(raw["data_dir"]) if raw.get("data_dir") else None,
        domain,
        world,
    )


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    if not path.is_file():
        raise ErasekitError(f"bench spec not found: {path}")
    return parse_spec(path.read_text(encoding="utf-8"), str(path))
