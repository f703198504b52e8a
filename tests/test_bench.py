"""`erasekit bench`: the spec, the cells (a rerun computes nothing, a killed run only what was missing), shards
merging to the unsharded table, the budget to a target ESR, KID and its interval, the report."""

import csv
import io
import shutil
import subprocess

import numpy as np
import pytest
import torch

from erasekit.bench import collect, run
from erasekit.bench import compute as bench_run
from erasekit.bench.spec import parse_spec
from erasekit.eval import metrics as M
from test_user_facing import assert_one_line_error
from test_user_facing import run as cli

SPEC = """
name: unit
model: mini
methods:
  - {name: esd, set: {iterations: 2, batch: 1, ddim_steps: 2}}
  - {name: uce, label: uce+P, preserve: kept}
concepts:
  - {erase: "star,moon", label: two}
suites:
  erasure: {n: 1, steps: 2}
  general: {n: 1, steps: 2}
attacks: {names: [paraphrase], n: 1, limit: 1, steps: 2}
"""


def _write(tmp_path, text=SPEC, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _without_seconds(path):
    rows = list(csv.reader(io.StringIO(path.read_text())))
    keep = [i for i, h in enumerate(rows[0]) if not h.endswith("seconds")]
    return [[r[i] for i in keep] for r in rows]


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    spec = _write(tmp)
    written = run(spec, tmp / "all", progress=False)
    return spec, tmp / "all", written


def test_a_run_writes_the_table_with_intervals_and_the_report(unsharded):
    _, out, written = unsharded
    assert [p.name for p in written] == ["table.csv", "table.md", "report.html"]
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    assert [(r["method"], r["concept"], r["erased"]) for r in rows] == [
        ("none", "two", "star+moon"),
        ("esd", "two", "star+moon"),
        ("uce+P", "two", "star+moon"),
    ]
    for r in rows:
        assert float(r["esr@1_lo"]) <= float(r["esr@1"]) <= float(r["esr@1_hi"])
        assert r["esr@1_n"] == "2" and r["psr@1_n"] == "8"
        assert float(r["kid_x1e3_lo"]) <= float(r["kid_x1e3_hi"]) and float(r["fjd_lo"]) <= float(r["fjd_hi"])
        assert r["general_n"] == "100" and int(r["asr_paraphrase_n"]) > 0
        calibrated = float(r["asr_paraphrase_cal"])  # the original prompt kept as a candidate
        assert calibrated >= max(float(r["asr_paraphrase"]), float(r["pre_attack"]))
        assert r["asr_any"] == r["asr_paraphrase_cal"] and r["asr_any_n"] == r["asr_paraphrase_cal_n"]  # one attack
    assert rows[1]["iterations"] == "2" and rows[2]["iterations"] == ""
    assert rows[2]["esr@1"] == "100.00" and rows[2]["asr_paraphrase"] == "0.00"  # UCE erases star and moon
    md = (out / "table.md").read_text()
    assert "split-half" in md and "n=2" in md and "n=8" in md


def test_a_rerun_computes_no_cell(unsharded, monkeypatch):
    spec, out, _ = unsharded
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    for name in ("erasure", "suite_cell", "general_cell", "attack_cells"):
        monkeypatch.setattr(bench_run, name, lambda *a, **k: pytest.fail("a finished cell was computed again"))
    run(spec, out, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()} == before


def test_a_killed_run_computes_only_what_was_missing(tmp_path, monkeypatch):
    spec = _write(
        tmp_path,
        """
methods: [{name: esd, set: {iterations: 2, batch: 1, ddim_steps: 2}}, {name: uce, label: u}]
concepts: [star]
suites: {erasure: {n: 1, steps: 2}}
""",
    )
    out = tmp_path / "killed"
    real_suite, real_erase = bench_run.suite_cell, bench_run.erasure
    suites, erasures = [], []

    def dies_in_the_second_row(ctx, row, model, key):
        suites.append(row.label)
        if len(suites) == 2:
            raise KeyboardInterrupt  # killed after ESD's edit was made, before its suite was
        return real_suite(ctx, row, model, key)

    monkeypatch.setattr(bench_run, "suite_cell", dies_in_the_second_row)
    with pytest.raises(KeyboardInterrupt):
        run(spec, out, progress=False)
    edit = next((out / "edits").glob("erase-*"))
    made = (edit / "manifest.json").stat().st_mtime_ns
    suites.clear()
    monkeypatch.setattr(bench_run, "suite_cell", lambda *a: suites.append(a[1].label) or real_suite(*a))
    monkeypatch.setattr(bench_run, "erasure", lambda *a: erasures.append(a[1].label) or real_erase(*a))
    run(spec, out, progress=False)
    assert suites == ["esd | star", "u | star"]  # the row that was cut, then the one never started
    assert (edit / "manifest.json").stat().st_mtime_ns == made  # its edit was read back, not trained again
    assert (out / "table.csv").exists()


def test_two_shards_merge_to_the_unsharded_table(unsharded, tmp_path):
    spec, full, _ = unsharded
    for i in (1, 2):  # two nodes, each with its own folder
        assert run(spec, tmp_path / f"node{i}", shard=f"{i}/2", progress=False) == []
        assert not (tmp_path / f"node{i}" / "table.csv").exists()
    with pytest.raises(Exception, match="cell\\(s\\) are missing"):
        collect(tmp_path / "node1", progress=False)
    apart = tmp_path / "apart"  # their folders copied into one: --collect finds them inside it
    for i in (1, 2):
        shutil.copytree(tmp_path / f"node{i}", apart / f"node{i}")
    shutil.copyfile(apart / "node1" / "spec.yaml", apart / "spec.yaml")
    collect(apart, progress=False)
    assert _without_seconds(apart / "table.csv") == _without_seconds(full / "table.csv")
    assert (apart / "table.md").read_text().split("| s (method) |")[0] == (full / "table.md").read_text().split(
        "| s (method) |"
    )[0]
    shared = tmp_path / "shared"  # shards that wrote into one shared folder
    shutil.copytree(tmp_path / "node1", shared)
    shutil.copytree(tmp_path / "node2" / "cells", shared / "cells", dirs_exist_ok=True)
    collect(shared, progress=False)
    assert _without_seconds(shared / "table.csv") == _without_seconds(full / "table.csv")


def test_the_report_renders_in_headless_chromium(unsharded, tmp_path):
    from test_eval_pipeline import chromium

    _, out, _ = unsharded
    url = (out / "report.html").as_uri()
    dom = chromium(url, tmp_path / "profile", "--dump-dom")
    assert 'id="table"' in dom and 'class="sortable"' in dom and "ESR-1" in dom
    assert "Pareto front" in dom and "Attack success rate" in dom
    assert dom.count("data:image/png") >= 2 + 3  # the two plots and the three rows' images
    shot = tmp_path / "shot.png"
    chromium(url, tmp_path / "profile", "--window-size=1200,1600", f"--screenshot={shot}")
    from PIL import Image

    assert np.asarray(Image.open(shot).convert("L"), dtype=float).std() > 10


def test_budget_stops_training_once_the_target_is_reached(tmp_path):
    spec = _write(
        tmp_path,
        """
methods: [{name: esd, set: {batch: 1, ddim_steps: 2}, budget: {esr: 0, every: 2, max: 50, n: 1}}]
concepts: [star]
suites: {erasure: {n: 1, steps: 2}}
""",
    )
    run(spec, tmp_path / "out", progress=False)
    import json

    cell = json.loads(next((tmp_path / "out" / "cells").glob("erase-*.json")).read_text())
    assert cell["iterations"] == 2 and cell["reached"] is True and cell["checks"][0][0] == 2
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "table.csv").read_text())))
    assert (rows[1]["method"], rows[1]["iterations"], rows[1]["reached"]) == ("esd", "2", "yes")
    assert "2 ✓" in (tmp_path / "out" / "table.md").read_text()


