"""Shared fixtures: a tiny SD-architecture model (random weights) as a bundle, a diffusers folder and a single file."""

import pytest
from safetensors.torch import save_file

from erasekit.cli import quiet_libraries
from erasekit.models.ldm import to_ldm_state_dict
from erasekit.models.load import load_bundle

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
    save_file(to_ldm_state_dict(tiny.denoiser, tiny.vae, tiny.modules["text_encoder"]), str(path))
    return path


@pytest.fixture
def interrupted_and_resumed(tmp_path, monkeypatch):
    """`go(erase)` with `erase(run) -> Edit` (config: checkpoint_every=2): the uninterrupted run's Edit, and the Edit
    of a run killed right after its first checkpoint (step 2) and resumed with `resume=True`. Work folders:
    tmp_path/whole and tmp_path/cut."""
    import json

    import erasekit.core.loop as loop
    from erasekit.core.loop import Run

    def go(erase):
        whole = erase(Run(work=tmp_path / "whole", progress=False))
        real_save = loop.save_checkpoint

        def save_then_die(path, modules, opt, step, meta=None):
            real_save(path, modules, opt, step, meta)
            raise KeyboardInterrupt

        monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            erase(Run(work=tmp_path / "cut", progress=False))
        monkeypatch.setattr(loop, "save_checkpoint", real_save)
        assert json.loads((tmp_path / "cut" / "checkpoint.json").read_text())["step"] == 2
        return whole, erase(Run(work=tmp_path / "cut", resume=True, progress=False))

    return go


@pytest.fixture(scope="session")
def mini():
    """The shipped miniature: what the world's suites and judge score (plumbing on it costs little more than tiny)."""
    return load_bundle("mini", device="cpu")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """A tiny random CLIP in the transformers layout (what --clip reads): the judges' and verifiers' plumbing."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from erasekit.core.assets import ASSETS

    path = tmp_path_factory.mktemp("clip")
    config = CLIPConfig(
        text_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=49408
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=8,
    )
    CLIPModel(config).save_pretrained(path)
    CLIPTokenizer.from_pretrained(str(ASSETS / "clip_tokenizer")).save_pretrained(path)
    return path
