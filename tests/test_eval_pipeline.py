"""Generation folders, suites, the concept graph and the HTML report: plumbing on the tiny model, and on the miniature
where the world's judge scores the images."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.core.loop import LOSS_LOG
from erasekit.eval.evaluation import Evaluation
from erasekit.eval.generate import INDEX, generate_set, load_images
from erasekit.eval.graph import concept_graph, save_graph
from erasekit.eval.judges import world_judge
from erasekit.eval.prompts import PromptSet
from erasekit.eval.suites import SuiteRun, evaluate
from erasekit.report.html import write_report
from erasekit.report.plots import graph_heatmap

RUN = SuiteRun(n=2, steps=2)


def test_generate_set_writes_images_and_index_and_resumes(tiny, tmp_path, monkeypatch):
    import erasekit.eval.generate as gen

    ps = PromptSet("p", ["a red star", "a blue ring"], [10, 20], [{"k": 1}, {"k": 2}])
    out = tmp_path / "gen"
    real_save, saved = gen.save_image, []

    def save_then_die(image, path):  # killed after the third image
        if len(saved) == 3:
            raise KeyboardInterrupt
        saved.append(path)
        return real_save(image, path)

    monkeypatch.setattr(gen, "save_image", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        generate_set(tiny, ps, 2, out, steps=2, batch=1, progress=False)
    monkeypatch.setattr(gen, "save_image", real_save)
    assert not out.exists() and len(list((tmp_path / "gen.partial").glob("*.png"))) == 3
    stamp = os.stat(saved[0]).st_mtime_ns
    with pytest.raises(ErasekitError, match="failed run left .*gen.partial .3 file.s. of progress.*: resume it with"):
        generate_set(tiny, ps, 2, out, steps=2, progress=False)
    rows = generate_set(tiny, ps, 2, out, steps=2, progress=False, resume=True)
    assert [r["seed"] for r in rows] == [10, 11, 20, 21] and not (tmp_path / "gen.partial").exists()
    index = [json.loads(line) for line in (out / INDEX).read_text().splitlines()]
    assert index == rows and all((out / r["path"]).exists() for r in rows)
    assert os.stat(out / rows[0]["path"]).st_mtime_ns == stamp  # kept, not generated again
    images, _ = load_images(out)
    direct = tiny.generate(["a blue ring"], [21], steps=2)
    assert torch.allclose(images[3], direct[0], atol=1 / 255 + 1e-6)  # same seed, same image (up to 8-bit)
    with pytest.raises(ErasekitError, match="output already exists"):
        generate_set(tiny, ps, 2, out, steps=2, progress=False)


def test_world_objects_suite_splits_erased_and_preserved(mini):
    result = evaluate(mini, "world-objects", RUN, erased=["star", "ring"])
    assert result.preserved == [o for o in result.per_concept if o not in ("star", "ring")]
    m = result.metrics
    assert {"acc@1", "esr@1", "esr@5", "psr@1", "psr@5", "implicit_rate"} <= set(m)
    rates = [k for k in m if not k.endswith(("_ci", "_n"))]
    assert all(0 <= m[k] <= 100 for k in rates) and result.images.shape[0] == 20
    assert m["esr_n"] == 2 * RUN.n and m["psr_n"] == 8 * RUN.n  # images of the erased / preserved concepts
    assert all(m[f"{k}_ci"][0] <= m[k] <= m[f"{k}_ci"][1] for k in ("esr@1", "esr@5", "psr@1", "psr@5"))


def test_unknown_concept_is_named(mini):
    with pytest.raises(ErasekitError, match="unknown concept\\(s\\) for world-objects: cat"):
        evaluate(mini, "world-objects", RUN, erased=["cat"])


def test_csv_suites_need_their_data_set(tiny, tmp_path):
    """A real suite reads its data set from the data folder; without it, one line says what to fetch."""
    from dataclasses import replace

    with pytest.raises(ErasekitError, match="data set imagenette not found .*erasekit data fetch imagenette"):
        evaluate(tiny, "imagenette", replace(RUN, data_dir=str(tmp_path)))


def test_world_general_reports_fjd_and_pixel_distance(mini):
    run = SuiteRun(n=1, steps=2)
    base = evaluate(mini, "world-general", run)
    same = evaluate(mini, "world-general", run, base_images=base.images)
    assert base.metrics["fjd"] > 0 and same.metrics["pixel_distance"] == 0.0


def test_concept_graph_is_zero_for_an_unchanged_model_and_not_for_a_changed_one(tiny, tmp_path):
    judge = world_judge()
    changed = tiny.clone(("unet",))
    with torch.no_grad():
        changed.denoiser.conv_out.bias.add_(0.5)
    matrix = concept_graph(tiny, {"same": tiny, "changed": changed}, judge, ("circle", "star"), n=2, steps=2)
    assert matrix.shape == (2, 2) and np.allclose(matrix[0], 0) and not np.allclose(matrix[1], 0)
    csv_path = save_graph(matrix, ["same", "changed"], ["star", "star"], ("circle", "star"), tmp_path)
    assert csv_path.read_text().splitlines()[:2] == ["edit,erased,circle,star", "same,star,0.0000,0.0000"]
    png = graph_heatmap(matrix, ["same", "changed"], ("circle", "star"), tmp_path / "graph.png")
    assert png.stat().st_size > 1000


def _chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and os.environ.get("CI"):
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
    if path is None:
        pytest.skip("chromium not installed here (CI installs it)")
    return path


def chromium(url: str, profile, *extra: str) -> str:
    """Headless Chromium on `url`, offline (no network, no first-run work), with `extra` flags such as
    --dump-dom (what it prints is returned) or --screenshot=FILE."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *extra,
    ]
    return subprocess.run([_chromium(), *flags, url], capture_output=True, text=True, timeout=120).stdout