def test_a_budget_checks_the_captions_or_the_suites_own_prompts(mini, tmp_path):
    from erasekit.bench.cells import Cells

    spec = parse_spec(
        "budget: {esr: 90}\nmethods: [esd, {name: ap, budget: {prompts: suite, n: 3}}]\nconcepts: [star, mark]\n"
    )
    default, suite = (m.budget for m in spec.methods)
    # the captions check keeps the key its cells were computed under before `prompts` existed
    assert default.as_dict() == {"esr": 90.0, "every": 20, "max": 400, "n": 8}
    assert suite.as_dict()["prompts"] == "suite"
    ctx = bench_run.Context(spec, mini, Cells(tmp_path))
    assert bench_run._check_images(ctx, "star", 3, "suite") == (["a star"] * 3, [20000, 20001, 20002])
    captions, _ = bench_run._check_images(ctx, "star", 3)
    assert captions == ["star", "a star", "a photo of a star"]
    implicit, _ = bench_run._check_images(
        ctx, "mark", 4, "suite"
    )  # world-implicit's phrasings, spread over its objects
    assert len(set(implicit)) == 4 and not any("mark" in p for p in implicit)


@pytest.mark.parametrize(
    "method,values",
    [
        ("esd", {"batch": 1, "ddim_steps": 2}),
        ("target", {"batch": 1, "ddim_steps": 2}),
        ("ap", {"batch": 1, "ddim_steps": 2}),
        ("hide", {"batch": 1, "ddim_steps": 2}),
        ("ca", {"batch": 1, "pool_size": 2}),
    ],
)
def test_every_method_that_trains_honours_run_until(method, values):
    from erasekit.core.loop import Run
    from erasekit.methods import registry
    from erasekit.methods.concepts import ConceptSet
    from erasekit.models.load import load_bundle

    base = load_bundle("mini")
    spec = registry.get(method)
    config = registry.build_config(spec, values={**values, "iterations": 20}, preset="mini")
    asked = []

    def until(step, params):
        asked.append(step)
        assert params and all(isinstance(p, torch.Tensor) for p in params.values())
        return step == 2

    edit = spec.erase(base, ConceptSet(["star"]), config, Run(progress=False, until=until))
    assert asked == [0, 1, 2] and edit.metrics["iterations_run"] == 3


