"""The bench's cache: every cell (an erasure, a suite on one model, an attack on one model) is a JSON file named by
the hash of everything that decides its result, so a rerun, an extended spec or a killed run computes only what
is missing, and shards that share a folder (or whose folders are collected into one) never compute a cell twice.

    OUT/cells/KEY.json           the cell's figures (written last, atomically: its presence means done)
    OUT/cells/KEY.png            the images of a suite cell, for the report's grids
    OUT/cells/KEY.safetensors    a general-suite cell's judge features, for KID and FJD
    OUT/edits/KEY/               an erasure's Edit (OUT/edits/KEY.partial/ while it trains; resumed from there)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from erasekit.core.files import write_text

CELLS, EDITS = "cells", "edits"


def cell_key(kind: str, **parts) -> str:
    """A short hash of `kind` and `parts` (JSON with sorted keys: the same inputs give the same key anywhere)."""
    text = json.dumps({"kind": kind, **parts}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class Cells:
    """The cells under `out`/cells; `roots`: more bench folders to read finished cells from (collected shards)."""

    def __init__(self, out: Path, roots: tuple[Path, ...] = (), writer: bool = True):
        self.out, self.writer = Path(out), writer  # writer: False in the other processes of an accelerate launch
        self.dirs = [self.out / CELLS, *(Path(r) / CELLS for r in roots)]

    def path(self, key: str, suffix: str = ".json") -> Path:
        """Where a cell's file is: the first folder that has it, else this bench's own."""
        for d in self.dirs:
            if (d / f"{key}.json").exists():
                return d / f"{key}{suffix}"
        return self.dirs[0] / f"{key}{suffix}"

    def get(self, key: str) -> dict | None:
        path = self.path(key)
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, key: str, value: dict) -> dict:
        if self.writer:
            write_text(self.dirs[0] / f"{key}.json", json.dumps(value, indent=1, sort_keys=True))
        return value

    def edit_dir(self, key: str) -> Path:
        return self.out / EDITS / key
