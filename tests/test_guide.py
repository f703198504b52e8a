"""guide=nearest: the target of UCE/TIME and the anchor of CA when the user names none."""

import pytest
import torch

from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.core.vocab import load_vocabulary
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.methods.guide import check_guide, guided
from erasekit.methods.search import candidates

WORDS = ["cat | kitty | tabby", "dog", "car", "tree", "house", "river", "apple", "chair"]


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(WORDS) + "\n")
    return str(path)


def _nearest(bundle, concept, words):
    target = bundle.encode_prompts([concept]).tokens.flatten(1)
    return min(words, key=lambda w: float((bundle.encode_prompts([w]).tokens.flatten(1) - target).norm()))


def test_nearest_leaves_out_every_erased_concept_and_their_synonyms(tiny, vocab_file):
    picked = guided(tiny, ConceptSet(["kitty", "dog"]), "nearest", vocab_file).target
    assert picked == _nearest(tiny, "kitty", ["car", "tree", "house", "river", "apple", "chair"])
    assert guided(tiny, ConceptSet(["kitty"]), "nearest", vocab_file).target == _nearest(
        tiny, "kitty", ["dog", "car", "tree", "house", "river", "apple", "chair"]
    )


def test_a_given_target_or_anchor_or_no_guide_is_left_alone(tiny, vocab_file):
    assert guided(tiny, ConceptSet(["cat"], target="car"), "nearest", vocab_file).target == "car"
    assert guided(tiny, ConceptSet(["cat"], anchor=""), "nearest", vocab_file).target == ""
    assert guided(tiny, ConceptSet(["cat"]), "", vocab_file).target == ""


def test_guide_options_are_checked():
    with pytest.raises(ErasekitError, match="vocab=world-objects"):
        check_guide("nearest", "")
    with pytest.raises(ErasekitError, match="unknown guide 'far'"):
        check_guide("far", "x")


def test_world_objects_vocabulary_is_the_objects_with_their_synonyms():
    from erasekit.world.captions import OBJECT_NAMES

    vocab = load_vocabulary("world-objects")
    assert set(vocab.concepts) == {n for names in OBJECT_NAMES.values() for n in names}
    assert vocab.group("crescent") == {"moon", "crescent"}


@pytest.mark.parametrize("method", ["uce", "time", "ca"])
def test_guided_run_equals_the_run_given_that_target(tiny, vocab_file, method):
    spec = registry.get(method)
    fast = {"iterations": 2, "batch": 1, "pool_size": 2} if method == "ca" else {}
    near = candidates(tiny, "cat", load_vocabulary(vocab_file), k_closest=1)[0][0]
    guided_edit = spec.erase(
        tiny,
        ConceptSet(["cat"]),
        registry.build_config(spec, values={**fast, "guide": "nearest", "vocab": vocab_file}),
        Run(progress=False),
    )
    given = spec.erase(
        tiny, ConceptSet(["cat"], target=near), registry.build_config(spec, values=fast), Run(progress=False)
    )
    empty = spec.erase(tiny, ConceptSet(["cat"]), registry.build_config(spec, values=fast), Run(progress=False))
    assert guided_edit.concepts["target"] == near
    assert all(torch.equal(guided_edit.tensors[k], given.tensors[k]) for k in given.tensors)
    assert any(not torch.equal(guided_edit.tensors[k], empty.tensors[k]) for k in empty.tensors)


def test_the_miniature_presets_use_the_nearest_object():
    for method in ("uce", "time", "ca"):
        config = registry.build_config(registry.get(method), preset="mini")
        assert (config.guide, config.vocab) == ("nearest", "world-objects")
