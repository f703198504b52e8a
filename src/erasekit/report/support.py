"""The support matrix: which method and which attack runs on which model family, generated from the registries
(`erasekit methods`, `erasekit attacks` and the docs print it; a test keeps the README's copy current)."""

from __future__ import annotations

from erasekit.attacks import registry as attacks
from erasekit.core.registry import FAMILIES
from erasekit.methods import registry as methods


def matrix(specs, kind: str) -> str:
    """A markdown table: one row per entry, one column per family, and why an entry leaves a family out."""
    head = f"| {kind} | " + " | ".join(FAMILIES) + " | not on the others because |"
    rows = [head, "|" + "---|" * (len(FAMILIES) + 2)]
    for spec in specs:
        marks = " | ".join("yes" if f in spec.families else "–" for f in FAMILIES)
        rows.append(f"| {spec.name} | {marks} | {spec.why or ''} |")
    return "\n".join(rows)


def support_tables() -> str:
    """The methods × families and attacks × families tables, one after the other."""
    return matrix(methods.available(), "method") + "\n\n" + matrix(attacks.available(), "attack")
