"""The bench on a real model's path (issue 32): the shipped `smoke-tiny.yaml` on the tiny SD-1 model with NudeNet
(its real weights), a random ResNet-50 and a random CLIP, on the data sets by name; the same table layout as on the
miniature, provenance of every judge in the cells, a rerun that recomputes nothing, and bad input refused before any
work. Also: the SD-1.4 specs parse and validate, and the judge/suite/domain registries take entry points."""

import csv
import io
import json
from pathlib import Path

import pytest

from erasekit.bench import compute as bench_run
from erasekit.bench import run
from erasekit.bench.spec import load_spec
from erasekit.core.errors import ErasekitError
from erasekit.eval.judges import IMAGENETTE
from test_user_facing import assert_one_line_error
from test_user_facing import run as cli

SPECS = Path(__file__).parents[1] / "benchmarks" / "specs"


@pytest.fixture(scope="module")
def judges(tmp_path_factory):
    from erasekit.eval.judges import write_random_judges

    out = tmp_path_factory.mktemp("judges")
    write_random_judges(out)
    return out


@pytest.fixture(scope="module")
def smoke_tiny(judges, prompt_data, tmp_path_factory):
    import dataclasses

    from erasekit.core import datasets

    mp = pytest.MonkeyPatch()
    mp.setenv("ERASEKIT_JUDGES", str(judges))
    mp.setenv("ERASEKIT_DATA", str(prompt_data[0]))
    folder, real = prompt_data
    for name, data in list(datasets.DATASETS.items()):  # the small files stand in for the data sets they mimic
        if not real and (folder / data.file).is_file():
            fixture = dataclasses.replace(data, sha256=datasets.sha256(folder / data.file))
            mp.setitem(datasets.DATASETS, name, fixture)
    out = tmp_path_factory.mktemp("bench") / "smoke-tiny"
    written = run(SPECS / "smoke-tiny.yaml", out, progress=False)
    yield out, written, mp
    mp.undo()


def test_smoke_tiny_writes_the_table_of_the_miniature_layout(smoke_tiny, prompt_data):
    out, written, _ = smoke_tiny
    assert {p.name for p in written} == {"table.csv", "table.md", "report.html"}
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    assert [(r["method"], r["concept"]) for r in rows] == [
        (m, c) for m in ("none", "esd", "uce") for c in ("nudity", "church")
    ]
    for r in rows:  # every rate with its interval and n; the nudity rows NER@tau, the class rows ESR/PSR
        rates = ("ner@0.3", "ner@0.8") if r["concept"] == "nudity" else ("esr@1", "psr@5")
        for name in rates:
            assert r[name] and r[f"{name}_lo"] and r[f"{name}_hi"] and int(r[f"{name}_n"]) > 0
        assert r["asr_seeds"] and r["clip_score"] and r["fjd"] and r["kid_x1e3"]
    church = next(r for r in rows if r["concept"] == "church")
    assert int(church["esr@1_n"]) == 4 and int(church["psr@1_n"]) == 36  # limit: 4 prompts of each class
    nudity = next(r for r in rows if r["concept"] == "nudity")
    assert int(nudity["ner@0.3_n"]) == (4 if prompt_data[1] else 3)  # I2P's sexual prompts, the first 4 (3 here)
    assert "NER@0.3" in (out / "table.md").read_text()


def test_smoke_tiny_cells_record_their_judges(smoke_tiny):
    out, _, _ = smoke_tiny
    cells = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    i2p = next(c for c in cells if c.get("suite") == "i2p")
    nudenet = i2p["judges"]["nudenet"]
    assert nudenet["version"] and "FEMALE_BREAST_EXPOSED" in nudenet["exposed"] and nudenet["thresholds"][0] == 0.3
    imagenette = next(c for c in cells if c.get("suite") == "imagenette")
    assert imagenette["judges"]["resnet-50"]["sha256"] and imagenette["judges"]["resnet-50"]["architecture"]
    general = next(c for c in cells if "features" in c)
    assert general["features"] == "clip" and general["judges"]["clip"]["sha256"]


def test_smoke_tiny_rerun_computes_nothing(smoke_tiny, monkeypatch):
    out, _, _ = smoke_tiny
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    for name in ("erasure", "suite_cell", "general_cell", "attack_cells"):
        monkeypatch.setattr(bench_run, name, lambda *a, **k: pytest.fail("a finished cell was computed again"))
    run(SPECS / "smoke-tiny.yaml", out, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()} == before


TINY = "model: tiny\nmethods: [uce]\nsuites: {erasure: {n: 1, steps: 2, limit: 1}}\n"


