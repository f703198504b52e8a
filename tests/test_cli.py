import os
import subprocess
import sys

import torch
from click.testing import CliRunner

from erasekit import __version__
from erasekit.cli import main
from erasekit.core.edit import Edit

KEY = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v.weight"


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_version():
    assert run("--version").output.strip() == f"erasekit, version {__version__}"


def test_info_lists_groups_and_cross_attention_layers():
    result = run("info", "tiny")
    assert result.exit_code == 0, result.output
    assert "xattn-kv" in result.output and "cross-attention layers (4)" in result.output
    assert "to_k/to_v 32 -> 16" in result.output


def test_user_error_is_one_line_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "erasekit.cli", "info", "/no/such/model"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "erasekit: error: model source not found: '/no/such/model' (expected 'mini', 'tiny' or tiny-sdxl / tiny-sd3 / "
        "tiny-flux, a hub id like owner/name, a diffusers folder, or a .safetensors/.ckpt file)"
    ]
    assert "Traceback" not in proc.stderr


def test_export_writes_a_pipeline_folder(tiny, tmp_path):
    new = dict(tiny.named_parameters())[KEY] * 0
    Edit.from_changes(tiny, {KEY: new}, method="t", config={}, concepts={}).save(tmp_path / "run")
    result = run("export", str(tmp_path / "run"), "--out", str(tmp_path / "exported"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "exported" / "model_index.json").exists()
    weights = tmp_path / "exported" / "unet" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file

    assert torch.count_nonzero(load_file(str(weights))[KEY.removeprefix("unet.")]) == 0


def test_export_of_a_missing_run_is_an_error(tmp_path):
    result = run("export", str(tmp_path / "nope"), "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and "edit not found" in result.output
    assert not (tmp_path / "x").exists()
