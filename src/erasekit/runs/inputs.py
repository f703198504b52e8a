"""What a request names, read and checked against each other before any work: the base model, the edit applied to
it, a learned word, a hidden concept's key, a folder of reference images."""

from __future__ import annotations

from pathlib import Path

from erasekit.core.edit import Edit, load_embedding
from erasekit.core.errors import ErasekitError
from erasekit.models.bundle import Bundle


def edit_and_base(edit_path, source, force: bool = False, resolution: int | None = None) -> tuple[Edit | None, Bundle]:
    """(Edit or None, base Bundle): the edit read and checked against the base (its recorded source unless a model
    is named); the base draws `resolution` px images (None: its own size)."""
    from erasekit.models.load import load_bundle

    edit = Edit.load(edit_path) if edit_path is not None else None
    base = load_bundle(source or (edit.base["source"] if edit is not None else "mini")).at_resolution(resolution)
    if edit is not None:
        edit.check(base, force=force)
    return edit, base


def model_with(source, edit_path, force: bool = False, embedding=None, resolution: int | None = None) -> Bundle:
    """The model, with an edit applied when one is given, and then a learned word (an attack's embedding: a token
    edit folder or a textual-inversion file), checked against the model it was learned on."""
    word = load_embedding(embedding) if embedding is not None else None
    edit, base = edit_and_base(edit_path, source, force, resolution)
    model = base if edit is None else edit.apply(base, force=force)
    return model if word is None else word.apply(model, force=force)


def key_for(key_path, model: Bundle, edit_path, prompts):
    """The key (or None), checked against the model it must unlock (the edit it was made with, or an exported
    hidden model) and against the prompts, each of which must name one of its concepts."""
    if key_path is None:
        return None
    from erasekit.core.key import Key, check_room

    key = Key.load(key_path)
    key.check(model, Edit.load(edit_path) if edit_path is not None else None)
    for prompt in prompts:
        key.concept_in(prompt)
    check_room(model, prompts, key.tokens)
    return key


def image_folder(folder):
    """The images of a folder (PNG/JPEG...), [B, 3, H, W] in [0, 1]; every one must have the same size."""
    from erasekit.eval.generate import IMAGE_SUFFIXES, load_images

    paths = (
        sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if Path(folder).is_dir() else []
    )
    if not paths:
        raise ErasekitError(f"no images in {folder} (give a folder of {', '.join(IMAGE_SUFFIXES)} files)")
    try:
        return load_images(folder, [{"path": p.name} for p in paths])[0]
    except ValueError:  # np.stack of arrays of different shapes
        raise ErasekitError(f"the images in {folder} differ in size; give images of one size") from None