def test_kid_is_unbiased_and_its_interval_holds_it():
    rng = np.random.default_rng(0)
    same = [M.kid(rng.normal(size=(50, 8)), rng.normal(size=(50, 8))) for _ in range(40)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))  # zero in expectation at n = 50
    a, b = rng.normal(size=(60, 8)), rng.normal(0.7, 1, size=(60, 8))
    x, y = a @ a.T / 8 + 1, b @ b.T / 8 + 1  # the definition, written out
    k_aa, k_bb, k_ab = x**3, y**3, (a @ b.T / 8 + 1) ** 3
    direct = (k_aa.sum() - np.trace(k_aa)) / (60 * 59) + (k_bb.sum() - np.trace(k_bb)) / (60 * 59) - 2 * k_ab.mean()
    assert M.kid(a, b) == pytest.approx(direct) and M.kid(a, b) > 0.1
    low, high = M.bootstrap(M.kid, a, b, resamples=50, seed=1)
    assert low < M.kid(a, b) < high and [low, high] == M.bootstrap(M.kid, a, b, resamples=50, seed=1)
    low, high = M.bootstrap(M.frechet_distance, a, b, resamples=50, seed=1)
    assert low < M.frechet_distance(a, b) < high


def test_pareto_front():
    from erasekit.report.plots import pareto_front

    points = [(90, 50), (95, 40), (80, 60), (85, 45), (95, 40), (70, 55)]
    assert pareto_front(points) == [2, 0, 1, 4]  # a point equal to a front point is on the front too
    assert pareto_front([(1, 1), (2, 2)]) == [1]


