"""The layers of DESIGN.md: a module imports only from its own layer or below (function-local imports included)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "erasekit"
ALLOWED = {  # layer -> the layers it may import
    "core": {"core"},
    "world": {"core", "world"},
    "attacks": {"core", "attacks"},
    "methods": {"core", "attacks", "methods"},  # never eval or world: scorers and vocabularies are handed in
    "eval": {"core", "world", "attacks", "methods", "eval"},
    "report": {"core", "world", "attacks", "methods", "eval", "report"},
    "bench": {"core", "world", "attacks", "methods", "eval", "report", "bench"},  # beside the CLI, never importing it
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n.split(".")[1] for n in names if n.startswith("erasekit.") and n.count(".") >= 1}


@pytest.mark.parametrize("layer", list(ALLOWED))
def test_a_layer_imports_only_itself_and_the_layers_below(layer):
    wrong = {f"{p.relative_to(SRC)} imports erasekit.{name}" for p in (SRC / layer).rglob("*.py")
             for name in _imports(p) if name not in ALLOWED[layer] and name != "__init__"}
    assert not wrong, sorted(wrong)


def test_the_world_provides_its_vocabularies_through_the_entry_point():
    from erasekit.core.vocab import load_vocabulary

    vocab = load_vocabulary("world-objects")
    assert len(vocab.concepts) > 10 and "star" in vocab.concepts and "starburst" in vocab.group("star")
