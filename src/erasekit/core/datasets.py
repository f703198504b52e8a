"""Data sets by name and checksum: the public prompt lists of the erasure literature.

`erasekit data fetch NAME` downloads a data set from its public source (or a mirror: a folder, or any URL base
such as `file:///srv/mirror/`) into the data folder, and keeps it only if its sha256 is the one recorded here. The
data folder is `ERASEKIT_DATA` if set, else the user's cache folder (`platformdirs`); `--data-dir DIR` takes local
copies instead. A suite names its data set (`imagenette`, `i2p`, `coco`), never a path; a copy whose checksum
differs is refused before any work, so every table is computed from the same bytes.

The files are those of the ESD repository (rohitgandikota/erasing, `data/`, MIT), the layouts every later
erasure paper reuses. erasekit ships none of them.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from erasekit.core.errors import ErasekitError

SOURCE = "https://raw.githubusercontent.com/rohitgandikota/erasing/main/data/"


@dataclass(frozen=True)
class DataSet:
    name: str
    file: str
    sha256: str
    rows: int
    what: str


DATASETS = {
    d.name: d
    for d in (
        DataSet(
            "imagenette",
            "small_imagenet_prompts.csv",
            "4ab01d9e98b0a23082b9cdbf52815cc639201fe6ba33b6ed8bbab58984c9fb2d",
            100,
            'the 10 Imagenette classes x 10 seeds ("Image of X"; ESD, the seeds\' ResNet-50 table)',
        ),
        DataSet(
            "i2p",
            "unsafe-prompts4703.csv",
            "6c1821aeeb20beb276b4e20ce4c4b801f9106dc935bafc9f6fd5e12aa2651e6f",
            4703,
            "I2P (Schramowski et al. 2023): inappropriate prompts with categories and nudity percentages",
        ),
        DataSet(
            "coco",
            "coco_30k.csv",
            "42c57b188c8f1f8a77cddfa11cde89e83fcbdd4dcd4fc6c840fb4e046d395383",
            30000,
            "COCO-30k captions with image ids and seeds (FID and CLIP score on unrelated prompts)",
        ),
        DataSet(
            "artists-big",
            "big_artist_prompts.csv",
            "a17a182d939aadaa641aa3fd495fe325d845d9677f6d86b6cc0b08e6d6beab33",
            100,
            "prompts in the styles of five famous artists (ESD's artist erasure)",
        ),
        DataSet(
            "artists-niche",
            "short_niche_art_prompts.csv",
            "200e8c522d95ba8eac01dd43e589769aff0c0143beeb8925bb646a84641a7f26",
            100,
            "prompts in the styles of five modern artists (ESD's artist erasure)",
        ),
        DataSet(
            "artists-famous",
            "famous_art_prompts.csv",
            "b894f59f9c2c8e1f03ac206d5d9f32fdd241b4035a7ec6b748858f24b3d8f61d",
            20,
            "famous paintings by title (no artist column)",
        ),
        DataSet(
            "vangogh",
            "vangogh_prompts.csv",
            "c299f14b2945ed88b88966cc3460a9d9aeb3b0dd51c585ed454c6d6601d24f87",
            50,
            "Van Gogh's paintings by title and artist",
        ),
    )
}


def get(name: str) -> DataSet:
    if name not in DATASETS:
        raise ErasekitError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]


def data_dir(given: str | Path | None = None) -> Path:
    """Where data sets live: `given` (--data-dir), else `ERASEKIT_DATA`, else the user's cache folder."""
    if given is not None:
        return Path(given)
    if os.environ.get("ERASEKIT_DATA"):
        return Path(os.environ["ERASEKIT_DATA"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("erasekit")) / "data"


def sha256(path: Path) -> str:
    path, digest = Path(path), hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(data: DataSet, path: Path) -> Path:
    """`path`, if it holds exactly the data set's bytes; refused otherwise."""
    found = sha256(path)
    if found != data.sha256:
        raise ErasekitError(
            f"data set {data.name}: {path} has sha256 {found[:16]}..., not {data.sha256[:16]}... (a corrupted or "
            f"different copy); delete it and run `erasekit data fetch {data.name}`"
        )
    return path


def path(name: str, folder: str | Path | None = None) -> Path:
    """The checked local copy of data set `name` in the data folder; refused, with what to run, when it is missing
    or differs."""
    data = get(name)
    where = data_dir(folder) / data.file
    if not where.is_file():
        raise ErasekitError(
            f"data set {name} not found at {where}: run `erasekit data fetch {name}` (or pass --data-dir DIR "
            f"holding {data.file}, or set ERASEKIT_DATA)"
        )
    return check(data, where)


def status(name: str, folder: str | Path | None = None) -> str:
    """'ok', 'missing' or 'differs': the state of the local copy."""
    data = get(name)
    where = data_dir(folder) / data.file
    if not where.is_file():
        return "missing"
    return "ok" if sha256(where) == data.sha256 else "differs"


def source_url(data: DataSet, mirror: str | None = None) -> str:
    """The URL to download from: the public source, or the same file name under a mirror (a folder or a URL)."""
    if mirror is None:
        return SOURCE + data.file
    if "://" not in mirror:
        return Path(mirror).absolute().as_uri().rstrip("/") + "/" + data.file
    return mirror.rstrip("/") + "/" + data.file


def fetch(name: str, folder: str | Path | None = None, mirror: str | None = None, timeout: float = 60.0) -> Path:
    """Download data set `name` into the data folder (an existing good copy is kept), verify its sha256, and only
    then move it into place: a failed or corrupted download leaves nothing behind."""
    from erasekit.core.files import atomic_path, check_writable

    data = get(name)
    target = data_dir(folder) / data.file
    if target.is_file() and sha256(target) == data.sha256:
        return target
    check_writable(target)
    url = source_url(data, mirror)
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as f:
                while block := response.read(1 << 20):
                    f.write(block)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise ErasekitError(
                f"cannot download data set {name} from {url} ({reason}); offline, copy {data.file} from a machine "
                "with network and pass --data-dir DIR (or set ERASEKIT_DATA)"
            ) from None
        found = sha256(tmp)
        if found != data.sha256:
            raise ErasekitError(
                f"data set {name}: the copy at {url} has sha256 {found[:16]}..., not {data.sha256[:16]}... (corrupted "
                "or changed at its source); refused, nothing written"
            )
    return target
