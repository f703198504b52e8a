"""Evaluating a model, or an edit against its base: the one orchestration that `erasekit evaluate` and the demo call
(the benchmarks score models alone, with `eval.suites.evaluate`, whose typed result this builds on).

`evaluate_edit` evaluates the base once, then the edit applied to it on the same seeds, so that the paired metrics
(pixel distance, LPIPS, FID against the base's images) compare like with like; the result is typed
(`Evaluation`), and its `to_json()` is metrics.json (the edited model's result with `base_metrics` beside it).
"""

from __future__ import annotations

from dataclasses import dataclass

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.key import Key
from erasekit.eval.suites import (
    Judges,
    SuiteResult,
    SuiteRun,
    check_suite,
    evaluate,
    load_judges,
    suite_prompts,
    unlocked,
)
from erasekit.models.bundle import Bundle


@dataclass
class Evaluation:
    """A model on a suite (`base` None), or an edit (`edited`) beside the model it was made from (`base`); with a
    key, the hidden concepts' prompts generated with it (`keyed`, whose RSR-1/5 are also in `edited.metrics`)."""

    edited: SuiteResult
    base: SuiteResult | None = None
    keyed: SuiteResult | None = None

    def to_json(self) -> dict:
        out = self.edited.to_json()
        if self.base is not None:
            out["base_metrics"] = self.base.metrics
        return out


def evaluate_edit(
    base: Bundle,
    edit: Edit | None,
    suite: str,
    run: SuiteRun | None = None,
    erased: list[str] | None = None,
    preserved: list[str] | None = None,
    judges: Judges | None = None,
    force: bool = False,
    base_result: SuiteResult | None = None,
    label: str = "edited",
    word: Edit | None = None,
    key: Key | None = None,
) -> Evaluation:
    """`base` alone (no edit), or the edit applied to `base` beside `base` itself on the same suite and seeds.

    The erased and preserved concepts default to the edit's manifest. `base_result`: the base's result on this
    suite, when the caller already has it (several edits of one base); it must come from the same concepts.
    `label`: the edited model's progress bar. `word`: a learned word (a token edit: an attack's embedding) that the
    suite's prompts use; it must have been learned on the edited model or on the base, and both models get it, so
    that they read the same prompts. `key`: the key of a hidden model (the edit, or `base` itself when it is an
    exported hidden model): the erased concepts it unlocks are generated again with it, for RSR-1/5 (the erased
    concepts default to the key's)."""
    run = run if run is not None else SuiteRun()
    check_suite(suite, base)
    judges = judges or load_judges(suite, run, base.device)
    if word is not None:
        _check_word_used(word, suite, run)
    if edit is None:
        model = word.apply(base, force=force) if word is not None else base
        if key is not None:
            key.check(model)
            erased = key.concepts if erased is None else erased
            unlocked(suite, key, erased)  # before any image
        return _with_key(
            Evaluation(evaluate(model, suite, run, erased or [], preserved, judges=judges)), model, key, run, judges
        )
    edit.check(base, force=force)  # before any image
    edited = edit.apply(base, force=force)
    if key is not None:
        key.check(edited, edit)
    if word is not None:  # learned on the edited model or on the base: either serves both, width checked
        learned_on_base = base.matches(word.base.get("fingerprint"))
        edited = word.apply(edited, force=force or learned_on_base)
        base = word.apply(base, force=True)
    erased = list(edit.concepts.get("erase", [])) if erased is None else erased
    preserved = (edit.concepts.get("preserve") or None) if preserved is None else preserved
    if key is not None:
        unlocked(suite, key, erased)
    if base_result is None:
        base_result = evaluate(base, suite, run, erased, preserved, judges=judges, desc="base")
    edited_result = evaluate(
        edited, suite, run, erased, preserved, base_images=base_result.images, judges=judges, desc=label
    )
    return _with_key(Evaluation(edited_result, base_result), edited, key, run, judges)


def _with_key(ev: Evaluation, model: Bundle, key: Key | None, run: SuiteRun, judges: Judges) -> Evaluation:
    """The evaluation with the key's recovery rates: its concepts' prompts generated again, with the key."""
    if key is None:
        return ev
    result = ev.edited
    ev.keyed = evaluate(
        model, result.suite, run, result.erased, result.preserved, judges=judges, desc="with key", key=key
    )
    result.metrics.update(ev.keyed.metrics)
    for concept, figures in ev.keyed.per_concept.items():
        result.per_concept.setdefault(concept, {}).update(figures)
    return ev


def _check_word_used(word: Edit, suite: str, run: SuiteRun) -> None:
    """Refuse a learned word that none of the suite's prompts uses: it would change nothing."""
    prompts = suite_prompts(suite, run).prompts
    if not any(w in p for w in word.tensors for p in prompts):
        raise ErasekitError(
            f"no prompt of suite {suite} uses the learned word {', '.join(word.tensors)}; pass "
            "--prompts-file with prompts that do (an attack's prompts.csv)"
        )
