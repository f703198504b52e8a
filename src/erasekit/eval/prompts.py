"""Prompt sets: named prompts with evaluation seeds and labels.

The world's built-in sets (`world-objects`, `world-colours`, ...), and CSV files with the public column layouts
of the erasure literature (I2P, COCO-30k, the Imagenette list, the artist lists), or any CSV with a `prompt` column
and optional `evaluation_seed` / `seed` and label columns. Each image i of a prompt uses seed `seed + i`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from erasekit.core.errors import ErasekitError
from erasekit.world.captions import PROMPT_SETS, world_prompts

SEED_COLUMNS = ("evaluation_seed", "seed")
# columns kept as labels, per public layout (others are dropped)
LABEL_COLUMNS = (
    "class",
    "artist",
    "categories",
    "nudity_percentage",
    "inappropriate_percentage",
    "hard",
    "image_id",
    "case_number",
    "label",
    "concept",
    "object",
    "style",
    "original",
)


@dataclass
class PromptSet:
    name: str
    prompts: list[str]
    seeds: list[int] = field(default_factory=list)  # per prompt; empty: 0 for every prompt
    labels: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.seeds = self.seeds or [0] * len(self.prompts)
        self.labels = self.labels or [{} for _ in self.prompts]
        if not (len(self.prompts) == len(self.seeds) == len(self.labels)):
            raise ErasekitError(f"prompt set {self.name}: prompts, seeds and labels differ in length")
        empty = [i for i, p in enumerate(self.prompts) if not p.strip()]
        if empty:
            raise ErasekitError(f"prompt set {self.name}: empty prompt at row {empty[0]}")

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, idx) -> PromptSet:
        idx = list(idx)
        return PromptSet(
            self.name, [self.prompts[i] for i in idx], [self.seeds[i] for i in idx], [self.labels[i] for i in idx]
        )

    def filter(self, keep) -> PromptSet:
        """The rows whose labels satisfy `keep(labels)`."""
        return self.subset(i for i, lab in enumerate(self.labels) if keep(lab))

    def expand(self, n: int) -> list[tuple[int, str, int, dict]]:
        """(row, prompt, seed, labels) for n images per prompt: seeds seed, seed+1, ..., seed+n-1."""
        return [
            (r, p, s + i, lab)
            for r, (p, s, lab) in enumerate(zip(self.prompts, self.seeds, self.labels, strict=True))
            for i in range(n)
        ]


def world_set(name: str) -> PromptSet:
    """A built-in world set, e.g. `objects` or `world-objects`."""
    key = name.removeprefix("world-")
    if key not in PROMPT_SETS:
        raise ErasekitError(f"unknown prompt set {name!r}; built-in: {', '.join('world-' + p for p in PROMPT_SETS)}")
    items = world_prompts(key)
    return PromptSet(f"world-{key}", [p for p, _ in items], [], [lab for _, lab in items])


def load_csv(path: str | Path, name: str | None = None, skip_empty: bool = False) -> PromptSet:
    """Any CSV with a `prompt` column; keeps the seed column and the known label columns. An empty prompt is an
    error unless `skip_empty` (the public I2P file has one empty row)."""
    path = Path(path)
    if not path.is_file():
        raise ErasekitError(f"prompt file not found: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if "prompt" not in columns:
            raise ErasekitError(f"prompt file {path} has no 'prompt' column (columns: {', '.join(columns) or 'none'})")
        seed_col = next((c for c in SEED_COLUMNS if c in columns), None)
        prompts, seeds, labels = [], [], []
        for row_no, row in enumerate(reader, start=2):
            if skip_empty and not (row["prompt"] or "").strip():
                continue
            prompts.append((row["prompt"] or "").strip())
            try:
                seeds.append(int(float(row[seed_col])) if seed_col and row[seed_col] else 0)
            except ValueError:
                raise ErasekitError(
                    f"prompt file {path}, line {row_no}: seed {row[seed_col]!r} is not a number"
                ) from None
            labels.append({c: row[c] for c in LABEL_COLUMNS if c in columns})
    return PromptSet(name or path.stem, prompts, seeds, labels)


def load_i2p(path: str | Path, category: str | None = "sexual", min_nudity: float = 0.0) -> PromptSet:
    """I2P (unsafe-prompts4703.csv): optionally only a category (substring of `categories`) and prompts whose
    `nudity_percentage` is at least `min_nudity`."""
    ps = load_csv(path, "i2p", skip_empty=True)
    for col in ("categories", "nudity_percentage"):
        if ps.labels and col not in ps.labels[0]:
            raise ErasekitError(f"I2P file {path} has no {col!r} column")

    def keep(lab):
        ok = category is None or category in lab["categories"]
        return ok and float(lab["nudity_percentage"] or 0) >= min_nudity

    return ps.filter(keep)


def load_prompt_set(spec: str, data_dir: str | None = None) -> PromptSet:
    """A built-in world set by name, a data set by name (`erasekit data list`: i2p, coco, imagenette, the artist
    sets), or a CSV path."""
    from erasekit.core import datasets

    if spec.removeprefix("world-") in PROMPT_SETS:
        return world_set(spec)
    if spec in datasets.DATASETS:
        path = datasets.path(spec, data_dir)
        return load_i2p(path, category=None) if spec == "i2p" else load_csv(path, spec)
    if spec.endswith(".csv") or Path(spec).exists():
        return load_csv(spec)
    raise ErasekitError(
        f"unknown prompt set {spec!r}: give a CSV path, a data set ({', '.join(datasets.DATASETS)}) or one of "
        f"{', '.join('world-' + p for p in PROMPT_SETS)}"
    )
