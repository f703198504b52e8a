"""Shared fixtures: a tiny SD-architecture model (random weights) as a bundle, a diffusers folder and a single file."""

import pytest
from safetensors.torch import save_file

from erasekit.cli import quiet_libraries
from erasekit.core.bundle import load_bundle
from erasekit.core.ldm import to_ldm_state_dict

quiet_libraries()


@pytest.fixture(scope="session")
def tiny():
    return load_bundle("tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny_folder(tiny, tmp_path_factory):
    return tiny.save_pretrained(tmp_path_factory.mktemp("tiny") / "pipe")


@pytest.fixture(scope="session")
def tiny_single_file(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("single") / "tiny.safetensors"
    save_file(to_ldm_state_dict(tiny.unet, tiny.vae, tiny.text_encoder), str(path))
    return path
