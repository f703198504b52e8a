"""Erase, hide and recover: a method's run into an Edit folder, a key's recovery into a key file.

The run trains in `OUT.partial/` (its checkpoints, its loss log, its record), and `Edit.save` writes `OUT`
atomically with the loss log and the method's record files beside the edit; the partial folder is then removed.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.files import partial_of
from erasekit.core.loop import LOSS_LOG, RECORD, Run
from erasekit.methods.concepts import ConceptSet
from erasekit.models.bundle import Bundle
from erasekit.runs.record import claim


def plan(bundle: Bundle, spec, concepts: ConceptSet, config, clip=None):
    """Check the concepts and the family before any work; the scorer the method's run needs (or None)."""
    from erasekit.eval.judges import check_concepts, method_scorer

    check_concepts(bundle, concepts.erase + concepts.preserve + [concepts.target, concepts.anchor])
    spec.check_family(bundle.family)
    needs = getattr(config, "needs_vocabulary", None)
    if getattr(config, "vocab", "") or (needs is not None and needs(concepts)):
        from erasekit.core.vocab import load_vocabulary

        load_vocabulary(config.vocab)  # a method that searches a vocabulary: a missing one, before any work
    return method_scorer(spec, bundle, config, concepts, clip)


def erase(
    bundle: Bundle,
    spec,
    concepts: ConceptSet,
    config,
    out: str | Path,
    *,
    scorer=None,
    until=None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    fingerprint: str | None = None,
) -> Edit:
    """Run method `spec` on `bundle` into the Edit folder `out` (its partial folder claimed by `record.prepare`);
    `until`: a stopping rule (`Run.until`), as a bench budget sets."""
    out = Path(out)
    work = partial_of(out)
    record = {
        "method": spec.name,
        "config": asdict(config),
        "concepts": concepts.as_dict(),
        "model": bundle.source,
        "fingerprint": fingerprint or bundle.fingerprint(),
        "resolution": bundle.image_size,
    }
    claim(work, resume, record)
    edit = spec.erase(
        bundle, concepts, config, Run(work=work, resume=resume, progress=progress, scorer=scorer, until=until)
    )
    files = (*sorted(work.glob(f"*{LOSS_LOG}")), *sorted((work / RECORD).glob("*")))
    edit.save(out, overwrite=overwrite, files=files)
    shutil.rmtree(work, ignore_errors=True)
    return edit


def recover(
    base: Bundle,
    edit: Edit,
    concepts: list[str],
    config,
    out: str | Path,
    *,
    resume=False,
    overwrite=False,
    progress=True,
):
    """Re-derive a hidden concept's key (`methods.hide.recover`, Eq. 16) into the key file `out`."""
    from erasekit.eval.judges import check_concepts
    from erasekit.methods.hide import recover as recover_key

    if not concepts:
        raise ErasekitError("empty concept list: name the concept to recover (--concept star)")
    check_concepts(base, concepts)
    out = Path(out)
    work = partial_of(out)
    claim(
        work,
        resume,
        {"recover": concepts, "config": asdict(config), "edit": edit.fingerprint(), "fingerprint": base.fingerprint()},
    )
    key = recover_key(base, edit, concepts, config, Run(work=work, resume=resume, progress=progress))
    key.save(out, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    return key
