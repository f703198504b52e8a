"""Atomic output: everything erasekit writes goes to a temporary name beside its target and is renamed when
complete, so an interrupted run leaves either the old file or the new one, never half of one.

Every output folder holds a record, `.erasekit-files`, of the files erasekit wrote into it. `--overwrite` replaces
a folder only when it holds nothing else: a file the user put there is never deleted. Files and folders get the
modes the user's umask gives any new file (some writers, safetensors among them, create files private).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from erasekit.core.errors import ErasekitError

OWNED = ".erasekit-files"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give `path` (and, for a folder, everything under it) the mode a new file or folder gets from the umask."""
    mask = _umask()
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for p in paths:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def check_writable(path: str | Path) -> None:
    """Refuse, before any work, an output location that cannot be created: its nearest existing ancestor must be a
    folder in which a file can be made (checked by making one: permissions, read-only mounts, quotas)."""
    path = Path(path).absolute()
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ErasekitError(f"cannot write {path}: {ancestor} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".erasekit-probe-", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ErasekitError(f"cannot write {path}: {ancestor} is not writable ({exc.strerror})") from None


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()} - {OWNED}


def owned_files(folder: Path) -> set[str]:
    """The files erasekit recorded writing into `folder` (none if it holds no record)."""
    try:
        return set(json.loads((folder / OWNED).read_text()))
    except (OSError, ValueError, TypeError):
        return set()


def check_output(out: str | Path, overwrite: bool = False, kind: str = "folder") -> None:
    """Refuse, before any work, an output that would lose something: an existing `out` without `overwrite`, a folder
    to overwrite that holds files erasekit did not write there, or a location that cannot be written.
    An existing empty folder counts as free. `kind`: "folder" or "file"."""
    out = Path(out)
    if out.exists():
        if kind == "folder" and not out.is_dir():
            raise ErasekitError(f"output {out} is a file; --out needs a folder here")
        if kind == "file" and out.is_dir():
            raise ErasekitError(f"output {out} is a folder; --out needs a file name here")
        if out.is_dir() and not any(out.iterdir()):
            return check_writable(out)
        if not overwrite:
            raise ErasekitError(f"output already exists: {out} (pass --overwrite to replace it)")
        if out.is_dir():
            foreign = sorted(_files(out) - owned_files(out))
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise ErasekitError(
                    f"will not overwrite {out}: it holds files erasekit did not write ({shown}); "
                    "move them or choose another --out"
                )
    check_writable(out)


def partial_of(out: str | Path) -> Path:
    """Where an unfinished output lives until it is complete (`erase` and `generate` resume from it)."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


RUN_RECORD = "run.json"  # in OUT.partial/: what the run was, so that --resume cannot mix two runs


def claim_partial(out: str | Path, resume: bool, overwrite: bool) -> Path:
    """The partial folder of `out`, checked before any work: one left by an interrupted or failed run is resumed
    with `resume`, discarded with `overwrite`, and otherwise refused (its progress would be lost silently). One
    that holds no progress (a run that stopped before its first checkpoint or image) is discarded: there is nothing
    to resume, and it must not block the next try."""
    work = partial_of(out)
    if work.exists() and not resume:
        progress = sorted(_files(work) - {RUN_RECORD})
        if progress and not overwrite:
            raise ErasekitError(
                f"an interrupted or failed run left {work} ({len(progress)} file(s) of progress, "
                f"e.g. {progress[0]}): resume it with --resume, or pass --overwrite to start again"
            )
        shutil.rmtree(work)
    return work


def finish_dir(tmp: Path, out: Path, overwrite: bool = False) -> Path:
    """Make the complete folder `tmp` the output `out`: record its files, follow the umask, rename."""
    check_output(out, overwrite)
    (tmp / OWNED).write_text(json.dumps(sorted(_files(tmp)), indent=0))
    follow_umask(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that infer the format from it still can);
    rename it to `path` when the block completes, remove it if the block fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        follow_umask(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; it becomes `out` when the block completes (see `finish_dir`), and
    is removed if the block fails. The output is checked (`check_output`) before the block runs."""
    out = Path(out)
    check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        finish_dir(tmp, out, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
