"""The layers of DESIGN.md: a module imports only from its own layer or below (function-local imports included)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "erasekit"
ALLOWED = {  # layer -> the layers it may import
    "core": {"core"},
    "models": {"core", "models"},
    "world": {"core", "models", "world"},
    "attacks": {"core", "models", "attacks"},
    "methods": {"core", "models", "attacks", "methods"},  # never eval or world: scorers and vocabularies handed in
    "eval": {"core", "models", "world", "attacks", "methods", "eval"},
    "report": {"core", "models", "world", "attacks", "methods", "eval", "report"},
    "runs": {"core", "models", "world", "attacks", "methods", "eval", "report", "runs"},
    "bench": {"core", "models", "world", "attacks", "methods", "eval", "report", "runs", "bench"},  # never the CLI
}
MODEL_CLASSES = ("diffusers", "transformers", "peft")  # only the model layer imports them (judges their own nets)
MODEL_INTERNALS = (".tokenizer", ".text_encoder", ".unet(", "last_hidden_state")


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
    wrong = {
        f"{p.relative_to(SRC)} imports erasekit.{name}"
        for p in (SRC / layer).rglob("*.py")
        for name in _imports(p)
        if name not in ALLOWED[layer] and name != "__init__"
    }
    assert not wrong, sorted(wrong)


def _libraries(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


def test_only_the_model_layer_imports_diffusion_model_libraries():
    """diffusers, transformers and peft: the model layer's; the judges' own networks (ResNet, CLIP) excepted."""
    wrong = {
        f"{p.relative_to(SRC)} imports {lib}"
        for p in SRC.rglob("*.py")
        if p.relative_to(SRC).parts[0] != "models" and p.relative_to(SRC) != Path("eval/judges.py")
        for lib in _libraries(p) & set(MODEL_CLASSES)
    }
    assert not wrong, sorted(wrong)


def test_nothing_outside_the_model_layer_reaches_into_a_models_components():
    """No .tokenizer, .text_encoder, .unet( or last_hidden_state above models/: the text side, the denoiser and the
    conditioning are the interface (the judges' own CLIP tokenizer excepted)."""
    wrong = {
        f"{p.relative_to(SRC)}:{i + 1} {needle}"
        for p in SRC.rglob("*.py")
        if p.relative_to(SRC).parts[0] != "models" and p.relative_to(SRC) != Path("eval/judges.py")
        for i, line in enumerate(p.read_text().splitlines())
        for needle in MODEL_INTERNALS
        if needle in line
    }
    assert not wrong, sorted(wrong)


def test_the_world_provides_its_vocabularies_through_the_entry_point():
    from erasekit.core.vocab import load_vocabulary

    vocab = load_vocabulary("world-objects")
    assert len(vocab.concepts) > 10 and "star" in vocab.concepts and "starburst" in vocab.group("star")


def test_only_the_world_and_its_registrations_ask_whether_a_model_is_the_miniature():
    """`native.owns` is asked in world/ and in eval/world_entries.py; everything else asks the registries."""
    allowed = {Path("eval/world_entries.py")}
    wrong = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.relative_to(SRC).parts[0] != "world"
        and p.relative_to(SRC) not in allowed
        and ("native.owns" in p.read_text() or "import owns" in p.read_text())
    ]
    assert not wrong, wrong
