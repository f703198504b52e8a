"""A run's partial folder and its record: what the run was, so that `--resume` never mixes two runs."""

from __future__ import annotations

import json
from pathlib import Path

from erasekit.core.errors import ErasekitError
from erasekit.core.files import RUN_RECORD, check_output, claim_partial, write_text


def prepare(out: str | Path, resume: bool = False, overwrite: bool = False, kind: str = "folder") -> Path:
    """Check the output and claim its partial folder before any work (see `core.files`); returns the partial
    folder (not yet made)."""
    check_output(out, overwrite, kind=kind)
    return claim_partial(out, resume, overwrite)


def claim(work: Path, resume: bool, record: dict) -> None:
    """Make the work folder and record the run in it, or, resuming, refuse a work folder left by a different run."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / RUN_RECORD
    record = json.loads(json.dumps(record, sort_keys=True, default=str))  # as it reads back (tuples are lists)
    if resume and path.exists():
        before = json.loads(path.read_text())
        changed = [k for k in record if before.get(k) != record[k]]
        if changed:
            raise ErasekitError(
                f"cannot resume {work}: it was started with other {', '.join(changed)}; run it with "
                "the same options, or pass --overwrite to start again"
            )
    write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str))
