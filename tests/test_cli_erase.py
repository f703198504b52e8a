"""`erasekit erase`, `methods` and `demo` from the command line."""

import json

import pytest
from click.testing import CliRunner

from erasekit.cli import main
from erasekit.core.edit import Edit

FAST = ["--set", "iterations=2", "--set", "ddim_steps=2", "--quiet"]


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_erase_writes_an_edit_with_its_loss_log(tmp_path):
    out = tmp_path / "esd-cat"
    result = run("erase", "--model", "tiny", "--method", "esd", "--erase", "a cat", "--out", str(out), *FAST)
    assert result.exit_code == 0, result.output
    edit = Edit.load(out)
    assert edit.method == "esd" and edit.concepts["erase"] == ["a cat"] and edit.config["iterations"] == 2
    assert (out / "loss.csv").read_text().splitlines()[0].startswith("step,loss")
    assert not (tmp_path / "esd-cat.partial").exists()
    again = run("erase", "--model", "tiny", "--method", "esd", "--erase", "a cat", "--out", str(out), *FAST)
    assert again.exit_code == 2 and "already exists" in again.output


def test_erase_with_ap_on_the_miniature_searches_its_lexicon(tmp_path):
    out = tmp_path / "ap-star"
    result = run("erase", "--method", "ap", "--erase", "star", "--out", str(out), *FAST, "--set", "batch=2")
    assert result.exit_code == 0, result.output
    edit = Edit.load(out)
    assert edit.config["vocab"] == "world" and edit.config["gumbel_hard"] is True
    searched = {w for w, _ in edit.metrics["searched"]["star"]}
    assert len(searched) == 3 and not searched & {"star", "starburst"}
    assert "top3" in (out / "loss.csv").read_text().splitlines()[0]


def test_erase_with_uce_edit_and_a_yaml_config(tmp_path):
    (tmp_path / "uce.yaml").write_text("mode: edit\nlamb: 0.2\n")
    out = tmp_path / "uce"
    result = run(
        "erase",
        "--model",
        "tiny",
        "--method",
        "uce",
        "--erase",
        "cat",
        "--target",
        "dog",
        "--preserve",
        "car,tree",
        "--config",
        str(tmp_path / "uce.yaml"),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["mode"] == "edit" and manifest["config"]["lamb"] == 0.2
    assert manifest["concepts"]["target"] == "dog" and manifest["concepts"]["preserve"] == ["car", "tree"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--method", "nope", "--erase", "cat"], "unknown method 'nope'"),
        (["--method", "esd", "--erase", " , "], "empty concept list"),
        (["--method", "esd", "--erase", "cat", "--set", "lr=nan"], "option lr is nan"),
        (["--method", "esd", "--erase", "cat", "--set", "bogus=1"], "unknown option(s) for esd: bogus"),
        (["--method", "esd", "--erase", "cat", "--model", "/no/such"], "model source not found"),
        (["--method", "uce", "--erase", "cat", "--set", "mode=debias"], "at least two attributes"),
        (
            [
                "--method",
                "uce",
                "--erase",
                "cat",
                "--set",
                "mode=debias",
                "--set",
                "attributes=red,blue",
                "--set",
                "debias_decay=0.3",
            ],
            "debias_decay in (0.5, 1]",
        ),
    ],
)
def test_erase_refuses_bad_input_with_one_line_and_no_output(tmp_path, args, message):
    out = tmp_path / "run"
    model = [] if "--model" in args else ["--model", "tiny"]
    result = run("erase", *model, *args, "--out", str(out), "--quiet")
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "run.partial").exists()


def test_erase_refuses_a_concept_the_miniature_does_not_know(tmp_path):
    result = run("erase", "--method", "uce", "--erase", "dog", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "unknown concept 'dog' for the miniature" in result.output


def test_nan_loss_leaves_no_edit_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    import erasekit.methods.esd as esd

    real = esd.F.mse_loss
    calls = {"n": 0}

    def poisoned(a, b):  # the third loss is NaN
        calls["n"] += 1
        return real(a, b) * (float("nan") if calls["n"] == 3 else 1.0)

    monkeypatch.setattr(esd.F, "mse_loss", poisoned)
    out = tmp_path / "run"
    result = run(
        "erase",
        "--model",
        "tiny",
        "--method",
        "esd",
        "--erase",
        "cat",
        "--out",
        str(out),
        "--quiet",
        "--set",
        "iterations=5",
        "--set",
        "ddim_steps=2",
        "--set",
        "checkpoint_every=2",
    )
    assert result.exit_code == 2
    assert "loss is nan at iteration 2" in result.output and "last good checkpoint" in result.output
    assert not out.exists()
    assert json.loads((tmp_path / "run.partial" / "checkpoint.json").read_text())["step"] == 2


def test_erase_resume_continues_an_interrupted_run(tmp_path, monkeypatch):
    import erasekit.core.loop as loop

    args = [
        "erase",
        "--model",
        "tiny",
        "--method",
        "esd",
        "--erase",
        "cat",
        "--quiet",
        "--set",
        "iterations=4",
        "--set",
        "ddim_steps=2",
        "--set",
        "checkpoint_every=2",
        "--set",
        "lr=1e-2",
    ]
    assert run(*args, "--out", str(tmp_path / "whole")).exit_code == 0
    real = loop.save_checkpoint

    def die(*a, **k):
        real(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", die)
    cut = run(*args, "--out", str(tmp_path / "cut"))
    assert cut.exit_code == 130 and not (tmp_path / "cut").exists()
    monkeypatch.setattr(loop, "save_checkpoint", real)
    assert run(*args, "--out", str(tmp_path / "cut"), "--resume").exit_code == 0
    a, b = Edit.load(tmp_path / "whole"), Edit.load(tmp_path / "cut")
    assert all((a.tensors[k] == b.tensors[k]).all() for k in a.tensors)


def test_methods_lists_every_method_with_defaults():
    result = run("methods")
    assert result.exit_code == 0
    for name in ("esd", "target", "uce", "time", "ca"):
        assert any(line.startswith(name) for line in result.output.splitlines()), name
    assert "iterations=1000" in result.output and "miniature: iterations=" in result.output


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    result = run("demo", "--out", str(tmp_path / "demo"), "--n", "4")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "demo" / "summary.txt").read_text().splitlines()
    assert len(lines) == 5 and lines[2].startswith("base") and lines[3].startswith("esd")
    assert (tmp_path / "demo" / "esd-eval" / "report.html").exists()
    assert Edit.load(tmp_path / "demo" / "uce").method == "uce"
