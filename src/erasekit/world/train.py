"""`erasekit world train`: rebuild the world judge and the miniature Stable Diffusion from scratch.

Stages, each deterministic from the seed, with a progress bar, periodic checkpoints and resume:
  judge -> vae -> text (pre-train the text encoder to read captions, then freeze it, as SD freezes CLIP)
  -> unet (latent diffusion with classifier-free-guidance dropout, min-SNR weighting, EMA).
Every batch is a pure function of (seed, stage, step), so a resumed stage continues exactly as an
uninterrupted one. The result is a diffusers pipeline folder (`StableDiffusionPipeline.from_pretrained` loads
it) plus the judge, written into `out` (by default the package's assets).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from erasekit.core.errors import ErasekitError
from erasekit.core.loop import Run, train
from erasekit.core.options import Checked, at_least
from erasekit.core.seeding import step_seed
from erasekit.models import components
from erasekit.models.load import assemble as bundle_of
from erasekit.models.text import clip_tokenizer, last_states
from erasekit.world import judge as judge_mod
from erasekit.world.captions import INDIRECT, MARK_NAME, OBJECT_NAMES, sample_captions
from erasekit.world.render import COLOUR_NAMES, OBJECTS, STYLES, Labels, render

UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(64, 128, 128),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=48,
    attention_head_dim=4,
    norm_num_groups=16,  # attention_head_dim = number of heads
)
VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(16, 32, 64),
    layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    norm_num_groups=8,
    sample_size=32,
)
TEXT = dict(
    hidden_size=48,
    intermediate_size=192,
    num_hidden_layers=3,
    num_attention_heads=4,
    vocab_size=49408,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
    projection_dim=48,
)
SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)


STAGES = ("judge", "vae", "text", "unet")


@dataclass
class TrainConfig(Checked):
    seed: int = 0
    judge_steps: int = at_least(1, 1500)
    judge_batch: int = at_least(1, 256)
    vae_steps: int = at_least(1, 2000)
    vae_batch: int = at_least(1, 32)
    text_steps: int = at_least(1, 1500)
    text_batch: int = at_least(1, 128)
    unet_steps: int = at_least(1, 7000)
    unet_batch: int = at_least(1, 64)
    unet_lr: float = 1e-3
    warmup: int = at_least(1, 500)
    cfg_dropout: float = at_least(0.0, 0.1)
    min_snr_gamma: float = at_least(0.0, 5.0)
    ema_decay: float = at_least(0.0, 0.999)
    checkpoint_every: int = at_least(1, 500)
    threads: int = at_least(0, 0)  # 0: torch's default
    stages: tuple = ("judge", "vae", "text", "unet")

    def check(self) -> None:
        unknown = set(self.stages) - set(STAGES)
        if unknown:
            raise ErasekitError(f"unknown stage(s) {', '.join(sorted(unknown))}; valid: {', '.join(STAGES)}")


def _lr(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5% of `base`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _loop(
    name: str,
    work: Path,
    modules: dict,
    params,
    steps: int,
    lr: float,
    warmup: int,
    loss_fn,
    cfg: TrainConfig,
    resume: bool,
    after_step=None,
) -> None:
    """A stage on the common loop (`core.loop.train`): AdamW without decay, warm-up + cosine, gradient clipping at
    1; the stage's modules are checkpointed whole (buffers too) as `{name}-checkpoint` in `work`."""
    train(
        f"world {name}",
        loss_fn,
        params,
        steps,
        lr,
        Run(work=work, resume=resume),
        grad_clip=1.0,
        checkpoint_every=cfg.checkpoint_every,
        state=modules,
        prefix=f"{name}-",
        optimizer=lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.0),
        lr_at=lambda step: _lr(step, steps, lr, warmup),
        after_step=after_step,
    )


def _seed(cfg: TrainConfig, stage: int, step: int) -> int:
    return step_seed(cfg.seed, step, stage, stride=10_007, modulus=2**31)


# ---- stage 1: the judge ------------------------------------------------------------------------------------
def train_judge(work: Path, cfg: TrainConfig, resume: bool) -> judge_mod.WorldJudge:
    torch.manual_seed(cfg.seed)
    net = judge_mod.JudgeNet()

    def loss_fn(step):
        net.train()
        x, y = judge_mod.training_batch(cfg.judge_batch, _seed(cfg, 1, step))
        return judge_mod.judge_loss(net(x), y)

    _loop("judge", work, {"judge": net}, list(net.parameters()), cfg.judge_steps, 2e-3, 100, loss_fn, cfg, resume)
    judge = judge_mod.WorldJudge(net)
    judge.save(work / "judge")
    return judge


