import json
from importlib import resources

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from erasekit.core.errors import ErasekitError
from erasekit.models import ldm


def _meta(arch):
    root = resources.files("erasekit") / f"models/configs/{arch}"
    cfg = {p: json.loads((root / p / "config.json").read_text()) for p in ("unet", "vae", "text_encoder")}
    with torch.device("meta"):
        return (
            UNet2DConditionModel.from_config(cfg["unet"]),
            AutoencoderKL.from_config(cfg["vae"]),
            CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"])),
            cfg,
        )


def test_sd1_export_uses_the_original_key_layout_and_reads_back():
    unet, vae, text, cfg = _meta("sd1")
    state = ldm.to_ldm_state_dict(unet, vae, text)
    for key in [
        "model.diffusion_model.output_blocks.11.0.skip_connection.weight",
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.output_blocks.2.1.conv.weight",
        "model.diffusion_model.output_blocks.5.2.conv.weight",
        "model.diffusion_model.middle_block.2.emb_layers.1.weight",
        "first_stage_model.decoder.up.3.upsample.conv.weight",
        "first_stage_model.encoder.mid.attn_1.q.weight",
        "cond_stage_model.transformer.text_model.final_layer_norm.weight",
    ]:
        assert key in state, key
    assert state["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4
    assert ldm.detect_architecture(state) == "sd1"
    unet_sd, vae_sd, text_sd = ldm.from_ldm_state_dict(state, cfg["unet"], cfg["vae"], text)
    assert set(unet_sd) == set(unet.state_dict())
    assert set(vae_sd) == set(vae.state_dict())
    assert set(text_sd) == set(text.state_dict())


def test_sd2_is_detected_from_width_and_open_clip():
    state = {
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(320, 1024),
        "cond_stage_model.model.token_embedding.weight": torch.zeros(1, 1),
    }
    assert ldm.detect_architecture(state) == "sd2"


@pytest.mark.parametrize(
    "state, message",
    [
        ({ldm.SDXL_KEY: torch.zeros(1)}, "SDXL"),
        ({"foo.bar": torch.zeros(1)}, "no Stable Diffusion UNet"),
        (
            {
                "model.diffusion_model.x.attn2.to_k.weight": torch.zeros(8, 2048),
                "cond_stage_model.transformer.x": torch.zeros(1),
            },
            "cross-attention width 2048",
        ),
    ],
)
def test_other_architectures_are_refused_by_name(state, message):
    with pytest.raises(ErasekitError, match=f"unsupported architecture.*{message}"):
        ldm.detect_architecture(state)


def test_sd2_text_encoder_cannot_be_written_as_single_file():
    unet, vae, _, _ = _meta("sd1")
    _, _, text, _ = _meta("sd2")
    with pytest.raises(ErasekitError, match="SD 1.x-style"):
        ldm.to_ldm_state_dict(unet, vae, text)
