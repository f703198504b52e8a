"""The model-diff inspector (talk Eq. 19, issue 17): blind identification on the miniature, Eq. 19's terms, the
Gumbel search, LoRA edits and two model sources, and bad input."""

import csv
import json

import pytest
import torch

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run
from erasekit.core.vocab import grouped, load_vocabulary
from erasekit.eval.inspect import InspectConfig, inspect_models, probe_latents
from erasekit.methods import registry
from erasekit.methods.concepts import ConceptSet
from erasekit.models.load import load_bundle
from erasekit.models.lora import add_adapters, lora_tensors
from test_user_facing import assert_one_line_error as one_line_error
from test_user_facing import run as run_cli

FAST = {"probes": 4, "steps": 4}


@pytest.fixture(scope="module")
def mini():
    return load_bundle("mini")


@pytest.fixture(scope="module")
def uce_star(mini):
    spec = registry.get("uce")
    edit = spec.erase(mini, ConceptSet(["star"]), registry.build_config(spec, preset="mini"), Run(progress=False))
    return edit


def test_blind_inspection_names_the_erased_object_first_and_an_unchanged_model_changes_nothing(mini, uce_star):
    vocab = load_vocabulary("world")
    ins = inspect_models(mini, uce_star.apply(mini), vocab, InspectConfig(**FAST))
    assert set(ins.top(2)) == {"star", "starburst"}, ins.top(5)
    assert ins.searched == "exhaustive" and ins.vocabulary_size == len(vocab.concepts)
    assert [r.score for r in ins.rows] == sorted((r.score for r in ins.rows), reverse=True)
    same = inspect_models(mini, mini, vocab, InspectConfig(**FAST))
    assert max(r.score for r in same.rows) == 0.0


def test_eq_19_terms_with_a_known_c_e(mini, uce_star):
    edited = uce_star.apply(mini)
    vocab = grouped([["circle"], ["star"], ["red"]])
    config = InspectConfig(lam=2.0, **FAST)
    ins = inspect_models(mini, edited, vocab, config, erased="star")
    z, t = probe_latents(mini, config)
    with torch.no_grad():
        ce = edited.eps(z, t, edited.encode_prompts(["star"]).expand(len(z)))
        c = mini.encode_prompts(["circle"]).expand(len(z))
        base_c, edit_c = mini.eps(z, t, c), edited.eps(z, t, c)
    row = next(r for r in ins.rows if r.concept == "circle")
    assert row.l1 == pytest.approx(float((ce - base_c).pow(2).mean()), rel=1e-4)
    assert row.l2 == pytest.approx(float((edit_c - base_c).pow(2).mean()), rel=1e-4)
    assert all(r.score == pytest.approx(r.l1 + 2.0 * r.l2) for r in ins.rows)
    blind = [inspect_models(mini, edited, vocab, InspectConfig(lam=lam, **FAST)).top(3) for lam in (0.0, 5.0)]
    assert blind[0] == blind[1]  # blind: each concept is its own c_e, so λ only scales the ranking


def test_the_gumbel_search_shortlists_the_changed_concepts(mini, uce_star):
    config = InspectConfig(search="gumbel", gumbel_iterations=30, shortlist=4, **FAST)
    ins = inspect_models(mini, uce_star.apply(mini), load_vocabulary("world"), config)
    assert ins.searched == "gumbel" and len(ins.rows) == 4
    assert {"star", "starburst"} & set(ins.top(2)), ins.top(4)


def test_a_lora_edit_is_inspected_as_the_weights_it_merges_into(tiny):
    student = tiny.clone(("unet",))
    layers = add_adapters(student, 2, ["attn2.to_v"], seed=0)
    with torch.no_grad():
        for layer in layers.values():
            layer.lora_B["default"].weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    edit = Edit.from_changes(tiny, lora_tensors(student, layers), "test", {}, {"erase": ["apple"]}, kind="lora")
    vocab = grouped([["apple"], ["pear"]])
    ins = inspect_models(tiny, edit.apply(tiny), vocab, InspectConfig(**FAST))
    merged = tiny.clone(("unet",))  # W + B A by hand, not through Edit.apply
    weights = dict(merged.denoiser.named_parameters())
    with torch.no_grad():
        for name, layer in layers.items():
            weights[f"{name}.weight"] += layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    again = inspect_models(tiny, merged, vocab, InspectConfig(**FAST))
    assert min(r.l2 for r in ins.rows) > 0
    assert [r.concept for r in ins.rows] == [r.concept for r in again.rows]
    assert [r.l2 for r in ins.rows] == pytest.approx([r.l2 for r in again.rows], rel=1e-4)


def test_cli_inspect_writes_the_table_and_report_and_compares_two_model_sources(
    mini, uce_star, tiny, tiny_folder, tmp_path
):
    uce_star.save(tmp_path / "run")
    out = tmp_path / "ins"
    result = run_cli(
        "inspect", "mini", "--edit", tmp_path / "run", "--probes", 4, "--top", 2, "--n", 2, "--quiet", "--out", out
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert {rows[0]["concept"], rows[1]["concept"]} == {"star", "starburst"}
    assert float(rows[0]["judge_delta"]) > 0.5 and rows[5]["judge_delta"] == ""  # judged: the shown ones only
    assert json.loads((out / "inspect.json").read_text())["search"] == "exhaustive"
    html = (out / "report.html").read_text()
    assert html.count("<img") == 4 and "judge δ" in html
    (tmp_path / "words.txt").write_text("apple\npear | pears\n")
    result = run_cli(
        "inspect",
        tiny_folder,
        "--against",
        tiny_folder,
        "--vocab",
        tmp_path / "words.txt",
        "--probes",
        2,
        "--top",
        1,
        "--n",
        1,
        "--quiet",
        "--out",
        tmp_path / "same",
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "same" / "table.csv").open()))
    assert len(rows) == 3 and all(float(r["score"]) == 0 for r in rows)


def test_bad_input_is_one_clear_error(tiny, tiny_folder, tmp_path):
    one_line_error(run_cli("inspect", tiny_folder, "--out", tmp_path / "a"), "give --edit RUN")
    one_line_error(
        run_cli("inspect", tiny_folder, "--against", tiny_folder, "--out", tmp_path / "b"), "give --vocab FILE"
    )
    sampler = registry.get("negative")
    edit = sampler.erase(tiny, ConceptSet(["apple"]), registry.build_config(sampler), Run(progress=False))
    edit.save(tmp_path / "neg")
    one_line_error(
        run_cli("inspect", "--edit", tmp_path / "neg", "--vocab", "world", "--out", tmp_path / "c"), "sampler edit"
    )
    for path in ("a", "b", "c"):
        assert not (tmp_path / path).exists()
    with pytest.raises(ErasekitError, match="search"):
        inspect_models(tiny, tiny, grouped([["apple"]]), InspectConfig(search="nope"))
    with pytest.raises(ErasekitError, match="empty c_e"):
        inspect_models(tiny, tiny, grouped([["apple"]]), InspectConfig(**FAST), erased=" ")
