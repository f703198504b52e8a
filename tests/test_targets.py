import json
from importlib import resources

import pytest
import torch
from diffusers import UNet2DConditionModel

from erasekit.core.errors import ErasekitError
from erasekit.models.groups import UNET_GROUPS, cross_attention_layers, select


@pytest.fixture(scope="module")
def sd14_unet():
    """The real SD-v1.4 UNet architecture on the meta device (no weights)."""
    config = json.loads((resources.files("erasekit") / "models/configs/sd1/unet/config.json").read_text())
    with torch.device("meta"):
        return UNet2DConditionModel.from_config(config)


def test_sd14_has_16_cross_attention_layers_with_768_wide_keys(sd14_unet):
    layers = cross_attention_layers(sd14_unet)
    assert len(layers) == 16
    assert {m.to_k.in_features for _, m in layers} == {768}
    assert {m.to_v.in_features for _, m in layers} == {768}
    assert {m.to_k.out_features for _, m in layers} == {320, 640, 1280}
    parts = [n.split(".")[0] for n, _ in layers]
    assert parts == ["down_blocks"] * 6 + ["mid_block"] + ["up_blocks"] * 9


def test_xattn_kv_is_exactly_the_key_and_value_projections(sd14_unet):
    names, params = select(sd14_unet, "xattn-kv")
    assert len(names) == 32 and all(".attn2.to_k." in n or ".attn2.to_v." in n for n in names)
    assert all(n.endswith(".weight") for n in names)  # SD's to_k/to_v have no bias


def test_groups_partition_as_the_esd_code_does(sd14_unet):
    full = set(select(sd14_unet, "full")[0])
    xattn, noxattn = set(select(sd14_unet, "xattn")[0]), set(select(sd14_unet, "noxattn")[0])
    selfattn = set(select(sd14_unet, "selfattn")[0])
    assert xattn and not xattn & noxattn and not selfattn & xattn
    assert full - xattn - noxattn == {
        n for n in full if n.startswith(("time_embedding.", "conv_out.", "conv_norm_out."))
    }
    assert set(select(sd14_unet, "xattn-kv")[0]) < xattn


def test_unknown_group_lists_the_valid_ones(sd14_unet):
    with pytest.raises(ErasekitError, match="valid: " + ", ".join(UNET_GROUPS)):
        select(sd14_unet, "attn3")