@pytest.mark.parametrize(
    "extra,message",
    [
        ("concepts: [church]\njudges: {resnet: /nonexistent/resnet}\n", "ResNet-50 weights not found"),
        ("concepts: [chair]\n", "cannot score the erasure of chair"),  # no domain has a judge for it
        ("concepts: [star]\n", "cannot score the erasure of star"),  # the world's concept, off the miniature
        ("concepts: [star]\ndomain: world-object\n", "domain world-object does not decide 'star' on tiny"),
        ("concepts: [church]\ndomain: nosuch\n", "unknown domain 'nosuch'"),
        ("concepts: [church]\ndata_dir: /nonexistent/data\n", "data set imagenette"),
        ("concepts: [French Horn]\n", "not French Horn (write it as the suite does)"),
        ('concepts: [church]\njudges: {resnet: "${NO_SUCH_VARIABLE}/r"}\n', "NO_SUCH_VARIABLE, which is not set"),
    ],
)
def test_bad_real_model_specs_are_one_line_before_any_work(tmp_path, extra, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(TINY + extra)
    assert_one_line_error(cli("bench", spec, "--out", tmp_path / "out"), message)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def sd14_env(judges, tmp_path_factory):
    """What the SD-1.4 specs name, at toy size: the judges' folders and files, a vocabulary file."""
    import shutil

    import torch

    folder = tmp_path_factory.mktemp("sd14")
    shutil.copytree(judges / "resnet-50", folder / "resnet-50")
    shutil.copytree(judges / "clip", folder / "clip-vit-large-patch14")
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(folder / "inception-2015-12-05.pt"))
    (folder / "vocab.txt").write_text("church\nfrench horn\ndog\ncat\nportrait\n")
    return folder


@pytest.mark.parametrize("name", ["sd14-imagenette", "sd14-i2p", "sd14-darkminer-table1"])
def test_the_sd14_specs_parse_and_validate(name, smoke_tiny, sd14_env, tiny, tmp_path, monkeypatch):
    """Each SD-1.4 spec parses with the papers' settings, and every row passes the bench's checks before any work
    (its concepts' domains and suites, the data sets, every judge's weights, every method's config and scorer) on the
    tiny model in SD-1.4's place, with toy judges under the names the spec gives."""
    import dataclasses

    from erasekit.bench.cells import Cells

    monkeypatch.setenv("ERASEKIT_JUDGES", str(sd14_env))
    monkeypatch.setenv("ERASEKIT_VOCAB", str(sd14_env / "vocab.txt"))
    spec = load_spec(SPECS / f"{name}.yaml")
    assert spec.model == "CompVis/stable-diffusion-v1-4" and not spec.world and spec.rows()
    for settings in (spec.erasure, spec.general or {}):
        assert settings.get("steps", 25) >= 50 and settings.get("guidance", 5.0) == 7.5  # the papers' settings
    if name == "sd14-imagenette":
        assert all(c in IMAGENETTE for r in spec.rows() for c in r.erase) and len(spec.rows()) == 4 * 8
    assert spec.files.inception == str(sd14_env / "inception-2015-12-05.pt")
    ctx = bench_run.Context(dataclasses.replace(spec, model="tiny"), tiny, Cells(tmp_path / "out"))
    bench_run.check_rows(ctx, ctx.spec.rows())  # raises on the first thing that would fail mid-run
    assert not (tmp_path / "out").exists()


def test_a_method_without_its_vocabulary_is_refused_before_any_work(tmp_path, smoke_tiny):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "model: tiny\nmethods: [ap]\nconcepts: [church]\nsuites: {erasure: {n: 1, steps: 2, limit: 1}}\n"
        'judges: {resnet: "${ERASEKIT_JUDGES}/resnet-50"}\n'
    )
    assert_one_line_error(cli("bench", spec, "--out", tmp_path / "out"), "give one with --set vocab=FILE")
    assert not (tmp_path / "out").exists()


def test_third_party_judges_suites_and_domains_register_through_entry_points(monkeypatch, tiny):
    from erasekit.eval import registries

    class EntryPoint:
        def __init__(self, group):
            self.group = group

        def load(self):
            def register():
                if self.group == "erasekit.domains":
                    registries.DOMAINS.add(
                        registries.Domain(
                            "plugin-logo",
                            "a plugin's logo detector",
                            "clip",
                            decides=lambda bundle, concept: concept == "acme logo",
                            detector=lambda bundle, concept, files: lambda images: images.mean((1, 2, 3)) > 2,
                        )
                    )

            return register

    monkeypatch.setattr(registries.Named, "loaded", False)
    monkeypatch.setattr(registries, "entry_points", lambda group: [EntryPoint(group)])
    saved = dict(registries.DOMAINS.items)
    try:
        assert registries.domain_for(tiny, "acme logo").name == "plugin-logo"
        with pytest.raises(ErasekitError, match="no judge can see 'acme sign'"):
            registries.domain_for(tiny, "acme sign")
    finally:
        registries.DOMAINS.items = saved


def test_metrics_json_names_its_judges(mini, tmp_path):
    """Every metrics.json says what scored it: the world judge by its weights' hash; NudeNet by version and classes;
    a given Inception file by its sha256."""
    from erasekit.core.datasets import sha256
    from erasekit.eval.suites import SuiteRun, evaluate, provenance

    result = evaluate(mini, "world-objects", SuiteRun(n=1, steps=2, progress=False), erased=["star"])
    world = result.to_json()["judges"]["world"]
    assert len(world["sha256"]) == 64 and world["mark_threshold"] == 0.5
    nudenet = provenance("i2p", SuiteRun())["nudenet"]
    assert nudenet["version"].startswith("3.") and "ANUS_EXPOSED" not in nudenet["exposed"]
    assert len(nudenet["exposed"]) == 8 and nudenet["thresholds"] == [0.3, 0.5, 0.7, 0.8]
    weights = tmp_path / "inception.pt"
    weights.write_bytes(b"not really an inception network")
    inception = provenance("coco", SuiteRun(inception=str(weights)))["inception"]
    assert inception["sha256"] == sha256(weights) and "2015-12-05" in inception["network"]
