"""Seeded generation and image grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_path, check_output, claim_partial, finish_dir, partial_of, write_text
from erasekit.core.images import thumbnails
from erasekit.core.key import Key
from erasekit.models.bundle import Bundle


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [0, 1] -> uint8 [B, H, W, 3]."""
    return (images.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def grid(images: torch.Tensor, nrow: int = 8, tile: int | None = None) -> Image.Image:
    """One PIL image with the batch laid out in rows of `nrow`; with `tile`, each image as `thumbnails` sizes it."""
    arr = to_uint8(images if tile is None else thumbnails(images, tile))
    b, h, w, _ = arr.shape
    rows = -(-b // nrow)
    canvas = np.full((rows * h, nrow * w, 3), 255, np.uint8)
    for i, im in enumerate(arr):
        r, c = divmod(i, nrow)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = im
    return Image.fromarray(canvas)


def images_for(
    bundle: Bundle,
    prompts: list[str],
    seeds: list[int],
    steps: int,
    guidance: float,
    key: Key | None = None,
    concepts: list[str | None] | None = None,
) -> torch.Tensor:
    """Images in [0, 1] for one batch of (prompt, seed) pairs; with a key, each prompt carries the key of its
    concept (`concepts[i]`, None for no key; by default the hidden concept the prompt names)."""
    if key is None:
        return bundle.generate(prompts, seeds, steps=steps, guidance=guidance)
    return bundle.generate(
        None, seeds, steps=steps, guidance=guidance, cond=key.conditioning(bundle, prompts, concepts)
    )


def generate_batched(
    bundle: Bundle,
    prompts: list[str],
    seeds: list[int],
    steps: int = 25,
    guidance: float = 5.0,
    batch: int | None = None,
    desc: str | None = None,
    key: Key | None = None,
    concepts: list[str | None] | None = None,
    split: bool = True,
) -> torch.Tensor:
    """Images in [0, 1], on the CPU, for (prompt, seed) pairs, `batch` at a time (default: the model's
    `image_batch`); with `desc`, a progress bar (images, ETA).
    `key`, `concepts`: a hidden concept's key in the prompts (see `images_for`).
    Under `accelerate launch` with several processes (`split`), each process generates every n-th image and all
    of them get the whole batch back, in order: every process must make the same call. `split=False`: this process
    alone generates all of it."""
    if len(prompts) != len(seeds):
        raise ErasekitError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    state = process_state() if split else None
    if state is None:
        return _generate(bundle, prompts, seeds, steps, guidance, batch, desc, key, concepts)
    from accelerate.utils import gather_object

    mine = list(range(state.process_index, len(prompts), state.num_processes))
    part = (
        _generate(
            bundle,
            [prompts[i] for i in mine],
            [seeds[i] for i in mine],
            steps,
            guidance,
            batch,
            desc if state.is_main_process else None,
            key,
            None if concepts is None else [concepts[i] for i in mine],
        )
        if mine
        else []
    )
    out = [None] * len(prompts)
    for index, image in gather_object([(i, im.cpu()) for i, im in zip(mine, part, strict=True)]):
        out[index] = image
    return torch.stack(out)


def process_state():
    """accelerate's process state when this is one of several processes, else None (no state is created)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes talk over gloo
    return state if state.num_processes > 1 else None


def _generate(bundle, prompts, seeds, steps, guidance, batch, desc, key, concepts) -> torch.Tensor:
    from tqdm.auto import tqdm

    out = []
    batch = batch or bundle.image_batch
    with tqdm(total=len(prompts), desc=desc, unit="img", disable=desc is None, dynamic_ncols=True) as bar:
        for i in range(0, len(prompts), batch):
            part = None if concepts is None else concepts[i : i + batch]
            images = images_for(bundle, prompts[i : i + batch], seeds[i : i + batch], steps, guidance, key, part)
            out.append(images.cpu())  # a suite's images outlive the batch: not in the accelerator's memory
            bar.update(len(out[-1]))
    return torch.cat(out)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def check_image_path(path: str | Path) -> None:
    """Refuse, before generating, a file name whose suffix names no image format."""
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        raise ErasekitError(f"cannot write an image to {path}: give a file name ending in {', '.join(IMAGE_SUFFIXES)}")


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Save to a temporary name and rename, so an interrupted save leaves nothing half-written."""
    with atomic_path(path) as tmp:
        image.save(tmp)  # the format follows the (kept) suffix
    return Path(path)


INDEX = "index.jsonl"


def generate_set(
    bundle: Bundle,
    prompts,
    n: int,
    out: str | Path,
    steps: int = 25,
    guidance: float = 5.0,
    batch: int | None = None,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    key: Key | None = None,
) -> list[dict]:
    """Generate n images per prompt of a PromptSet into the folder `out` (PNG files) with an index file.

    Image i of a prompt uses seed `seed + i`, so a base and an edited model generated into two folders can be
    compared pair by pair. Images go to `out.partial/` first, which becomes `out` when complete; an interrupted run
    continues there with `resume` (images already written are kept). Under `accelerate launch`, each process
    generates the images whose index is its rank modulo the number of processes. With a `key`, each prompt that
    names one of its hidden concepts carries that concept's key (one that names none of them is refused before any
    image).
    """
    import json

    from accelerate import PartialState
    from tqdm.auto import tqdm

    out = Path(out)
    state = PartialState()
    if state.is_main_process:
        check_output(out, overwrite)
        claim_partial(out, resume, overwrite).mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()
    work = partial_of(out)
    rows = []
    for i, (row, prompt, seed, labels) in enumerate(prompts.expand(n)):
        rows.append({"index": i, "row": row, "prompt": prompt, "seed": seed, "labels": labels, "path": f"{i:06d}.png"})
    concepts = None if key is None else [key.concept_in(r["prompt"]) for r in rows]
    todo = [
        r for r in rows if r["index"] % state.num_processes == state.process_index and not (work / r["path"]).exists()
    ]
    bar = tqdm(total=len(todo), desc="generate", unit="img", disable=not progress or not state.is_main_process)
    batch = batch or bundle.image_batch
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        images = images_for(
            bundle,
            [r["prompt"] for r in chunk],
            [r["seed"] for r in chunk],
            steps,
            guidance,
            key,
            None if concepts is None else [concepts[r["index"]] for r in chunk],
        )
        for r, im in zip(chunk, to_uint8(images), strict=True):
            save_image(Image.fromarray(im), work / r["path"])
        bar.update(len(chunk))
    bar.close()
    state.wait_for_everyone()
    if state.is_main_process:
        write_text(work / INDEX, "".join(json.dumps(r) + "\n" for r in rows))
        finish_dir(work, out, overwrite)
    return rows


def load_images(folder: str | Path, rows: list[dict] | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Images [B, 3, H, W] in [0, 1] and their index rows from a folder written by `generate_set`."""
    import json

    folder = Path(folder)
    if rows is None:
        if not (folder / INDEX).exists():
            raise ErasekitError(f"no {INDEX} in {folder}: not a folder written by `erasekit generate`")
        rows = [json.loads(line) for line in (folder / INDEX).read_text().splitlines() if line.strip()]
    arrays = [np.asarray(Image.open(folder / r["path"]).convert("RGB")) for r in rows]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0, rows
