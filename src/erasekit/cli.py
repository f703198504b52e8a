"""The `erasekit` command line: a thin wrapper over the Python API.

Every user error prints one line, `erasekit: error: ...`, and exits with status 2 (no traceback).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import click

from erasekit import __version__
from erasekit.core.errors import ErasekitError


def quiet_libraries() -> None:
    """Keep diffusers/transformers to errors only: their load-time chatter hides our own output."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


class Group(click.Group):
    """Turns ErasekitError (and Ctrl-C) into one line on stderr and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ErasekitError as exc:
            click.echo(f"erasekit: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("erasekit: interrupted", err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="erasekit")
def main():
    """Erase, hide and recover concepts in text-to-image diffusion models.

    \b
    Example:
      erasekit info mini
    """
    quiet_libraries()


MODEL_HELP = "'mini' (embedded miniature), 'tiny' (random SD-shaped), a hub id, a diffusers folder or a .safetensors file"


@main.command()
@click.argument("source", default="mini")
@click.option("--device", default=None, help="cuda, cpu, ... (default: cuda if available)")
@click.option("--dtype", default="fp32", type=click.Choice(["fp32", "bf16", "fp16"]))
def info(source, device, dtype):
    """Describe a model: architecture, parameter counts per group, cross-attention layers.

    \b
    SOURCE: """ + MODEL_HELP + """
    Example:
      erasekit info mini
    """
    from erasekit.core.bundle import load_bundle
    from erasekit.core.targets import GROUPS, cross_attention_layers, select

    bundle = load_bundle(source, device=device, dtype=dtype)
    click.echo(f"source        {bundle.source}")
    click.echo(f"architecture  {bundle.arch}  (UNet2DConditionModel + CLIPTextModel + AutoencoderKL)")
    click.echo(f"device/dtype  {bundle.device} / {str(bundle.dtype).replace('torch.', '')}")
    click.echo(f"fingerprint   {bundle.fingerprint()}")
    h = bundle.latent_shape[1] * bundle.vae_scale_factor
    click.echo(f"image         {h}x{h}  latent {'x'.join(map(str, bundle.latent_shape))}  "
               f"text {bundle.text_encoder.config.hidden_size}-d, vocab {len(bundle.tokenizer)}")
    click.echo(f"prediction    {bundle.scheduler.config.prediction_type}  ({type(bundle.scheduler).__name__})")
    click.echo("parameters")
    for comp in ("unet", "text_encoder", "vae"):
        n = sum(p.numel() for p in bundle.component(comp).parameters())
        click.echo(f"  {comp:<13}{n:>14,}")
    click.echo("UNet parameter groups")
    for group, (desc, _) in GROUPS.items():
        n = sum(p.numel() for p in select(bundle.unet, group)[1])
        click.echo(f"  {group:<13}{n:>14,}  {desc}")
    layers = cross_attention_layers(bundle.unet)
    click.echo(f"cross-attention layers ({len(layers)})")
    for name, module in layers:
        click.echo(f"  {name:<52} to_k/to_v {module.to_k.in_features} -> {module.to_k.out_features}")


@main.command()
@click.argument("run", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="output folder (diffusers) or .safetensors file")
@click.option("--model", default=None, help="base model (default: the source recorded in the edit)")
@click.option("--format", "fmt", default="diffusers", type=click.Choice(["diffusers", "single-file"]))
@click.option("--force", is_flag=True, help="apply even if the base model's fingerprint differs")
def export(run, out, model, fmt, force):
    """Write a model with an edit applied, for stock diffusers (or A1111/ComfyUI with --format single-file).

    \b
    Example:
      erasekit export runs/esd-star --out exported/esd-star
    """
    from erasekit.core.bundle import load_bundle
    from erasekit.core.edit import Edit, export as export_edit

    edit = Edit.load(run)
    base = load_bundle(model or edit.base["source"])
    path = export_edit(edit, base, out, format=fmt, force=force)
    click.echo(f"wrote {path}")


@main.command()
@click.argument("model_arg", required=False, metavar="[MODEL]")
@click.option("--model", default=None, help=MODEL_HELP + " (default: mini)")
@click.option("--prompt", required=True, help="the text prompt")
@click.option("--n", default=16, show_default=True, help="number of images (seeds SEED..SEED+N-1)")
@click.option("--seed", default=0, show_default=True)
@click.option("--steps", default=25, show_default=True, help="DDIM steps")
@click.option("--guidance", default=5.0, show_default=True, help="classifier-free guidance scale")
@click.option("--out", required=True, type=click.Path(), help="output .png grid")
def generate(model_arg, model, prompt, n, seed, steps, guidance, out):
    """Generate N seeded images for a prompt and save them as one grid.

    \b
    Example:
      erasekit generate --model mini --prompt "a red star" --n 16 --out grid.png
    """
    from erasekit.core.bundle import load_bundle
    from erasekit.eval.generate import generate_batched, grid, save_image

    if not prompt.strip():
        raise ErasekitError("empty prompt: give a text prompt to generate from")
    bundle = load_bundle(model or model_arg or "mini")
    images = generate_batched(bundle, [prompt] * n, list(range(seed, seed + n)), steps=steps, guidance=guidance)
    scale = max(1, 128 // images.shape[-1])
    click.echo(f"wrote {save_image(grid(images, nrow=min(8, n), upscale=scale), out)}")


@main.group()
def world():
    """The miniature world: rebuild the judge and the embedded miniature."""


@world.command("train")
@click.option("--work", default="world-build", show_default=True, type=click.Path(),
              help="folder for checkpoints and stage outputs")
@click.option("--out", default=None, type=click.Path(), help="where to put mini/ and judge/ (default: the package)")
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True, help="continue from the checkpoints in --work")
@click.option("--stages", default="judge,vae,text,unet", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a TrainConfig field")
def world_train(work, out, seed, resume, stages, overrides):
    """Rebuild the world judge and the miniature from scratch (deterministic from --seed).

    \b
    Example:
      erasekit world train --resume
    """
    from erasekit.core.bundle import ASSETS
    from erasekit.world.train import TrainConfig, train_world

    fields = {f.name: f.type for f in dataclasses.fields(TrainConfig) if f.name not in ("stages", "extra")}
    values = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in fields:
            raise ErasekitError(f"unknown training option {key!r}; valid: {', '.join(fields)}")
        values[key] = {"int": int, "float": float}[fields[key]](value)
    cfg = TrainConfig(seed=seed, stages=tuple(s.strip() for s in stages.split(",")), **values)
    unknown = set(cfg.stages) - {"judge", "vae", "text", "unet"}
    if unknown:
        raise ErasekitError(f"unknown stage(s) {', '.join(sorted(unknown))}; valid: judge, vae, text, unet")
    path = train_world(work, out or str(ASSETS), cfg, resume=resume)
    if path is not None:
        click.echo(f"wrote {path}/mini and {path}/judge")


if __name__ == "__main__":
    main()
