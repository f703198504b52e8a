import json

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file, save_file

from erasekit.core.edit import Edit
from erasekit.core.errors import ErasekitError
from erasekit.models.export import export
from erasekit.models.load import load_bundle

KEY = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v.weight"


@pytest.fixture()
def edit(tiny):
    new = dict(tiny.named_parameters())[KEY] + 0.5
    return Edit.from_changes(tiny, {KEY: new}, method="test", config={"lr": 1.0}, concepts={"erase": ["star"]})


def test_apply_save_load_apply_gives_identical_tensors(tiny, edit, tmp_path):
    first = edit.apply(tiny)
    edit.save(tmp_path / "run")
    second = Edit.load(tmp_path / "run").apply(tiny)
    assert torch.equal(dict(first.named_parameters())[KEY], dict(second.named_parameters())[KEY])
    assert torch.equal(dict(first.named_parameters())[KEY], dict(tiny.named_parameters())[KEY] + 0.5)
    assert first.fingerprint() == second.fingerprint() != tiny.fingerprint()


def test_apply_leaves_the_base_bundle_untouched(tiny, edit):
    before = tiny.fingerprint()
    edit.apply(tiny)
    assert tiny.fingerprint() == before


def test_manifest_records_what_was_done(tiny, edit, tmp_path):
    edit.save(tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["method"] == "test" and manifest["config"] == {"lr": 1.0}
    assert manifest["base"] == {"source": "tiny", "fingerprint": tiny.fingerprint(), "family": "sd1"}
    assert manifest["tensors"] == {KEY: [16, 32]} and manifest["concepts"] == {"erase": ["star"]}
    assert manifest["erasekit_version"] and manifest["created"]


def test_export_loads_in_stock_diffusers_and_draws_the_same_image(tiny, tmp_path):
    params = dict(tiny.named_parameters())
    changes = {KEY: params[KEY] + 0.5, "unet.conv_out.weight": params["unet.conv_out.weight"] * 3}
    edit = Edit.from_changes(tiny, changes, method="test", config={}, concepts={})
    out = export(edit, tiny, tmp_path / "exported")
    pipe = StableDiffusionPipeline.from_pretrained(out, local_files_only=True)
    theirs = pipe(
        "a red star",
        num_inference_steps=4,
        guidance_scale=5.0,
        output_type="pt",
        generator=torch.Generator().manual_seed(3),
    ).images
    ours = edit.apply(tiny).generate(["a red star"], [3], steps=4, guidance=5.0)
    base = tiny.generate(["a red star"], [3], steps=4, guidance=5.0)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(ours, base, atol=1e-4)


def test_single_file_export_reads_back_as_the_edited_model(tiny, edit, tmp_path, tiny_folder):
    out = export(edit, tiny, tmp_path / "edited.safetensors", format="single-file")
    loaded = load_bundle(out, config=tiny_folder)
    assert loaded.fingerprint() == edit.apply(tiny).fingerprint()


def test_lora_edit_adds_the_low_rank_delta(tiny):
    a, b = torch.randn(2, 32), torch.randn(16, 2)
    edit = Edit.from_changes(
        tiny, {KEY + ".lora_A": a, KEY + ".lora_B": b}, method="t", config={}, concepts={}, kind="lora", lora_scale=0.5
    )
    edited = edit.apply(tiny)
    assert torch.allclose(dict(edited.named_parameters())[KEY], dict(tiny.named_parameters())[KEY] + 0.5 * b @ a)


def test_missing_file_is_named(edit, tmp_path):
    edit.save(tmp_path / "run")
    (tmp_path / "run" / "edit.safetensors").unlink()
    with pytest.raises(ErasekitError, match="is missing edit.safetensors"):
        Edit.load(tmp_path / "run")


def test_not_a_folder_is_named(tmp_path):
    with pytest.raises(ErasekitError, match="edit not found"):
        Edit.load(tmp_path / "nothing")


def test_corrupt_safetensors_is_named(edit, tmp_path):
    edit.save(tmp_path / "run")
    path = tmp_path / "run" / "edit.safetensors"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ErasekitError, match="corrupt edit file"):
        Edit.load(tmp_path / "run")


def test_corrupt_manifest_is_named(edit, tmp_path):
    edit.save(tmp_path / "run")
    (tmp_path / "run" / "manifest.json").write_text("{not json")
    with pytest.raises(ErasekitError, match="corrupt manifest"):
        Edit.load(tmp_path / "run")


def test_manifest_without_required_keys_is_named(edit, tmp_path):
    edit.save(tmp_path / "run")
    path = tmp_path / "run" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["base"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ErasekitError, match="missing keys: base"):
        Edit.load(tmp_path / "run")


def test_manifest_and_tensor_file_must_agree(edit, tmp_path):
    edit.save(tmp_path / "run")
    save_file({KEY: torch.zeros(16, 32), "unet.extra": torch.zeros(1)}, str(tmp_path / "run" / "edit.safetensors"))
    with pytest.raises(ErasekitError, match="does not hold the tensors manifest.json lists"):
        Edit.load(tmp_path / "run")


def test_tensor_not_in_base_is_refused(tiny):
    edit = Edit.from_changes(tiny, {"unet.no.such.weight": torch.zeros(2)}, method="t", config={}, concepts={})
    with pytest.raises(ErasekitError, match="'unet.no.such.weight' of the edit is not in the base model"):
        edit.apply(tiny)


def test_tensor_of_another_shape_is_refused(tiny):
    edit = Edit.from_changes(tiny, {KEY: torch.zeros(16, 33)}, method="t", config={}, concepts={})
    with pytest.raises(ErasekitError, match=r"has shape \(16, 33\) in the edit but \(16, 32\) in the base"):
        edit.apply(tiny)


def test_other_base_is_refused_unless_forced(tiny, edit):
    other = tiny.clone(("vae",))
    with torch.no_grad():
        other.vae.decoder.conv_in.bias.add_(1.0)
    with pytest.raises(ErasekitError, match="fingerprint .* pass --force"):
        edit.apply(other)
    assert torch.equal(dict(edit.apply(other, force=True).named_parameters())[KEY], edit.tensors[KEY])


def test_save_refuses_to_overwrite_and_leaves_no_temporary_folder(edit, tmp_path):
    edit.save(tmp_path / "run")
    with pytest.raises(ErasekitError, match="already exists"):
        edit.save(tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_interrupted_save_leaves_no_half_written_edit(edit, tmp_path, monkeypatch):
    import erasekit.core.edit as edit_module

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(edit_module, "save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        edit.save(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_saved_tensors_are_the_new_values(tiny, edit, tmp_path):
    edit.save(tmp_path / "run")
    assert torch.equal(load_file(str(tmp_path / "run" / "edit.safetensors"))[KEY], edit.tensors[KEY])
