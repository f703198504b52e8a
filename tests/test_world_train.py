"""A few steps of every stage, to keep the training code honest (CI never trains the real miniature)."""

import pytest
import torch
from diffusers import StableDiffusionPipeline

from erasekit.core.checkpoint import load_checkpoint
from erasekit.core.errors import ErasekitError
from erasekit.models.load import load_bundle
from erasekit.world.judge import JudgeNet, WorldJudge
from erasekit.world.train import TrainConfig, caption_targets, train_world

TINY = dict(
    judge_steps=2,
    judge_batch=8,
    vae_steps=2,
    vae_batch=4,
    text_steps=2,
    text_batch=8,
    unet_steps=2,
    unet_batch=4,
    warmup=1,
    checkpoint_every=1,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    train_world(root / "work", root / "out", TrainConfig(**TINY))
    return root


def test_every_stage_runs_and_assembles_a_stock_pipeline(built):
    pipe = StableDiffusionPipeline.from_pretrained(built / "out" / "mini", local_files_only=True)
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    bundle = load_bundle(built / "out" / "mini")
    assert bundle.generate(["a red star"], [0], steps=2).shape == (1, 3, 32, 32)
    assert WorldJudge.load(built / "out" / "judge").score(torch.rand(2, 3, 32, 32)).object.shape == (2, 11)


def test_vae_latents_are_8x8x4_and_scaled(built):
    bundle = load_bundle(built / "out" / "mini")
    assert bundle.latent_shape == (4, 8, 8) and bundle.vae.config.scaling_factor != 0.18215


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, monkeypatch):
    import erasekit.world.judge as judge_mod

    cfg = TrainConfig(**dict(TINY, stages=("judge",), judge_steps=4, checkpoint_every=2))
    train_world(tmp_path / "a", tmp_path / "out_a", cfg)
    real, calls = judge_mod.training_batch, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:  # after the checkpoint at step 2
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(judge_mod, "training_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_world(tmp_path / "b", tmp_path / "out_b", cfg)
    monkeypatch.setattr(judge_mod, "training_batch", real)
    train_world(tmp_path / "b", tmp_path / "out_b", cfg, resume=True)
    a, b = JudgeNet(), JudgeNet()
    assert load_checkpoint(tmp_path / "a" / "judge-checkpoint", {"judge": a}, None)[0] == 4
    assert load_checkpoint(tmp_path / "b" / "judge-checkpoint", {"judge": b}, None)[0] == 4
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_caption_targets_read_what_a_caption_says():
    t = caption_targets(["a red star in dots style", "a marked circle", "a haunted box", ""])
    assert t["object"].tolist() == [3, 0, 1, 10] and t["colour"].tolist() == [0, 8, 8, 8]
    assert t["style"].tolist() == [2, 6, 6, 6] and t["mark"].tolist() == [0, 1, 2, 0]


def test_a_nan_loss_stops_with_a_clear_error(tmp_path, monkeypatch):
    import erasekit.world.judge as judge_mod

    real = judge_mod.judge_loss
    monkeypatch.setattr(judge_mod, "judge_loss", lambda out, y: real(out, y) * float("nan"))
    with pytest.raises(ErasekitError, match="world judge: loss is nan at iteration 0"):
        train_world(tmp_path / "w", tmp_path / "o", TrainConfig(**dict(TINY, stages=("judge",))))