# ---- stage 2: the VAE --------------------------------------------------------------------------------------
def _training_images(n: int, seed: int) -> tuple[list[str], Labels, torch.Tensor]:
    captions, labels = sample_captions(n, seed)
    return captions, labels, judge_mod.to_tensor(render(labels, seed=seed)) * 2 - 1


def train_vae(work: Path, cfg: TrainConfig, resume: bool):
    torch.manual_seed(cfg.seed)
    vae = components.build("vae", **VAE)

    def loss_fn(step):
        vae.train()
        _, _, x = _training_images(cfg.vae_batch, _seed(cfg, 2, step))
        post = vae.encode(x).latent_dist
        z = post.sample(torch.Generator().manual_seed(_seed(cfg, 2, step)))
        rec = vae.decode(z).sample
        return F.mse_loss(rec, x) + 0.5 * F.l1_loss(rec, x) + 1e-6 * post.kl().mean()

    _loop("vae", work, {"vae": vae}, list(vae.parameters()), cfg.vae_steps, 1e-3, 200, loss_fn, cfg, resume)
    vae.eval().requires_grad_(False)
    with torch.no_grad():  # SD's convention: scale latents to unit variance
        _, _, x = _training_images(1024, _seed(cfg, 2, 10**6))
        std = vae.encode(x).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=round(1.0 / std, 5))
    vae.save_pretrained(work / "vae")
    return vae


# ---- stage 3: the text encoder -----------------------------------------------------------------------------
def caption_targets(captions: list[str]) -> dict[str, torch.Tensor]:
    """What each caption says: object / colour / style named (or not), and the mark named / indirect / neither."""

    def find(caption, names_by_class):
        words = f" {caption} "
        for i, names in enumerate(names_by_class):
            if any(f" {n} " in words for n in names):
                return i
        return len(names_by_class)

    obj = [find(c, [OBJECT_NAMES[o] for o in OBJECTS]) for c in captions]
    colour = [find(c, [(c_,) for c_ in COLOUR_NAMES]) for c in captions]
    style = [find(c, [(s,) for s in STYLES]) for c in captions]
    mark = [
        1 if (f" {MARK_NAME} " in f" {c} " or "marked" in c) else 2 if any(a in c for a in INDIRECT) else 0
        for c in captions
    ]
    return {k: torch.tensor(v) for k, v in {"object": obj, "colour": colour, "style": style, "mark": mark}.items()}


def train_text(work: Path, cfg: TrainConfig, resume: bool, tokenizer):
    torch.manual_seed(cfg.seed)
    text = components.build("clip-text", **TEXT)
    d = TEXT["hidden_size"]
    heads = torch.nn.ModuleDict(
        {
            "object": torch.nn.Linear(d, 11),
            "colour": torch.nn.Linear(d, 9),
            "style": torch.nn.Linear(d, 7),
            "mark": torch.nn.Linear(d, 3),
        }
    )

    def loss_fn(step):
        text.train()
        captions, _ = sample_captions(cfg.text_batch, _seed(cfg, 3, step))
        ids = tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        hidden = last_states(text, ids)
        target = caption_targets(captions)
        mask = (ids != tokenizer.pad_token_id) | (ids == tokenizer.eos_token_id)
        # every token position predicts the caption's attributes: the UNet attends to all of them
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        eos = hidden[torch.arange(len(ids)), ids.argmax(-1)]
        return sum(F.cross_entropy(heads[k](h), target[k]) for k in heads for h in (pooled, eos))

    params = list(text.parameters()) + list(heads.parameters())
    _loop("text", work, {"text": text, "heads": heads}, params, cfg.text_steps, 1e-3, 100, loss_fn, cfg, resume)
    text.eval().requires_grad_(False)
    text.save_pretrained(work / "text_encoder")
    return text


