"""Commands that make or ship an edit: erase, hide, recover, export."""

from __future__ import annotations

from pathlib import Path

import click

from erasekit.cli import DEVICE_HELP, MODEL_HELP, dtype_option, main, out_options, resolution_option
from erasekit.core.errors import ErasekitError

OVERWRITE_HELP = "replace an existing OUT (only if everything in it was written by erasekit), or discard OUT.partial/ and start again"


@main.command()
@click.option("--model", default="mini", show_default=True, help=MODEL_HELP)
@click.option("--method", required=True, help="a method name (see `erasekit methods`)")
@click.option("--erase", "erase_", required=True, help="comma-separated concepts to erase")
@click.option("--preserve", default=None, help="comma-separated concepts to preserve")
@click.option(
    "--target",
    default="",
    help="what the erased concepts become (default: the method's: the empty "
    "prompt, or on the miniature the nearest object for methods whose preset has guide=nearest)",
)
@click.option("--anchor", default=None, help="Concept Ablation's anchor concept (default: the target)")
@click.option("--config", "config_file", default=None, type=click.Path(), help="YAML file of method options")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override one method option")
@click.option("--out", required=True, type=click.Path(), help="run folder: the Edit (and its loss.csv)")
@click.option("--resume", is_flag=True, help="continue an interrupted run from OUT.partial/")
@click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)
@click.option(
    "--clip",
    default=None,
    type=click.Path(),
    help="local CLIP folder (on real models: UCE debias's judge, Dark Miner's verifier)",
)
@click.option("--device", default=None, help=DEVICE_HELP)
@dtype_option(
    "precision the model is loaded in; bf16/fp16 keep the frozen weights in half precision while the trained "
    "group trains in fp32 under autocast (a fine-tuning method's memory option)"
)
@click.option("--quiet", is_flag=True, help="no progress bar")
@resolution_option
def erase(
    model,
    method,
    erase_,
    preserve,
    target,
    anchor,
    config_file,
    overrides,
    out,
    resume,
    overwrite,
    clip,
    device,
    dtype,
    quiet,
    resolution,
):
    """Erase concepts from a model with a method; writes an Edit folder.

    \b
    Examples:
      erasekit erase --method esd --erase star --out runs/esd-star
      erasekit erase --method uce --erase circle --target square --set mode=edit --out runs/uce-edit
      erasekit erase --method uce --erase star --set mode=debias --set attributes=yellow,red,blue,green --out runs/d
    """
    from erasekit.core.key import KEY_FILE
    from erasekit.methods import registry
    from erasekit.methods.concepts import ConceptSet, split_list
    from erasekit.models.load import load_bundle
    from erasekit.runs import erase as runs
    from erasekit.runs.record import prepare

    spec = registry.get(method)
    concepts = ConceptSet(split_list(erase_), split_list(preserve), target=target, anchor=anchor)
    prepare(out, resume, overwrite)
    bundle = load_bundle(model, device=device, dtype=dtype).at_resolution(resolution)
    config = registry.build_config(spec, config_file, overrides, preset=bundle.preset)
    scorer = runs.plan(bundle, spec, concepts, config, clip)
    edit = runs.erase(
        bundle, spec, concepts, config, out, scorer=scorer, resume=resume, overwrite=overwrite, progress=not quiet
    )
    click.echo(
        f"wrote {out}  ({spec.name}: erased {', '.join(concepts.erase)}; "
        f"{len(edit.tensors)} tensors, {sum(v.numel() for v in edit.tensors.values()):,} values)"
    )
    for key, value in edit.metrics.items():
        click.echo(f"  {key}: {value}")
    if (Path(out) / KEY_FILE).exists():
        click.echo(
            f"  key: {Path(out) / KEY_FILE} (it brings {', '.join(concepts.erase)} back: keep it apart from what you share)"
        )


HIDE_HELP = """Hide concepts behind a learnable key (Eq. 15): the model draws them no more, the key brings them back.

\b
Writes the run folder: the Edit of the hidden model and RUN/key.safetensors, the key (keep it apart from the edit
or `erasekit export`'s model when you share them). Options as `erasekit erase --method hide` (see `erasekit methods`).
Examples:
  erasekit hide --erase star --out runs/hide-star
  erasekit generate --edit runs/hide-star --key runs/hide-star/key.safetensors --prompt "a star" --out star.png
"""


