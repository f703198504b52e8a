"""What a new user hits (issue 19): lost results, late failures, tracebacks, silent overwrites, missing feedback.

Every bad input gives one line, `erasekit: error: ...`, exit status 2, and leaves nothing behind."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from erasekit.cli import main
from erasekit.core.edit import Edit

FAST_ESD = ["--model", "tiny", "--method", "esd", "--erase", "cat", "--quiet", "--set", "ddim_steps=2"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, message):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("erasekit: error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output


def _edit(base, path, delta=0.0, erase=("star",)):
    key = "unet.conv_out.bias"
    new = dict(base.named_parameters())[key] + delta
    Edit.from_changes(base, {key: new}, method="t", config={}, concepts={"erase": list(erase)}).save(path)
    return path


@pytest.fixture
def plain_file(tmp_path):
    (tmp_path / "plain").write_text("")
    return tmp_path / "plain"


# ---- 1. the concept graph keeps one row per edit ---------------------------------------------------------


def test_graph_keeps_one_row_per_edit_when_two_edits_erase_the_same_concept(tmp_path):
    from erasekit.models.load import load_bundle

    base = load_bundle("mini")
    a, b = _edit(base, tmp_path / "esd-star"), _edit(base, tmp_path / "uce-star", delta=0.5)
    result = run("graph", "mini", "--edit", a, "--edit", b, "--n", 1, "--steps", 2, "--out", tmp_path / "g", "--quiet")
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "g" / "graph.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows] == [["edit", "erased"], ["esd-star", "star"], ["uce-star", "star"]]
    assert all(float(v) == 0 for v in rows[1].split(",")[2:])  # the unchanged edit's own row, not the other's
    assert any(float(v) != 0 for v in rows[2].split(",")[2:])
    hurt = [line for line in result.output.splitlines() if "most hurt" in line]
    assert len(hurt) == 2 and not any("most hurt kept concept star " in line for line in hurt)


def test_most_hurt_ranks_only_the_kept_concepts():
    from erasekit.eval.graph import most_hurt

    ranked = most_hurt(np.array([0.9, 0.1, 0.3]), ["star", "moon", "ring"], ["star"])
    assert ranked == [("ring", pytest.approx(0.3)), ("moon", pytest.approx(0.1))]


# ---- 2. an interrupted erase is never deleted silently ---------------------------------------------------


def test_rerunning_erase_without_resume_refuses_and_keeps_the_interrupted_checkpoint(tmp_path, monkeypatch):
    import erasekit.core.loop as loop

    args = ["erase", *FAST_ESD, "--set", "iterations=4", "--set", "checkpoint_every=2", "--out", tmp_path / "run"]
    real = loop.save_checkpoint

    def die(*a, **k):
        real(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", die)
    assert run(*args).exit_code == 130
    monkeypatch.setattr(loop, "save_checkpoint", real)
    checkpoint = tmp_path / "run.partial" / "checkpoint.json"
    assert json.loads(checkpoint.read_text())["step"] == 2
    assert_one_line_error(run(*args), "an interrupted or failed run left")
    assert json.loads(checkpoint.read_text())["step"] == 2 and not (tmp_path / "run").exists()
    assert_one_line_error(run(*args, "--set", "lr=0.5", "--resume"), "it was started with other config")
    assert run(*args, "--overwrite").exit_code == 0 and not (tmp_path / "run.partial").exists()


# ---- 3. nothing is overwritten silently, and nothing foreign is deleted ----------------------------------


def test_evaluate_and_generate_refuse_an_existing_output_unless_overwriting(tmp_path):
    ev = ["evaluate", "mini", "--suite", "world-objects", "--n", 1, "--steps", 2, "--quiet", "--out", tmp_path / "ev"]
    assert run(*ev).exit_code == 0
    before = (tmp_path / "ev" / "metrics.json").read_bytes()
    assert_one_line_error(run(*ev, "--steps", 3), "output already exists")
    assert (tmp_path / "ev" / "metrics.json").read_bytes() == before
    assert run(*ev, "--steps", 3, "--overwrite").exit_code == 0
    gen = ["generate", "mini", "--prompt", "a star", "--n", 1, "--steps", 2, "--quiet", "--out", tmp_path / "g.png"]
    assert run(*gen).exit_code == 0
    assert_one_line_error(run(*gen), "output already exists")
    assert run(*gen, "--overwrite").exit_code == 0


def test_overwrite_never_deletes_a_file_the_user_put_in_the_output(tmp_path):
    out = tmp_path / "run"
    assert run("erase", *FAST_ESD, "--set", "iterations=1", "--out", out).exit_code == 0
    (out / "my-notes.txt").write_text("keep me")
    assert_one_line_error(
        run("erase", *FAST_ESD, "--set", "iterations=1", "--out", out, "--overwrite"),
        "holds files erasekit did not write (my-notes.txt)",
    )
    assert (out / "my-notes.txt").read_text() == "keep me" and Edit.load(out).method == "esd"
    (out / "my-notes.txt").unlink()
    assert run("erase", *FAST_ESD, "--set", "iterations=1", "--out", out, "--overwrite").exit_code == 0


# ---- 4. every input is checked before any work -----------------------------------------------------------


def test_an_edit_for_another_base_is_refused_before_anything_is_generated(mini, tmp_path, monkeypatch):
    from erasekit.eval import suites

    other = mini.clone(("unet",))
    with torch.no_grad():
        other.denoiser.conv_in.bias.add_(1.0)
    _edit(other, tmp_path / "foreign")
    monkeypatch.setattr(suites, "generate_batched", lambda *a, **k: pytest.fail("generated before the check"))
    args = [
        "evaluate",
        "mini",
        "--edit",
        tmp_path / "foreign",
        "--suite",
        "world-objects",
        "--out",
        tmp_path / "ev",
        "--quiet",
    ]
    assert_one_line_error(run(*args), "pass --force to apply anyway")
    assert not (tmp_path / "ev").exists()
    monkeypatch.undo()
    assert run(*args, "--force", "--n", 1, "--steps", 2).exit_code == 0


# ---- 5. bad input: one line, exit 2, nothing left behind -------------------------------------------------

BAD = {
    "erase-unwritable-out": (["erase", *FAST_ESD, "--out", "{plain}/run"], "cannot write"),
    "export-unwritable-out": (["export", "{edit}", "--out", "{plain}/exported"], "cannot write"),
    "generate-unwritable-out": (["generate", "tiny", "--prompt", "a star", "--out", "{plain}/g.png"], "cannot write"),
    "checkpoint-every-0": (
        ["erase", *FAST_ESD, "--set", "checkpoint_every=0", "--out", "{tmp}/run"],
        "option checkpoint_every must be >= 1, got 0",
    ),
    "ddim-steps-0": (
        [
            "erase",
            "--model",
            "tiny",
            "--method",
            "esd",
            "--erase",
            "cat",
            "--set",
            "ddim_steps=0",
            "--out",
            "{tmp}/run",
        ],
        "option ddim_steps must be >= 1, got 0",
    ),
    "pool-size-0": (
        ["erase", *FAST_ESD, "--set", "z_source=pool", "--set", "pool_size=0", "--out", "{tmp}/run"],
        "option pool_size must be >= 1, got 0",
    ),
    "generate-txt": (
        ["generate", "tiny", "--prompt", "a star", "--steps", "2", "--out", "{tmp}/x.txt"],
        "cannot write an image to",
    ),
    "world-train-abc": (
        ["world", "train", "--work", "{tmp}/w", "--out", "{tmp}/o", "--set", "unet_steps=abc"],
        "option unet_steps: expected an integer, got 'abc'",
    ),
    "world-train-unknown": (
        ["world", "train", "--work", "{tmp}/w", "--out", "{tmp}/o", "--set", "nope=1"],
        "unknown option(s) for world train: nope",
    ),
    "world-train-unwritable": (
        ["world", "train", "--work", "{plain}/w", "--out", "{tmp}/o", "--stages", "judge"],
        "cannot write",
    ),
    "missing-option": (["erase", "--erase", "cat", "--out", "{tmp}/run"], "Missing option '--method'"),
    "unknown-option": (["erase", "--method", "esd", "--bogus", "--out", "{tmp}/run"], "No such option '--bogus'"),
    "unknown-command": (["nosuch"], "No such command 'nosuch'"),
    "n-zero": (["generate", "tiny", "--prompt", "a star", "--n", "0", "--out", "{tmp}/g.png"], "'--n'"),
    "empty-prompt": (["generate", "tiny", "--prompt", " ", "--out", "{tmp}/g.png"], "empty prompt"),
    "bad-suite-concept": (
        ["evaluate", "mini", "--suite", "world-objects", "--erased", "dog", "--out", "{tmp}/ev"],
        "unknown concept(s) for world-objects: dog",
    ),
    "world-suite-off-the-miniature": (
        ["evaluate", "tiny", "--suite", "world-objects", "--out", "{tmp}/ev"],
        "suite world-objects is scored by the world judge",
    ),
    "resolution-off-the-grid": (
        ["generate", "tiny", "--prompt", "a star", "--resolution", "18", "--out", "{tmp}/g.png"],
        "resolution 18 does not fit 'tiny': give a multiple of 4",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, tiny, tmp_path, plain_file):
    edit = _edit(tiny, tmp_path / "edit")
    args, message = BAD[case]
    before = set(tmp_path.rglob("*"))
    result = run(*[a.format(tmp=tmp_path, plain=plain_file, edit=edit) for a in args])
    assert_one_line_error(result, message)
    assert set(tmp_path.rglob("*")) == before  # no output, no partial folder, no temporary file


def test_a_usage_error_from_the_installed_command_is_one_line_on_stderr():
    proc = subprocess.run(
        [sys.executable, "-m", "erasekit.cli", "erase", "--erase", "cat"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "erasekit: error: Missing option '--method'. (see 'erasekit erase --help')"
    ]


# ---- 6. the report's libraries are core dependencies -----------------------------------------------------


def test_matplotlib_and_scipy_are_core_dependencies():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    core = {dep.split(">")[0].split("=")[0].split("<")[0].strip() for dep in project["dependencies"]}
    assert {"matplotlib", "scipy"} <= core


# ---- 7. long steps show progress with an ETA -------------------------------------------------------------


def test_evaluate_shows_progress_with_eta_for_base_and_edit(tmp_path):
    from erasekit.models.load import load_bundle

    edit = _edit(load_bundle("mini"), tmp_path / "run", delta=0.1)
    result = run(
        "evaluate",
        "--edit",
        edit,
        "--model",
        "mini",
        "--suite",
        "world-objects",
        "--n",
        1,
        "--steps",
        2,
        "--out",
        tmp_path / "ev",
    )
    assert result.exit_code == 0, result.output
    assert "base: 100%" in result.output and "edited: 100%" in result.output
    assert "img/s]" in result.output and "<00:00" in result.output  # tqdm's rate and remaining time


def test_graph_shows_progress(tmp_path):
    from erasekit.models.load import load_bundle

    edit = _edit(load_bundle("mini"), tmp_path / "run")
    result = run("graph", "mini", "--edit", edit, "--n", 1, "--steps", 2, "--out", tmp_path / "g")
    assert result.exit_code == 0, result.output
    assert "base: 100%" in result.output and "run: 100%" in result.output


# ---- 8. the report shows every concept, erased ones first ------------------------------------------------


def test_report_shows_every_concept_erased_first_base_beside_edited(tmp_path):
    from erasekit.eval.evaluation import Evaluation
    from erasekit.eval.suites import SuiteResult
    from erasekit.report.html import write_report
    from erasekit.world.render import OBJECTS

    concepts = [c for c in OBJECTS for _ in range(16)]

    def result():
        return SuiteResult(
            "world-objects",
            "m",
            None,
            ["arrow"],
            [],
            16,
            {},
            {},
            torch.rand(len(concepts), 3, 8, 8),
            [f"a {c}" for c in concepts],
            concepts,
        )

    doc = write_report(tmp_path, Evaluation(result(), result())).read_text()
    headings = [h.split("</h3>")[0] for h in doc.split("<h3>")[1:]]
    assert headings[0] == "arrow (erased)" and sorted(headings[1:]) == sorted(c for c in OBJECTS if c != "arrow")
    assert doc.count("<figcaption>base</figcaption>") == doc.count("<figcaption>edited</figcaption>") == 10


def test_concept_bars_draw_no_box_over_the_erased_concept():
    from erasekit.report.plots import bar_axes

    edited = {"erased": ["star"], "per_concept": {"star": {"acc@1": 5.0}, "moon": {"acc@1": 90.0}}}
    base = {"per_concept": {"star": {"acc@1": 95.0}, "moon": {"acc@1": 92.0}}}
    ax = bar_axes(edited, base)
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [5.0, 90.0, 92.0, 95.0]  # the bars and nothing else
    assert [t.get_text() for t in ax.get_xticklabels()] == ["star (erased)", "moon"]


# ---- 9. the demo leaves only its results -----------------------------------------------------------------


def test_demo_output_holds_no_checkpoint(tmp_path, monkeypatch):
    import dataclasses

    import erasekit.demo as demo

    real_build, real_run = demo.registry.build_config, demo.SuiteRun
    monkeypatch.setattr(
        demo.registry,
        "build_config",
        lambda spec, **k: dataclasses.replace(
            real_build(spec, **k), **({"iterations": 2, "ddim_steps": 2} if spec.name == "esd" else {})
        ),
    )
    monkeypatch.setattr(demo, "SuiteRun", lambda **k: real_run(**{**k, "steps": 2}))
    monkeypatch.setattr(demo, "GENERAL_N", 1)
    demo.run_demo(tmp_path / "demo", n=1, echo=lambda *_: None, progress=False)
    left = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert left == [".erasekit-files", "esd", "esd-eval", "summary.txt", "uce", "uce-eval"]
    gitignore = os.path.dirname(__file__) + "/../.gitignore"
    assert "erasekit-demo/" in Path(gitignore).read_text().split()


# ---- 11. --help and --version do not load torch ----------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_help_and_version_import_no_heavy_library(flag):
    code = (
        f"import sys\nfrom erasekit.cli import main\ntry:\n    main([{flag!r}])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


# ---- 12. help texts say what happens; info reads a single-file export of the miniature -------------------


def test_help_texts_describe_the_real_defaults():
    erase_help = run("erase", "--help").output
    assert "nearest object" in " ".join(erase_help.split())
    assert "where to run" in run("info", "--help").output
    assert "Describe a model" in run("--help").output


def test_info_reads_a_single_file_export_of_an_edit_of_the_miniature(tmp_path):
    from erasekit.models.load import load_bundle

    mini = load_bundle("mini")
    _edit(mini, tmp_path / "run", delta=0.01)
    exported = run("export", tmp_path / "run", "--format", "single-file", "--out", tmp_path / "e.safetensors")
    assert exported.exit_code == 0, exported.output
    result = run("info", tmp_path / "e.safetensors")
    assert result.exit_code == 0, result.output
    assert "family        sd1  (mini;" in result.output


def test_a_run_that_failed_before_any_progress_does_not_block_the_next_try(tmp_path, monkeypatch):
    """A crash after the run folder was claimed (the issue: a real model's fingerprint) left OUT.partial/, and the
    next try was refused as an 'interrupted run' with nothing to resume in it."""
    from erasekit.methods import esd

    def crash(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(esd.ZSampler, "__call__", crash)
    args = ["erase", *FAST_ESD, "--set", "iterations=1", "--out", tmp_path / "run"]
    assert isinstance(run(*args).exception, RuntimeError)
    assert [p.name for p in (tmp_path / "run.partial").iterdir()] == ["run.json"]
    monkeypatch.undo()
    assert run(*args).exit_code == 0 and not (tmp_path / "run.partial").exists()


def test_running_out_of_memory_is_one_line_and_says_what_to_try(tmp_path, monkeypatch):
    import torch

    from erasekit.methods import esd

    def exhausted(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(esd.ZSampler, "__call__", exhausted)
    result = run("erase", *FAST_ESD, "--set", "iterations=1", "--out", tmp_path / "run")
    assert_one_line_error(result, "out of memory (CUDA out of memory. Tried to allocate 2.00 GiB): draw smaller")
    assert not (tmp_path / "run").exists()