@pytest.mark.parametrize(
    "text,message",
    [
        ("methods: [esd]\n", "'concepts' must be a non-empty list"),
        ("methods: [nosuch]\nconcepts: [star]\n", "unknown method 'nosuch'"),
        ("methods: [esd]\nconcepts: [star]\ncolour: red\n", "unknown key(s) in"),
        ("methods: [{name: esd, set: {nosuch: 1}}]\nconcepts: [star]\n", "methods[0].set"),
        ("methods: [{name: uce, budget: {esr: 90}}]\nconcepts: [star]\n", "does not train for iterations"),
        ("methods: [esd, esd]\nconcepts: [star]\n", "used twice"),
        ("methods: [esd]\nconcepts: [star]\nattacks: {names: [nosuch]}\n", "unknown attack 'nosuch'"),
        ("methods: [esd]\nconcepts: [star]\nbudget: {esr: 120}\n", "rate in percent"),
        ("methods: [esd]\nconcepts: [star]\nbudget: {every: 0}\n", "budget.every must be a positive"),
        ("methods: [esd]\nconcepts: [star]\nbudget: {prompts: all}\n", "budget.prompts is one of captions, suite"),
        ("methods: [esd]\nconcepts: [star]\nattacks: {names: [p4d], set: {inversion: {}}}\n", "does not run"),
        ("methods: [esd]\nconcepts: [star]\nsuites: {erasure: {n: 0}}\n", "suites.erasure.n must be a positive"),
        ("methods: [esd\n", "not valid YAML"),
    ],
)
def test_a_bad_spec_is_one_line_before_any_work(tmp_path, text, message):
    result = cli("bench", _write(tmp_path, text), "--out", tmp_path / "out")
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "concepts,message",
    [
        ("[purple]", "cannot score the erasure of purple"),
        ("['star,dots']", "mixes object, style"),
        ("[church]", "cannot score the erasure of church"),  # an Imagenette class: ResNet's, not the world's
        ("[nosuchthing]", "cannot score the erasure of nosuchthing"),
    ],
)
def test_concepts_the_world_cannot_score_are_refused(tmp_path, concepts, message):
    result = cli("bench", _write(tmp_path, f"methods: [esd]\nconcepts: {concepts}\n"), "--out", tmp_path / "out")
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()


def test_cli_usage_errors(tmp_path):
    assert_one_line_error(cli("bench", "--out", tmp_path / "o"), "needs a SPEC file")
    assert_one_line_error(cli("bench", tmp_path / "missing.yaml", "--out", tmp_path / "o"), "bench spec not found")
    assert_one_line_error(
        cli("bench", _write(tmp_path, SPEC), "--out", tmp_path / "o", "--shard", "3/2"), "i must be between 1 and n"
    )
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("bench", "--collect", tmp_path / "empty"), "is not a bench folder")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert_one_line_error(cli("bench", _write(tmp_path, SPEC), "--out", tmp_path / "busy"), "not a bench folder")


def test_spec_rows_and_splits():
    spec = parse_spec("methods: [esd, {name: uce, label: u}]\nconcepts: [{splits: seeds}, star]\n")
    rows = spec.rows()
    assert [r.method.label for r in rows][:5] == ["none"] * 5 and len(rows) == 15
    assert [r.concept for r in rows[:5]] == ["split1", "split2", "split3", "split4", "star"]
    assert all(len(r.erase) == 5 for r in rows[:4])


def test_generation_is_split_over_the_processes_of_an_accelerate_launch(tiny_folder, tmp_path):
    """Each of two processes (torchrun, as `accelerate launch` starts them) generates every other image; both get
    the whole batch, equal to one process's."""
    import json
    import os
    import sys

    script = tmp_path / "gen.py"
    script.write_text(f"""
import json, sys
import torch
from safetensors.torch import save_file
from erasekit.models.load import load_bundle
from erasekit.eval import generate

bundle = load_bundle({str(tiny_folder)!r})
made = []
real = generate._generate
generate._generate = lambda b, prompts, *a: made.append(len(prompts)) or real(b, prompts, *a)
images = generate.generate_batched(bundle, ["a star", "a moon"] * 3, list(range(6)), steps=2, batch=2)
state = generate.process_state()
save_file({{"images": images.contiguous()}}, sys.argv[1] + f"/images{{state.process_index}}.safetensors")
json.dump({{"processes": state.num_processes, "made": made}}, open(sys.argv[1] + f"/made{{state.process_index}}.json", "w"))
""")
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launch, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    from safetensors.torch import load_file

    from erasekit.eval.generate import generate_batched
    from erasekit.models.load import load_bundle

    alone = generate_batched(load_bundle(tiny_folder), ["a star", "a moon"] * 3, list(range(6)), steps=2, batch=2)
    for rank in (0, 1):
        made = json.loads((tmp_path / f"made{rank}.json").read_text())
        assert made == {"processes": 2, "made": [3]}  # its half of the six images, no more
        assert torch.allclose(load_file(str(tmp_path / f"images{rank}.safetensors"))["images"], alone, atol=1e-5)