@main.command(help=HIDE_HELP)
@click.option("--model", default="mini", show_default=True, help=MODEL_HELP)
@click.option("--erase", "erase_", required=True, help="comma-separated concepts to hide")
@click.option("--preserve", default=None, help="comma-separated concepts to preserve (the paper's Ours*)")
@click.option("--config", "config_file", default=None, type=click.Path(), help="YAML file of options")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override one option")
@click.option("--out", required=True, type=click.Path(), help="run folder: the Edit and key.safetensors")
@click.option("--resume", is_flag=True, help="continue an interrupted run from OUT.partial/")
@click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--quiet", is_flag=True, help="no progress bar")
@resolution_option
@click.pass_context
def hide(ctx, **options):
    ctx.invoke(erase, method="hide", target="", anchor=None, clip=None, **options)


@main.command()
@click.option("--edit", "edit_path", required=True, type=click.Path(), help="the hidden (or erased) model's run folder")
@click.option("--model", default=None, help=MODEL_HELP + " (default: the edit's base)")
@click.option("--concept", required=True, help="comma-separated concepts to recover a key for")
@click.option("--config", "config_file", default=None, type=click.Path(), help="YAML file of options")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="override one option: rho (ρ, relative to the concept's norm), start (concept|random), iterations, "
    "lr, key_tokens, ...",
)
@click.option("--out", required=True, type=click.Path(), help="the key file to write (.safetensors)")
@click.option("--resume", is_flag=True, help="continue an interrupted run from OUT.partial/")
@click.option("--overwrite", is_flag=True, help="replace an existing OUT, or discard OUT.partial/ and start again")
@click.option("--quiet", is_flag=True, help="no progress bar")
def recover(edit_path, model, concept, config_file, overrides, out, resume, overwrite, quiet):
    """Re-derive a hidden concept's key (Eq. 16): projected gradient descent in a ρ-ball around the concept.

    \b
    Needs the base model (the teacher) and the hidden model's edit. Works on any edit: how far from the concept a
    key has to go to bring an *erased* concept back is a measure of the erasure too.
    Examples:
      erasekit recover --edit runs/hide-star --concept star --out keys/star.safetensors
      erasekit recover --edit runs/esd-star --concept star --set rho=1.0 --set start=random --out keys/esd.safetensors
    """
    from erasekit.core.files import claim_partial
    from erasekit.core.key import check_key_path
    from erasekit.methods.concepts import split_list
    from erasekit.methods.hide import recover_config
    from erasekit.runs import erase as runs
    from erasekit.runs.inputs import edit_and_base

    concepts = split_list(concept)
    if not concepts:
        raise ErasekitError("empty concept list: name the concept to recover (--concept star)")
    check_key_path(out, overwrite)
    claim_partial(out, resume, overwrite)
    edit, base = edit_and_base(edit_path, model)
    config = recover_config(base.preset, config_file, overrides)
    key = runs.recover(base, edit, concepts, config, out, resume=resume, overwrite=overwrite, progress=not quiet)
    distance = ", ".join(f"{c} {d:.3f}" for c, d in key.metrics["distance"].items())
    click.echo(
        f"wrote {out}  (recover {', '.join(concepts)}: rho {config.rho}; ||p - c_e|| / ||c_e||: {distance}; "
        f"final loss {key.metrics['final_loss']:.4g})"
    )


@main.command()
@click.argument("run", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="output folder (diffusers) or .safetensors file")
@click.option("--model", default=None, help="base model (default: the source recorded in the edit)")
@click.option(
    "--format",
    "fmt",
    default="diffusers",
    type=click.Choice(["diffusers", "single-file", "textual-inversion", "lora"]),
    help="a pipeline folder, one LDM .safetensors, (a learned word) a textual-inversion file, or (a LoRA "
    "edit) the adapters alone, as a folder that diffusers' load_lora_weights reads",
)
@out_options
def export(run, out, model, fmt, overwrite, force):
    """Write a model with an edit applied, for stock diffusers (or A1111/ComfyUI with --format single-file).

    \b
    Examples:
      erasekit export runs/esd-star --out exported/esd-star
      erasekit export runs/darkminer-mark --format lora --out exported/darkminer-mark-lora
    """
    from erasekit.models.export import check_export
    from erasekit.models.export import export as export_edit
    from erasekit.runs.inputs import edit_and_base

    if fmt in ("textual-inversion", "lora"):  # the learned word or the adapters alone: no model is needed
        from erasekit.core.edit import Edit, load_embedding

        edit = load_embedding(run) if fmt == "textual-inversion" else Edit.load(run)
        check_export(out, fmt, overwrite, edit)
        click.echo(f"wrote {export_edit(edit, None, out, format=fmt, overwrite=overwrite)}")
        return
    check_export(out, fmt, overwrite)
    edit, base = edit_and_base(run, model, force)
    click.echo(f"wrote {export_edit(edit, base, out, format=fmt, force=force, overwrite=overwrite)}")