def test_report_renders_in_headless_chromium(mini, tmp_path):
    run = SuiteRun(n=2, steps=2)
    base = evaluate(mini, "world-objects", run)
    edited = evaluate(mini, "world-objects", run, erased=["star"], base_images=base.images)
    report = write_report(tmp_path, Evaluation(edited, base))
    dom = chromium(report.as_uri(), tmp_path / "profile", "--dump-dom")
    assert 'id="metrics"' in dom and "esr@1" in dom and "psr@1" in dom and dom.count("data:image/png") >= 3
    shot = tmp_path / "shot.png"
    chromium(report.as_uri(), tmp_path / "profile", "--window-size=1200,1600", f"--screenshot={shot}")
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # not a blank page


def test_cli_evaluate_with_an_edit_writes_metrics_and_report(tmp_path):
    from click.testing import CliRunner

    from erasekit.cli import main
    from erasekit.models.load import load_bundle

    base = load_bundle("mini")
    key = "unet.conv_out.bias"
    Edit.from_changes(
        base, {key: dict(base.named_parameters())[key] + 0.3}, method="t", config={}, concepts={"erase": ["star"]}
    ).save(tmp_path / "run")
    (tmp_path / "run" / LOSS_LOG).write_text(
        "step,loss,erased,searched,top3\n"
        + "".join(
            f'{i},0.1,star,moon,"[[""moon"", {0.4 + i / 100}], [""ring"", 0.3], [""heart"", 0.1]]"\n' for i in range(5)
        )
    )
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "mini",
            "--edit",
            str(tmp_path / "run"),
            "--suite",
            "world-objects",
            "--n",
            "1",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "ev"),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["erased"] == ["star"] and "star" not in metrics["preserved"] and len(metrics["preserved"]) == 9
    assert {"suite", "model", "edit", "n_per_prompt", "metrics", "per_concept", "base_metrics"} <= set(metrics)
    assert metrics["metrics"]["pixel_distance"] > 0 and (tmp_path / "ev" / "report.html").exists()
    assert (tmp_path / "ev" / "loss.png").exists() and (tmp_path / "ev" / "search.png").exists()
    assert "searched concept over iterations" in (tmp_path / "ev" / "report.html").read_text()


def test_fid_and_lpips_join_the_paired_metrics_when_their_networks_are_given(mini, tmp_path):
    from test_judges import _FakeInception, _FakeLpips

    torch.jit.script(_FakeInception()).save(str(tmp_path / "inception.pt"))
    torch.jit.script(_FakeLpips()).save(str(tmp_path / "lpips.pt"))
    run = SuiteRun(n=2, steps=2, inception=str(tmp_path / "inception.pt"), lpips=str(tmp_path / "lpips.pt"))
    base = evaluate(mini, "world-objects", run)
    assert "fid" not in base.metrics  # unpaired: nothing to compare against
    same = evaluate(mini, "world-objects", run, base_images=base.images)
    assert same.metrics["lpips"] == 0.0 and abs(same.metrics["fid"]) < 1e-6