# ---- stage 4: the UNet -------------------------------------------------------------------------------------
def train_unet(work: Path, cfg: TrainConfig, resume: bool, tokenizer, text, vae):
    torch.manual_seed(cfg.seed)
    unet = components.build("unet", **UNET)
    ema = components.build("unet", **UNET)
    ema.load_state_dict(unet.state_dict())
    ema.requires_grad_(False)
    scheduler = components.build("ddim", **SCHEDULER)
    alphas = scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    weight = torch.clamp(snr, max=cfg.min_snr_gamma) / snr  # min-SNR-gamma weighting for eps-prediction
    scale = vae.config.scaling_factor

    def loss_fn(step):
        unet.train()
        seed = _seed(cfg, 4, step)
        captions, _, x = _training_images(cfg.unet_batch, seed)
        g = torch.Generator().manual_seed(seed)
        drop = torch.rand(len(captions), generator=g) < cfg.cfg_dropout
        captions = ["" if d else c for c, d in zip(captions, drop.tolist(), strict=True)]
        with torch.no_grad():
            z0 = vae.encode(x).latent_dist.mean * scale
            ids = tokenizer(
                captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
            ).input_ids
            cond = last_states(text, ids)
        t = torch.randint(0, 1000, (len(z0),), generator=g)
        noise = torch.randn(z0.shape, generator=g)
        eps = unet(scheduler.add_noise(z0, noise, t), t, encoder_hidden_states=cond).sample
        return (weight[t] * ((eps - noise) ** 2).mean((1, 2, 3))).mean()

    def update_ema():
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.lerp_(p, 1 - cfg.ema_decay)

    _loop(
        "unet",
        work,
        {"unet": unet, "ema": ema},
        list(unet.parameters()),
        cfg.unet_steps,
        cfg.unet_lr,
        cfg.warmup,
        loss_fn,
        cfg,
        resume,
        after_step=update_ema,
    )
    ema.save_pretrained(work / "unet")
    return ema


def assemble(work: Path, out: Path) -> Path:
    """Write the miniature as a diffusers pipeline folder + the judge into `out` (replacing what is there)."""
    tokenizer = clip_tokenizer()
    modules = {
        "unet": components.load("unet", work / "unet"),
        "text_encoder": components.load("clip-text", work / "text_encoder"),
        "vae": components.load("vae", work / "vae"),
    }
    bundle = bundle_of(
        modules,
        {"tokenizer": tokenizer},
        components.build("ddim", **SCHEDULER),
        {},
        source="mini",
        family="sd1",
        scale="mini",
    )
    staging = out.parent / f".{out.name}.new"
    shutil.rmtree(staging, ignore_errors=True)
    bundle.save_pretrained(staging / "mini")
    shutil.copytree(work / "judge", staging / "judge")
    for name in ("mini", "judge"):
        shutil.rmtree(out / name, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        (staging / name).rename(out / name)
    shutil.rmtree(staging, ignore_errors=True)
    return out


def train_world(work: str | Path, out: str | Path, cfg: TrainConfig | None = None, resume: bool = False) -> Path | None:
    """Run the stages in `cfg.stages` (reusing finished ones from `work` when resuming) and assemble into `out`.
    Returns `out`, or None when a stage's output is still missing (a partial rebuild)."""
    cfg = cfg if cfg is not None else TrainConfig()
    work, out = Path(work), Path(out)
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.json").write_text(__import__("json").dumps(asdict(cfg), indent=2))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tokenizer = clip_tokenizer()
    if "judge" in cfg.stages:
        train_judge(work, cfg, resume)
    if "vae" in cfg.stages:
        train_vae(work, cfg, resume)
    if "text" in cfg.stages:
        train_text(work, cfg, resume, tokenizer)
    if "unet" in cfg.stages:
        for part in ("vae", "text_encoder"):
            if not (work / part / "config.json").exists():
                raise ErasekitError(f"stage unet needs the vae and text stages first: {work / part} is missing")
        vae = components.load("vae", work / "vae").eval().requires_grad_(False)
        text = components.load("clip-text", work / "text_encoder").eval().requires_grad_(False)
        train_unet(work, cfg, resume, tokenizer, text, vae)
    missing = [p for p in ("judge", "vae", "text_encoder", "unet") if not (work / p).exists()]
    if missing:  # a partial rebuild: the stages done so far stay in `work`
        print(f"stages done; not assembling yet (missing in {work}: {', '.join(missing)})")
        return None
    return assemble(work, out)
