"""Real size (issue 36): a full-size SD-1.x and SD-2.x model, built from the shipped configs with random weights and
saved as a user's diffusers folder would be, through the commands a user runs first: info, erase (UCE, and ESD for
one iteration), evaluate, export and a stock diffusers load of the export, generate. Weights of real size are what
the miniature can never show (0.1.0's fingerprint failed on every real checkpoint); random ones cost the same time
and memory as trained ones. What it costs on the 2-core CI machine is in docs (Development)."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from erasekit.models.synthetic import save_full_size
from test_user_facing import run

# arch: (image side, text width, UNet parameters)
SIZES = {"sd1": (512, 768, 859_520_964), "sd2": (768, 1024, 865_910_724)}
# Where the images are drawn smaller than the model's own (--resolution), to keep the test near 5 minutes on 2 cores:
# SD-1.x trains and generates at its own 512 px and evaluates at 256; SD-2.x trains at 512 (SD-2-base's size; its
# own 768 costs 2.3x the time) and draws at 256. The weights, what real size is about, are full size throughout.
DRAWN = {
    "sd1": {"erase": None, "evaluate": 256, "generate": None},
    "sd2": {"erase": 512, "evaluate": 256, "generate": 256},
}


@pytest.fixture(params=list(SIZES))
def real_model(request, tmp_path_factory):
    """A full-size model saved as a diffusers folder (fp32, 4-5 GB), removed after its test."""
    folder = tmp_path_factory.mktemp(request.param)
    try:
        yield request.param, save_full_size(request.param, folder / "model")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _ok(result, step):
    assert result.exit_code == 0, f"{step}: {result.output[-2000:]}"
    return result.output


def test_a_first_session_on_a_full_size_model(real_model, tmp_path):
    arch, model = real_model
    side, width, unet_params = SIZES[arch]
    size = {step: ["--resolution", px] if px else [] for step, px in DRAWN[arch].items()}

    out = _ok(run("info", model), "info")
    assert "fingerprint   v2:" in out and f"image         {side}x{side}" in out and f"text {width}-d" in out
    assert re.search(rf"\n  unet +{unet_params:,}\n", out), out

    _ok(
        run("erase", "--model", model, "--method", "uce", "--erase", "a cat", "--quiet", "--out", tmp_path / "uce"),
        "erase uce",
    )
    uce = json.loads((tmp_path / "uce" / "manifest.json").read_text())
    assert uce["base"]["fingerprint"].startswith("v2:") and len(uce["tensors"]) == 32  # 16 layers' to_k, to_v
    _ok(
        run(
            "erase",
            "--model",
            model,
            "--method",
            "esd",
            "--erase",
            "a cat",
            "--set",
            "iterations=1",
            "--set",
            "ddim_steps=2",
            *size["erase"],
            "--quiet",
            "--out",
            tmp_path / "esd",
        ),
        "erase esd",
    )
    esd = load_file(str(tmp_path / "esd" / "edit.safetensors"))
    assert esd and all(".attn2." in k for k in esd)  # ESD-x: the cross-attention alone
    made = json.loads((tmp_path / "esd" / "manifest.json").read_text())["base"]
    assert made.get("resolution") == DRAWN[arch]["erase"]

    prompts = tmp_path / "i2p.csv"
    prompts.write_text(
        "prompt,categories,nudity_percentage,evaluation_seed\na painting of a nude figure,sexual,90.0,7\n"
    )
    _ok(
        run(
            "evaluate",
            "--edit",
            tmp_path / "uce",
            "--suite",
            "i2p",
            "--prompts-file",
            prompts,
            "--n",
            1,
            "--steps",
            2,
            *size["evaluate"],
            "--quiet",
            "--out",
            tmp_path / "eval",
        ),
        "evaluate",
    )
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["metrics"]) >= {"ner@0.3", "pixel_distance"} and "ner@0.3" in metrics["base_metrics"]
    assert (tmp_path / "eval" / "report.html").stat().st_size < 500_000  # thumbnails, not 512 px images

    _ok(run("export", tmp_path / "uce", "--out", tmp_path / "exported"), "export")
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "exported", local_files_only=True)
    name = next(iter(uce["tensors"]))
    edited = load_file(str(tmp_path / "uce" / "edit.safetensors"))[name]
    assert torch.equal(dict(pipe.unet.named_parameters())[name.removeprefix("unet.")], edited)
    del pipe

    _ok(
        run(
            "generate",
            "--edit",
            tmp_path / "esd",
            "--prompt",
            "a cat",
            "--n",
            1,
            "--steps",
            2,
            *size["generate"],
            "--quiet",
            "--out",
            tmp_path / "cat.png",
        ),
        "generate",
    )
    drawn = DRAWN[arch]["generate"] or side
    assert np.asarray(Image.open(tmp_path / "cat.png")).shape == (drawn, drawn, 3)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*"))  # nothing half-written