def test_loss_curve_is_plotted_from_a_run_log(tmp_path):
    from erasekit.report.plots import loss_curve

    assert loss_curve(tmp_path / "missing.csv", tmp_path / "x.png") is None
    (tmp_path / "loss.csv").write_text("step,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(20)))
    assert loss_curve(tmp_path / "loss.csv", tmp_path / "loss.png").stat().st_size > 1000


def test_cli_split_erases_the_seeds_split(tmp_path):
    from click.testing import CliRunner

    from erasekit.cli import main

    out = tmp_path / "ev"
    result = CliRunner().invoke(
        main,
        ["evaluate", "mini", "--suite", "world-objects", "--split", "1", "--n", "1", "--steps", "2", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["erased"] == ["triangle", "cross", "diamond", "arrow", "heart"]
    assert sorted(metrics["preserved"]) == ["circle", "moon", "ring", "square", "star"]
    bad = CliRunner().invoke(
        main, ["evaluate", "mini", "--suite", "world-styles", "--split", "1", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "--split applies to" in bad.output


def test_evaluate_edit_keeps_the_base_and_the_edited_model_apart(mini, tmp_path):
    from erasekit.eval.evaluation import evaluate_edit

    key = "unet.conv_out.bias"
    edit = Edit.from_changes(
        mini, {key: dict(mini.named_parameters())[key] + 0.3}, method="t", config={}, concepts={"erase": ["star"]}
    )
    ev = evaluate_edit(mini, edit, "world-objects", SuiteRun(n=1, steps=2, progress=False))
    assert ev.edited.erased == ev.base.erased == ["star"] and ev.edited.edit["method"] == "t" and ev.base.edit is None
    assert not torch.equal(ev.edited.images, ev.base.images)
    assert ev.edited.metrics["pixel_distance"] > 0 and "pixel_distance" not in ev.base.metrics
    assert ev.to_json()["base_metrics"] == ev.base.metrics
    alone = evaluate_edit(mini, None, "world-objects", SuiteRun(n=1, steps=2, progress=False))
    assert alone.base is None and torch.equal(alone.edited.images, ev.base.images)


def test_world_suites_report_what_an_erased_concept_draws_instead_and_the_mark_rate(mini, tmp_path):
    """A scripted judge: every 'star' image is judged a heart and the first carries the mark; every other image is
    judged its own object, without the mark."""
    from erasekit.eval.prompts import world_set
    from erasekit.eval.suites import Judges
    from erasekit.world.judge import OBJECT_CLASSES, Scores

    labels = [lab["object"] for _, _, _, lab in world_set("objects").expand(RUN.n)]  # the suite's image order
    drawn = ["heart" if c == "star" else c for c in labels]

    class Scripted:
        def score(self, images):
            n = len(images)
            obj = torch.full((n, len(OBJECT_CLASSES)), 1e-3)
            obj[torch.arange(n), [OBJECT_CLASSES.index(c) for c in drawn]] = 1.0
            mark = torch.zeros(n)
            mark[labels.index("star")] = 1.0
            return Scores(obj, torch.ones(n, 8) / 8, torch.ones(n, 6) / 6, mark, torch.zeros(n, 4))

    result = evaluate(mini, "world-objects", RUN, erased=["star"], judges=Judges(Scripted()))
    assert result.per_concept["star"]["drawn_instead"] == {"heart": 100.0}
    assert result.per_concept["star"]["implicit_rate"] == 100.0 / RUN.n == result.metrics["implicit_rate_erased"]
    assert result.metrics["implicit_rate_preserved"] == 0.0 and "drawn_instead" not in result.per_concept["moon"]
    doc = write_report(tmp_path, Evaluation(result, result)).read_text()
    assert 'id="instead"' in doc and "heart 100%" in doc


def test_world_implicit_reports_per_adjective_and_an_attacks_prompts_per_goal_prompt():
    from erasekit.eval.prompts import world_set
    from erasekit.eval.world_entries import _implicit_group
    from erasekit.world.captions import INDIRECT

    rows = world_set("implicit-indirect").expand(1)
    assert list(dict.fromkeys(_implicit_group(r) for r in rows)) == list(INDIRECT)
    attacked = (0, "<mark*> circle", 0, {"original": "a cursed circle", "concept": "mark"})
    assert _implicit_group(attacked) == "a cursed circle"
    assert _implicit_group((0, "a glowing circle", 0, {})) == "a glowing circle"


def test_a_world_suite_refuses_a_model_that_is_not_the_miniature(tiny, tmp_path):
    """The world judge reads the miniature's 32x32 renders: on any other model its rates would mean nothing."""
    from erasekit.eval.evaluation import evaluate_edit

    for suite in ("world-objects", "world-general"):
        with pytest.raises(ErasekitError, match=f"suite {suite} is scored by the world judge"):
            evaluate(tiny, suite, RUN)
    with pytest.raises(ErasekitError, match="is not the miniature"):
        evaluate_edit(tiny, None, "world-objects", RUN)


def test_an_exported_miniature_is_still_the_miniature(mini, tmp_path):
    from erasekit.models.load import load_bundle

    assert load_bundle(mini.save_pretrained(tmp_path / "export"), device="cpu").scale == "mini"


def test_report_thumbnails_enlarge_the_miniatures_pixels_and_reduce_a_real_models_images():
    from erasekit.eval.generate import grid

    small = torch.rand(2, 3, 32, 32)
    enlarged = np.asarray(grid(small, nrow=2, tile=96))
    assert enlarged.shape == (96, 192, 3) and (enlarged[:3, :3] == enlarged[0, 0]).all()  # 3x3 blocks of one pixel
    reduced = np.asarray(grid(torch.rand(3, 3, 512, 512), nrow=3, tile=96))
    assert reduced.shape == (96, 288, 3)
    assert np.asarray(grid(small, nrow=2)).shape == (32, 64, 3)  # no tile: as drawn
