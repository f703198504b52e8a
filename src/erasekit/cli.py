"""The `erasekit` command line: a thin wrapper over the Python API.

Every user error prints one line, `erasekit: error: ...`, and exits with status 2 (no traceback).
"""

from __future__ import annotations

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


if __name__ == "__main__":
    main()
