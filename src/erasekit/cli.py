"""The `erasekit` command line: a thin wrapper over the Python API.

Every user error, click's own usage errors included, prints one line, `erasekit: error: ...`, and exits with
status 2 (no traceback). Every input is checked before any work starts, and nothing half-written is left behind.
Heavy libraries (torch, diffusers) are imported inside the commands, so `--help` and `--version` answer at once.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from erasekit import __version__
from erasekit.core.errors import ErasekitError


def quiet_libraries() -> None:
    """Keep diffusers/transformers to errors only: their load-time chatter hides our own output. Set through their
    environment variables, so that nothing is imported here."""
    for var, value in (
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("DIFFUSERS_VERBOSITY", "error"),
        ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
    ):
        os.environ.setdefault(var, value)
    if "transformers" in sys.modules:  # already imported (by a caller of the API): the variables came too late
        sys.modules["transformers"].utils.logging.set_verbosity_error()
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if "diffusers" in sys.modules:
        sys.modules["diffusers"].utils.logging.set_verbosity_error()


def fail(message: str) -> None:
    click.echo(f"erasekit: error: {message}", err=True)
    sys.exit(2)


class Group(click.Group):
    """Turns ErasekitError, click's usage errors, OS errors on the user's paths and Ctrl-C into one line on stderr
    and a non-zero exit."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        kwargs.setdefault("prog_name", "erasekit")  # also under `python -m erasekit.cli`
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            fail(" ".join(exc.format_message().split()) + where)
        except click.ClickException as exc:
            fail(" ".join(exc.format_message().split()))
        except click.Abort:
            click.echo("erasekit: interrupted", err=True)
            sys.exit(130)
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ErasekitError as exc:
            fail(str(exc))
        except OSError as exc:  # a path erasekit could not read or write, found late (most are checked up front)
            if exc.filename is None:
                raise
            fail(f"cannot access {exc.filename}: {exc.strerror}")
        except (MemoryError, RuntimeError) as exc:  # torch's OutOfMemoryError is a RuntimeError; other ones are bugs
            if not isinstance(exc, MemoryError) and type(exc).__name__ != "OutOfMemoryError":
                raise
            first = (str(exc).strip().splitlines() or ["no detail"])[0]
            fail(
                f"out of memory ({first}): draw smaller images (--resolution), or use a device with more memory; "
                "an interrupted run resumes from its last checkpoint with --resume"
            )
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


MODEL_HELP = (
    "'mini' (embedded miniature), 'tiny' (random SD-shaped), a hub id, a diffusers folder or a .safetensors file"
)
DEVICE_HELP = "where to run: cuda, cuda:1, cpu, mps ... (default: cuda if available, else cpu)"


def _out_options(fn):
    """--overwrite and --force, shared by every command that writes an output or applies an edit."""
    fn = click.option("--force", is_flag=True, help="apply an edit even if the base model's fingerprint differs")(fn)
    return click.option(
        "--overwrite",
        is_flag=True,
        help="replace an existing output (only if everything in it was written by erasekit)",
    )(fn)


INFO_HELP = f"""Describe a model: family, text encoders, parameter counts per component and group, attention layers.

\b
SOURCE: {MODEL_HELP}
Example:
  erasekit info mini
  erasekit info exported/esd-star.safetensors
"""


@main.command(help=INFO_HELP)
@click.argument("source", default="mini")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--dtype", default="fp32", type=click.Choice(["fp32", "bf16", "fp16"]), help="weights' precision")
@click.option(
    "--config",
    "config_dir",
    default=None,
    type=click.Path(),
    help="single-file checkpoint of another layout: a folder with its unet/, vae/, text_encoder/ configs",
)
def info(source, device, dtype, config_dir):
    from erasekit.models.describe import describe
    from erasekit.models.load import load_bundle

    click.echo("\n".join(describe(load_bundle(source, device=device, dtype=dtype, config=config_dir))))


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
@_out_options
def export(run, out, model, fmt, overwrite, force):
    """Write a model with an edit applied, for stock diffusers (or A1111/ComfyUI with --format single-file).

    \b
    Examples:
      erasekit export runs/esd-star --out exported/esd-star
      erasekit export runs/darkminer-mark --format lora --out exported/darkminer-mark-lora
    """
    from erasekit.models.export import check_export
    from erasekit.models.export import export as export_edit

    if fmt in ("textual-inversion", "lora"):  # the learned word or the adapters alone: no model is needed
        from erasekit.core.edit import Edit, load_embedding

        edit = load_embedding(run) if fmt == "textual-inversion" else Edit.load(run)
        check_export(out, fmt, overwrite, edit)
        click.echo(f"wrote {export_edit(edit, None, out, format=fmt, overwrite=overwrite)}")
        return
    check_export(out, fmt, overwrite)
    edit, base = _edit_and_base(run, model, force)
    path = export_edit(edit, base, out, format=fmt, force=force, overwrite=overwrite)
    click.echo(f"wrote {path}")


def _edit_and_base(edit_path, source, force=False, resolution=None):
    """(Edit or None, base Bundle): the edit read and checked against the base (its recorded source unless a model
    is named) before any work; the base draws `resolution` px images (None: its own size)."""
    from erasekit.core.edit import Edit
    from erasekit.models.load import load_bundle

    edit = Edit.load(edit_path) if edit_path is not None else None
    base = load_bundle(source or (edit.base["source"] if edit is not None else "mini")).at_resolution(resolution)
    if edit is not None:
        edit.check(base, force=force)
    return edit, base


def _resolution_option(fn):
    return click.option(
        "--resolution",
        default=None,
        type=click.IntRange(min=1),
        metavar="PIXELS",
        help="side of the images drawn (default: the model's own: 512 for SD-1.x, 768 for SD-2.x, "
        "32 for the miniature)",
    )(fn)


def _model(source, edit_path, force=False, embedding=None, resolution=None):
    """The model, with an edit applied when one is given, and then a learned word (an attack's embedding: a token
    edit folder or a textual-inversion file), checked against the model it was learned on."""
    from erasekit.core.edit import load_embedding

    word = load_embedding(embedding) if embedding is not None else None
    edit, base = _edit_and_base(edit_path, source, force, resolution)
    model = base if edit is None else edit.apply(base, force=force)
    return model if word is None else word.apply(model, force=force)


def _key(key_path, model, edit_path, prompts):
    """The key (or None), checked before any work against the model it must unlock (the edit it was made with, or
    an exported hidden model) and against the prompts, each of which must name one of its concepts."""
    if key_path is None:
        return None
    from erasekit.core.edit import Edit
    from erasekit.core.key import Key, check_room

    key = Key.load(key_path)
    key.check(model, Edit.load(edit_path) if edit_path is not None else None)
    for prompt in prompts:
        key.concept_in(prompt)
    check_room(model, prompts, key.tokens)
    return key


POSITIVE = click.IntRange(min=1)


@main.command()
@click.argument("model_arg", required=False, metavar="[MODEL]")
@click.option("--model", default=None, help=MODEL_HELP + " (default: the edit's base, or mini)")
@click.option("--edit", default=None, type=click.Path(), help="an edit (run folder) to apply to the model")
@click.option("--prompt", default=None, help="one text prompt: writes a grid (--out FILE.png)")
@click.option(
    "--prompts",
    "prompt_set",
    default=None,
    help="a prompt set (world-objects, ... or a CSV): writes images + index.jsonl (--out DIR)",
)
@click.option(
    "--embedding",
    default=None,
    type=click.Path(),
    help="a learned word to use in the prompts (an attack's embedding/ folder or a textual-inversion file)",
)
@click.option(
    "--key",
    "key_path",
    default=None,
    type=click.Path(),
    help="a hidden concept's key (RUN/key.safetensors of `erasekit hide`, or `erasekit recover`'s): "
    "prompts that name the concept bring it back",
)
@click.option("--n", default=16, show_default=True, type=POSITIVE, help="images per prompt (seeds SEED..SEED+N-1)")
@click.option("--seed", default=0, show_default=True, help="first seed with --prompt")
@click.option("--steps", default=25, show_default=True, type=POSITIVE, help="DDIM steps")
@click.option(
    "--guidance", default=5.0, show_default=True, type=click.FloatRange(min=0), help="classifier-free guidance scale"
)
@click.option("--out", required=True, type=click.Path(), help="output .png grid, or folder with --prompts")
@click.option("--resume", is_flag=True, help="with --prompts: continue an interrupted run from OUT.partial/")
@click.option("--quiet", is_flag=True, help="no progress bar")
@_resolution_option
@_out_options
def generate(
    model_arg,
    model,
    edit,
    prompt,
    prompt_set,
    embedding,
    key_path,
    n,
    seed,
    steps,
    guidance,
    out,
    resume,
    quiet,
    resolution,
    overwrite,
    force,
):
    """Generate seeded images: a grid for one prompt, or a resumable folder for a prompt set.

    \b
    Examples:
      erasekit generate --model mini --prompt "a red star" --n 16 --out grid.png
      erasekit generate mini --edit runs/esd-star --prompts world-objects --n 8 --out gen/esd-star
      erasekit generate --edit runs/esd-star --prompts atk/prompts.csv --embedding atk/embedding --out gen/replay
      erasekit generate --edit runs/hide-star --key runs/hide-star/key.safetensors --prompt "a star" --out key.png
    """
    from erasekit.core.files import check_output, claim_partial
    from erasekit.eval.generate import check_image_path, generate_batched, generate_set, grid, save_image
    from erasekit.eval.prompts import load_prompt_set

    if (prompt is None) == (prompt_set is None):
        raise ErasekitError("give exactly one of --prompt TEXT or --prompts SET")
    if prompt is not None:
        if not prompt.strip():
            raise ErasekitError("empty prompt: give a text prompt to generate from")
        check_image_path(out)
        check_output(out, overwrite, kind="file")
    else:
        prompts = load_prompt_set(prompt_set)
        check_output(out, overwrite)
    bundle = _model(model or model_arg, edit, force, embedding, resolution)
    key = _key(key_path, bundle, edit, [prompt] if prompt is not None else prompts.prompts)
    if prompt_set is not None:
        claim_partial(out, resume, overwrite)
        rows = generate_set(
            bundle,
            prompts,
            n,
            out,
            steps=steps,
            guidance=guidance,
            progress=not quiet,
            resume=resume,
            overwrite=overwrite,
            key=key,
        )
        click.echo(f"wrote {len(rows)} images and index.jsonl to {out}")
        return
    images = generate_batched(
        bundle,
        [prompt] * n,
        list(range(seed, seed + n)),
        steps=steps,
        guidance=guidance,
        desc=None if quiet else "generate",
        key=key,
    )
    tile = max(128, images.shape[-1])  # the miniature's 32 px enlarged; a real model's images as drawn
    click.echo(f"wrote {save_image(grid(images, nrow=min(8, n), tile=tile), out)}")


@main.command()
@click.argument("model_arg", required=False, metavar="[MODEL]")
@click.option("--model", default=None, help=MODEL_HELP + " (default: the edit's base, or mini)")
@click.option("--edit", default=None, type=click.Path(), help="an edit (run folder); the base is evaluated beside it")
@click.option(
    "--suite",
    required=True,
    type=click.Choice(
        ["world-objects", "world-styles", "world-implicit", "world-general", "imagenette", "i2p", "coco"]
    ),
)
@click.option("--out", required=True, type=click.Path(), help="folder for metrics.json and report.html")
@click.option("--n", default=8, show_default=True, type=POSITIVE, help="images per prompt")
@click.option("--steps", default=25, show_default=True, type=POSITIVE, help="DDIM steps")
@click.option(
    "--guidance", default=5.0, show_default=True, type=click.FloatRange(min=0), help="classifier-free guidance scale"
)
@click.option("--erased", default=None, help="comma-separated erased concepts (default: the edit's manifest)")
@click.option(
    "--preserved",
    default=None,
    help="comma-separated preserved concepts (default: the edit's preservation set, else all others)",
)
@click.option(
    "--split",
    default=None,
    type=click.IntRange(1, 4),
    help="erase/preserve one of the seeds' four 5+5 splits (world-objects, imagenette)",
)
@click.option(
    "--prompts-file",
    default=None,
    type=click.Path(),
    help="CSV for imagenette / i2p / coco, or a world suite's prompts in place of its own (an attack's prompts.csv)",
)
@click.option(
    "--embedding",
    default=None,
    type=click.Path(),
    help="a learned word the prompts use (an attack's embedding/ folder or a textual-inversion file)",
)
@click.option(
    "--key",
    "key_path",
    default=None,
    type=click.Path(),
    help="a hidden concept's key: its prompts are generated again with it, for RSR-1/5 (rsr@1, rsr@5)",
)
@click.option("--limit", default=None, type=POSITIVE, help="only the first N prompts of a CSV suite")
@click.option("--resnet", default=None, type=click.Path(), help="local microsoft/resnet-50 folder (imagenette)")
@click.option("--clip", default=None, type=click.Path(), help="local CLIP folder, e.g. openai/clip-vit-large-patch14")
@click.option("--inception", default=None, type=click.Path(), help="TorchScript FID Inception (with --edit: fid)")
@click.option("--lpips", default=None, type=click.Path(), help="TorchScript LPIPS (with --edit: lpips)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@_resolution_option
@_out_options
def evaluate(
    model_arg,
    model,
    edit,
    suite,
    out,
    n,
    steps,
    guidance,
    erased,
    preserved,
    split,
    prompts_file,
    embedding,
    key_path,
    limit,
    resnet,
    clip,
    inception,
    lpips,
    quiet,
    resolution,
    overwrite,
    force,
):
    """Evaluate a model (and an edit against its base) on a suite: metrics.json + report.html.

    \b
    Example:
      erasekit evaluate mini --suite world-objects --out eval/base
      erasekit evaluate --edit runs/esd-star --suite world-objects --out eval/esd-star
      erasekit evaluate --edit runs/esd-star --suite world-objects --prompts-file atk/prompts.csv \\
          --embedding atk/embedding --out eval/esd-star-attacked
      erasekit evaluate --edit runs/hide-star --key runs/hide-star/key.safetensors --suite world-objects --out eval/h
    """
    from erasekit.core.edit import load_embedding
    from erasekit.core.files import check_output
    from erasekit.core.key import Key
    from erasekit.eval.evaluation import evaluate_edit
    from erasekit.eval.suites import SuiteRun, check_suite, load_judges
    from erasekit.report.html import write_evaluation

    run = SuiteRun(
        n=n,
        steps=steps,
        guidance=guidance,
        prompts_file=prompts_file,
        resnet=resnet,
        clip=clip,
        limit=limit,
        inception=inception,
        lpips=lpips,
        progress=not quiet,
    )

    def split_list(text):
        return [c.strip() for c in text.split(",") if c.strip()] if text else None

    erased_list, preserved_list = split_list(erased), split_list(preserved)
    if split is not None:
        from erasekit.eval.metrics import IMAGENETTE_SPLITS, splits_for
        from erasekit.world.render import OBJECTS

        if suite not in ("world-objects", "imagenette"):
            raise ErasekitError("--split applies to the world-objects and imagenette suites")
        chosen = IMAGENETTE_SPLITS if suite == "imagenette" else splits_for(OBJECTS)
        erased_list, preserved_list = (list(part) for part in chosen[split - 1])
    check_output(out, overwrite)  # every input before any work: the output, the edit against its base, the judges
    loaded, base = _edit_and_base(edit, model or model_arg, force, resolution)
    check_suite(suite, base)
    word = load_embedding(embedding) if embedding is not None else None
    key = Key.load(key_path) if key_path is not None else None
    judges = load_judges(suite, run, base.device)
    ev = evaluate_edit(
        base, loaded, suite, run, erased_list, preserved_list, judges=judges, force=force, word=word, key=key
    )
    write_evaluation(ev, out, run_folder=edit, overwrite=overwrite)
    click.echo(f"wrote {Path(out) / 'metrics.json'} and {Path(out) / 'report.html'}")
    from erasekit.eval.metrics import headline, shown

    base_metrics = ev.base.metrics if ev.base is not None else {}
    for name in headline(ev.edited.metrics):
        base = f"   (base {shown(base_metrics, name)})" if name in base_metrics else ""
        click.echo(f"  {name:<24} {shown(ev.edited.metrics, name)}{base}")


@main.command()
@click.argument("model_arg", required=False, metavar="[MODEL]")
@click.option("--model", default=None, help=MODEL_HELP + " (default: the edits' base)")
@click.option("--edit", "edits", multiple=True, type=click.Path(), help="edit run folder (repeatable)")
@click.option(
    "--all",
    "full",
    is_flag=True,
    help="the full graph on the miniature: erase each of the ten objects "
    "in turn with each --method (cached in --out, a bench folder), and the graph's three properties",
)
@click.option("--method", "methods", multiple=True, help="with --all: a method (repeatable; default esd)")
@click.option("--concepts", default="world-objects", show_default=True, help="world-objects (the 10 objects)")
@click.option(
    "--n",
    default=8,
    show_default=True,
    type=POSITIVE,
    help="seeds per concept (with --all: images per prompt of the erasure suite)",
)
@click.option("--steps", default=25, show_default=True, type=POSITIVE, help="DDIM steps")
@click.option("--out", required=True, type=click.Path(), help="folder for graph.csv and graph.png")
@click.option("--quiet", is_flag=True, help="no progress bar")
@_out_options
def graph(model_arg, model, edits, full, methods, concepts, n, steps, out, quiet, overwrite, force):
    """The concept graph: how each erasure changes the judge's score of every concept (CSV + heat map).

    \b
    Examples:
      erasekit graph mini --edit runs/esd-star --edit runs/uce-star --out graph/star
      erasekit graph --all --method esd --method age --n 16 --out bench/concept-graph
    """
    if full:
        return _full_graph(model or model_arg, edits, methods, n, out, quiet)
    if not edits:
        raise ErasekitError("graph needs --edit RUN (repeatable), or --all for the full graph of a method")
    if methods:
        raise ErasekitError("--method goes with --all (the edits of --edit carry their own method)")
    from erasekit.core.edit import Edit
    from erasekit.core.files import atomic_dir, check_output
    from erasekit.eval.graph import concept_graph, most_hurt, save_graph
    from erasekit.eval.judges import world_judge
    from erasekit.report.plots import graph_heatmap
    from erasekit.world.render import OBJECTS

    if concepts not in ("world-objects", "objects"):
        raise ErasekitError(f"unknown concept set {concepts!r}; valid: world-objects")
    check_output(out, overwrite)
    loaded = [Edit.load(e) for e in edits]
    _, base = _edit_and_base(None, model or model_arg or loaded[0].base["source"])
    from erasekit.world import native

    if not native.owns(base):
        raise ErasekitError(
            f"graph scores the world's objects with the world judge, which knows only the miniature; "
            f"{base.source!r} is not the miniature"
        )
    for e in loaded:
        e.check(base, force=force)
    judge = world_judge()
    names = _unique_names([Path(p).name for p in edits])
    erased = [e.concepts.get("erase", []) for e in loaded]
    edited = {name: e.apply(base, force=force) for name, e in zip(names, loaded, strict=True)}
    matrix = concept_graph(base, edited, judge, OBJECTS, n=n, steps=steps, progress=not quiet)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        save_graph(matrix, names, [", ".join(e) for e in erased], OBJECTS, tmp)
        graph_heatmap(
            matrix,
            [f"{name}: erase {', '.join(e)}" for name, e in zip(names, erased, strict=True)],
            OBJECTS,
            tmp / "graph.png",
        )
    click.echo(f"wrote {Path(out) / 'graph.csv'} and {Path(out) / 'graph.png'}")
    for name, what, row in zip(names, erased, matrix, strict=True):
        concept, value = most_hurt(row, OBJECTS, what)[0]
        click.echo(f"  {name} (erases {', '.join(what)}): most hurt kept concept {concept} (delta {value:.3f})")


def _full_graph(model, edits, methods, n, out, quiet):
    from erasekit.bench.graph import full_graphs, properties_table, write_graphs
    from erasekit.methods import registry

    if edits:
        raise ErasekitError("graph --all makes its own erasures: give --method, not --edit")
    if model not in (None, "mini"):
        raise ErasekitError(
            "graph --all runs on the miniature (its judge scores every object); for another model, "
            "erase each concept and pass the runs with --edit"
        )
    methods = list(dict.fromkeys(methods or ("esd",)))
    for m in methods:
        registry.get(m)  # an unknown method: one clear error before any work
    graphs = full_graphs(methods, out, n=n, progress=not quiet)
    for path in write_graphs(graphs, out):
        click.echo(f"wrote {path}")
    click.echo(properties_table(graphs))


@main.command()
@click.argument("model_arg", required=False, metavar="[BASE]")
@click.option("--model", default=None, help=MODEL_HELP + " (default: the edit's base)")
@click.option("--edit", default=None, type=click.Path(), help="edit run folder: θ' = BASE with the edit applied")
@click.option("--against", default=None, help="a second model source: θ' = this model (" + MODEL_HELP + ")")
@click.option(
    "--vocab",
    default=None,
    help="concepts to rank: a file (one per line) or a named vocabulary (default: world, on the miniature)",
)
@click.option(
    "--erased",
    default=None,
    help="c_e, the concept the edit is known to change (Eq. 19's first term); without it the inspection is blind",
)
@click.option("--lam", default=0.0, show_default=True, type=float, help="λ of Eq. 19 (with --erased)")
@click.option(
    "--search",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "exhaustive", "gumbel"]),
    help="exhaustive pass over the vocabulary, or the Gumbel-softmax search (auto: by its size)",
)
@click.option("--probes", default=16, show_default=True, type=POSITIVE, help="noisy latents every concept is scored on")
@click.option(
    "--top",
    default=6,
    show_default=True,
    type=click.IntRange(min=0),
    help="concepts shown with images (and the judge's δ, on the miniature) in report.html",
)
@click.option("--n", default=8, show_default=True, type=POSITIVE, help="seeds per shown concept")
@click.option("--out", required=True, type=click.Path(), help="folder for table.csv, inspect.json, report.html")
@click.option("--quiet", is_flag=True, help="no progress bar")
@_out_options
def inspect(model_arg, model, edit, against, vocab, erased, lam, search, probes, top, n, out, quiet, overwrite, force):
    """Which concepts did a fine-tune change? Rank a vocabulary by talk Eq. 19 (blind, or with a known c_e).

    \b
    Examples:
      erasekit inspect mini --edit runs/esd-star --out inspect/esd-star
      erasekit inspect mini --edit runs/esd-star --erased star --lam 1 --out inspect/esd-star-sensitive
      erasekit inspect base-model/ --against fine-tuned/ --vocab concepts.txt --out inspect/ft
    """
    from erasekit.core.files import atomic_dir, check_output, write_text
    from erasekit.core.vocab import load_vocabulary
    from erasekit.eval.inspect import InspectConfig, attach, inspect_models, judged, table_csv
    from erasekit.models.load import load_bundle
    from erasekit.report.html import write_inspect_report

    if (edit is None) == (against is None):
        raise ErasekitError("inspect compares two models: give --edit RUN (BASE with the edit) or --against MODEL")
    check_output(out, overwrite)
    loaded, base = _edit_and_base(edit, model or model_arg, force)
    if loaded is not None and loaded.kind == "sampler":
        raise ErasekitError(
            f"{edit} is a sampler edit ({loaded.method}): it changes no weight, so every noise "
            "prediction is the same and there is nothing for Eq. 19 to rank; its whole change is "
            "its manifest's sampling settings"
        )
    edited = loaded.apply(base, force=force) if loaded is not None else load_bundle(against)
    from erasekit.world import native

    mini = native.owns(base)
    if vocab is None and not mini:
        raise ErasekitError("give --vocab FILE (one concept per line): only the miniature has a default vocabulary")
    config = InspectConfig(lam=lam, probes=probes, search=search)
    ins = inspect_models(base, edited, load_vocabulary(vocab or "world"), config, erased, progress=not quiet)
    judge = probe = None
    if mini:
        from erasekit.eval.judges import world_judge
        from erasekit.world.vocab import probe

        judge = world_judge()
    shown = judged(base, edited, ins.top(top), n, probe, judge, progress=not quiet) if top else []
    attach(ins, shown)
    what = f"{loaded.method} edit {edit}" if loaded is not None else f"{against}"
    with atomic_dir(out, overwrite=overwrite) as tmp:
        write_text(tmp / "table.csv", table_csv(ins))
        write_text(
            tmp / "inspect.json",
            json.dumps(
                {
                    "base": model or model_arg or (loaded.base["source"] if loaded else None),
                    "edited": what,
                    "erased": erased,
                    "lam": lam,
                    "search": ins.searched,
                    "vocabulary_size": ins.vocabulary_size,
                    "probes": probes,
                    "top": [
                        {"concept": r.concept, "score": r.score, "l2": r.l2, "l1": r.l1, "judge_delta": r.delta}
                        for r in ins.rows
                    ],
                },
                indent=2,
            ),
        )
        write_inspect_report(tmp, ins, shown, f"erasekit inspect: {what}")
    click.echo(f"wrote {Path(out) / 'table.csv'} and {Path(out) / 'report.html'}")
    for i, r in enumerate(ins.rows[:10]):
        delta = "" if r.delta is None else f"   judge δ {r.delta:.3f}"
        extra = "" if r.l1 is None else f"  (L1 {r.l1:.4g}, L2 {r.l2:.4g})"
        click.echo(f"  {i + 1:>2}. {r.concept:<16} {r.score:.4g}{extra}{delta}")


@main.command()
@click.argument("spec", required=False, type=click.Path())
@click.option("--out", default=None, type=click.Path(), help="the bench folder: cells, edits, tables, report.html")
@click.option("--shard", default=None, metavar="I/N", help="compute only every N-th row, from the I-th (1 <= I <= N)")
@click.option(
    "--collect",
    "collect_dir",
    default=None,
    type=click.Path(),
    help="write the tables of a bench folder from its cells and its shards' (no SPEC)",
)
@click.option("--quiet", is_flag=True, help="no progress bars")
def bench(spec, out, shard, collect_dir, quiet):
    """Methods x concepts x attacks from a YAML spec, into one table (cached per cell: a rerun computes only what
    is missing).

    \b
    Examples:
      erasekit bench benchmarks/specs/smoke.yaml --out bench/smoke
      erasekit bench benchmarks/specs/smoke.yaml --out bench/smoke --shard 1/2   # and 2/2, anywhere
      erasekit bench --collect bench/smoke
    """
    from erasekit import bench as runner

    if collect_dir is not None:
        if spec is not None or shard is not None:
            raise ErasekitError("bench --collect DIR takes no SPEC and no --shard")
        written = runner.collect(collect_dir, progress=not quiet)
    else:
        if spec is None or out is None:
            raise ErasekitError("bench needs a SPEC file and --out DIR (or --collect DIR)")
        written = runner.run(spec, out, shard, progress=not quiet)
    for path in written:
        click.echo(f"wrote {path}")
    if written:
        click.echo(Path(written[1]).read_text(encoding="utf-8"))


def _unique_names(names: list[str]) -> list[str]:
    """Row names for edits: their folder names, numbered where two are the same."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if names.count(name) == 1 else f"{name}#{seen[name]}")
    return out


def _claim_run(work: Path, resume: bool, record: dict) -> None:
    """Record the run in its work folder, or, resuming, refuse a work folder left by a different run."""

    from erasekit.core.files import RUN_RECORD, write_text

    path = work / RUN_RECORD
    record = json.loads(json.dumps(record, sort_keys=True, default=str))  # as it reads back (tuples are lists)
    if resume and path.exists():
        before = json.loads(path.read_text())
        changed = [k for k in record if before.get(k) != record[k]]
        if changed:
            raise ErasekitError(
                f"cannot resume {work}: it was started with other {', '.join(changed)}; run it with "
                "the same options, or pass --overwrite to start again"
            )
    write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str))


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
@click.option(
    "--overwrite",
    is_flag=True,
    help="replace an existing OUT (only if everything in it was written by erasekit), or discard "
    "OUT.partial/ and start again",
)
@click.option(
    "--clip",
    default=None,
    type=click.Path(),
    help="local CLIP folder (on real models: UCE debias's judge, Dark Miner's verifier)",
)
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--quiet", is_flag=True, help="no progress bar")
@_resolution_option
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
    import dataclasses
    import shutil

    from erasekit.core.files import check_output, claim_partial
    from erasekit.core.loop import LOSS_LOG, RECORD, Run
    from erasekit.methods import registry
    from erasekit.methods.concepts import ConceptSet, split_list
    from erasekit.models.load import load_bundle

    spec = registry.get(method)
    concepts = ConceptSet(split_list(erase_), split_list(preserve), target=target, anchor=anchor)
    out = Path(out)
    check_output(out, overwrite)
    work = claim_partial(out, resume, overwrite)
    bundle = load_bundle(model, device=device).at_resolution(resolution)
    from erasekit.world import native

    if native.owns(bundle):
        native.check_concepts(concepts.erase + concepts.preserve + [concepts.target, concepts.anchor])
    spec.check_family(bundle.family)
    config = registry.build_config(spec, config_file, overrides, preset=bundle.preset)
    from erasekit.eval.judges import method_scorer

    scorer = method_scorer(spec, bundle, config, concepts, clip)
    work.mkdir(parents=True, exist_ok=True)
    _claim_run(
        work,
        resume,
        {
            "method": spec.name,
            "config": dataclasses.asdict(config),
            "concepts": concepts.as_dict(),
            "model": model,
            "fingerprint": bundle.fingerprint(),
            "resolution": bundle.image_size,
        },
    )
    run = Run(work=work, resume=resume, progress=not quiet, scorer=scorer)
    edit = spec.erase(bundle, concepts, config, run)
    edit.save(out, overwrite=overwrite, files=(*sorted(work.glob(f"*{LOSS_LOG}")), *sorted((work / RECORD).glob("*"))))
    shutil.rmtree(work, ignore_errors=True)
    click.echo(
        f"wrote {out}  ({spec.name}: erased {', '.join(concepts.erase)}; "
        f"{len(edit.tensors)} tensors, {sum(v.numel() for v in edit.tensors.values()):,} values)"
    )
    for key, value in edit.metrics.items():
        click.echo(f"  {key}: {value}")
    from erasekit.core.key import KEY_FILE

    if (out / KEY_FILE).exists():
        click.echo(
            f"  key: {out / KEY_FILE} (it brings {', '.join(concepts.erase)} back: keep it apart from what you share)"
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
@click.option("--overwrite", is_flag=True, help="replace an existing OUT, or discard OUT.partial/ and start again")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--quiet", is_flag=True, help="no progress bar")
@_resolution_option
@click.pass_context
def hide(ctx, model, erase_, preserve, config_file, overrides, out, resume, overwrite, device, quiet, resolution):
    ctx.invoke(
        erase,
        model=model,
        method="hide",
        erase_=erase_,
        preserve=preserve,
        target="",
        anchor=None,
        config_file=config_file,
        overrides=overrides,
        out=out,
        resume=resume,
        overwrite=overwrite,
        clip=None,
        device=device,
        quiet=quiet,
        resolution=resolution,
    )


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
    import dataclasses
    import shutil

    from erasekit.core.files import claim_partial
    from erasekit.core.key import check_key_path
    from erasekit.core.loop import Run
    from erasekit.methods.concepts import split_list
    from erasekit.methods.hide import recover as recover_key
    from erasekit.methods.hide import recover_config

    concepts = split_list(concept)
    if not concepts:
        raise ErasekitError("empty concept list: name the concept to recover (--concept star)")
    out = Path(out)
    check_key_path(out, overwrite)
    work = claim_partial(out, resume, overwrite)
    edit, base = _edit_and_base(edit_path, model)
    from erasekit.world import native

    if native.owns(base):
        native.check_concepts(concepts)
    config = recover_config(base.preset, config_file, overrides)
    work.mkdir(parents=True, exist_ok=True)
    _claim_run(
        work,
        resume,
        {
            "recover": concepts,
            "config": dataclasses.asdict(config),
            "edit": edit.fingerprint(),
            "fingerprint": base.fingerprint(),
        },
    )
    key = recover_key(base, edit, concepts, config, Run(work=work, resume=resume, progress=not quiet))
    key.save(out, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    distance = ", ".join(f"{c} {d:.3f}" for c, d in key.metrics["distance"].items())
    click.echo(
        f"wrote {out}  (recover {', '.join(concepts)}: rho {config.rho}; ||p - c_e|| / ||c_e||: {distance}; "
        f"final loss {key.metrics['final_loss']:.4g})"
    )


@main.command()
@click.argument("model_arg", required=False, metavar="[MODEL]")
@click.option("--model", default=None, help=MODEL_HELP + " (default: the edit's base, or mini)")
@click.option("--edit", default=None, type=click.Path(), help="the edit (run folder) to attack")
@click.option("--attack", "attack_name", required=True, help="an attack name (see `erasekit attacks`)")
@click.option("--concept", required=True, help="the concept to bring back")
@click.option(
    "--prompts",
    "prompt_set",
    default=None,
    help="prompts to attack: a prompt set or CSV; rows labelled with the concept are kept (default on the "
    "miniature: the prompts that ask for the concept)",
)
@click.option("--limit", default=None, type=click.IntRange(min=1), help="attack only the first N prompts")
@click.option("--images", default=None, type=click.Path(), help="a folder of images of the concept (inversion)")
@click.option("--config", "config_file", default=None, type=click.Path(), help="YAML file of attack options")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override one attack option")
@click.option("--n", default=8, show_default=True, type=click.IntRange(min=1), help="evaluation images per prompt")
@click.option("--steps", default=25, show_default=True, type=click.IntRange(min=1), help="DDIM steps")
@click.option("--guidance", default=5.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--out", required=True, type=click.Path(), help="folder: metrics.json, prompts.csv, report.html, ...")
@click.option("--resume", is_flag=True, help="continue an interrupted attack from OUT.partial/")
@click.option("--resnet", default=None, type=click.Path(), help="local microsoft/resnet-50 (Imagenette concepts)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@_resolution_option
@_out_options
def attack(
    model_arg,
    model,
    edit,
    attack_name,
    concept,
    prompt_set,
    limit,
    images,
    config_file,
    overrides,
    n,
    steps,
    guidance,
    out,
    resume,
    resnet,
    quiet,
    resolution,
    overwrite,
    force,
):
    """Attack a model or an edit: try to bring an erased concept back, and measure how often it comes.

    \b
    Writes OUT/metrics.json (asr, asr_ci, pre_attack_rate, per prompt), prompts.csv (replay them with
    `erasekit generate --prompts OUT/prompts.csv`, plus --embedding OUT/embedding for a learned word), images/
    (the attacked images, as `generate` writes them) and report.html (base, edited, attacked; same seeds).
    \b
    Examples:
      erasekit attack --edit runs/esd-star --attack inversion --concept star --out atk/esd-star-cce
      erasekit attack --edit runs/esd-mark --attack unlearndiff --concept mark --limit 6 --out atk/esd-mark-udiff
    """
    import dataclasses
    import shutil

    from erasekit.attacks import registry
    from erasekit.core.files import RUN_RECORD, check_output, claim_partial, finish_dir, write_text
    from erasekit.core.loop import Run
    from erasekit.eval.attack import AttackRun, build_goal, concept_detector, evaluate_attack, goal_prompts
    from erasekit.report.html import write_attack_report

    spec = registry.get(attack_name)
    out = Path(out)
    check_output(out, overwrite)
    work = claim_partial(out, resume, overwrite)
    loaded, base = _edit_and_base(edit, model or model_arg, force, resolution)
    edited = base if loaded is None else loaded.apply(base, force=force)
    spec.check_family(base.family)
    config = registry.build_config(spec, config_file, overrides, preset=base.preset)
    detect = concept_detector(edited, concept, resnet)
    prompts = goal_prompts(edited, concept, prompt_set, limit)
    run = AttackRun(n=n, steps=steps, guidance=guidance, progress=not quiet, resnet=resnet)
    goal = build_goal(edited, base, concept, prompts, detect, run, _image_folder(images) if images else None)
    work.mkdir(parents=True, exist_ok=True)
    _claim_run(
        work,
        resume,
        {
            "attack": spec.name,
            "config": dataclasses.asdict(config),
            "concept": concept,
            "prompts": goal.prompts,
            "model": base.source,
            "fingerprint": edited.fingerprint(),
        },
    )
    result = spec.run(edited, goal, config, Run(work=work / "search", resume=resume, progress=not quiet))
    ev = evaluate_attack(result, goal, edited, base, run)
    data = ev.to_json(result, base.source, edited.meta.get("edit"))
    write_text(work / "metrics.json", json.dumps(data, indent=2, sort_keys=True))
    write_text(work / "prompts.csv", result.prompts_csv(goal.seeds))
    if result.embedding is not None:
        from erasekit.models.export import export as export_edit

        result.embedding.save(work / "embedding")
        export_edit(result.embedding, None, work / "learned_embeds.safetensors", format="textual-inversion")
    _write_images(work / "images", ev)
    write_attack_report(work, data, ev)
    shutil.rmtree(work / "search", ignore_errors=True)
    (work / RUN_RECORD).unlink()
    finish_dir(work, out, overwrite)
    m = data["metrics"]
    from erasekit.eval.metrics import shown

    click.echo(f"wrote {out}  ({spec.name} on {concept}: {len(result.prompts)} prompts, {result.seconds:.1f} s)")
    for name in ("asr", "asr_prompts", "pre_attack_rate", "base_rate"):
        click.echo(f"  {name:<18} {shown(m, name)}")


def _image_folder(folder):
    """The images of a folder (PNG/JPEG...), [B, 3, H, W] in [0, 1]; every one must have the same size."""
    from erasekit.eval.generate import IMAGE_SUFFIXES, load_images

    paths = (
        sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if Path(folder).is_dir() else []
    )
    if not paths:
        raise ErasekitError(f"no images in {folder} (give a folder of {', '.join(IMAGE_SUFFIXES)} files)")
    try:
        return load_images(folder, [{"path": p.name} for p in paths])[0]
    except ValueError:  # np.stack of arrays of different shapes
        raise ErasekitError(f"the images in {folder} differ in size; give images of one size") from None


def _write_images(folder: Path, ev) -> None:
    """The attacked images as `erasekit generate --prompts prompts.csv` writes them (so a replay compares file by
    file): NNNNNN.png and index.jsonl."""
    from PIL import Image

    from erasekit.core.files import write_text
    from erasekit.eval.generate import INDEX, save_image, to_uint8

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (r, im) in enumerate(zip(ev.attacked_rows, to_uint8(ev.attacked_images), strict=True)):
        rows.append({"index": i, "row": r["adv"], "prompt": r["prompt"], "seed": r["seed"], "path": f"{i:06d}.png"})
        save_image(Image.fromarray(im), folder / rows[-1]["path"])
    write_text(folder / INDEX, "".join(json.dumps(r) + "\n" for r in rows))


FAMILY_OPTION = click.option(
    "--family",
    default=None,
    type=click.Choice(["sd1", "sd2", "sdxl", "sd3", "flux"]),
    help="only those that run on this model family",
)


@main.command()
@FAMILY_OPTION
def attacks(family):
    """List the attacks, the model families they run on, their defaults (the papers') and the miniature's."""
    from erasekit.attacks import registry

    _list(
        registry.REGISTRY.available_for(family),
        12,
        lambda spec: "ends in: " + ("a learned word (embedding/)" if spec.ends_in == "embedding" else "text"),
    )


@main.command()
@FAMILY_OPTION
def methods(family):
    """List the erasure methods, the model families they run on, their defaults (the paper's) and the
    miniature's."""
    from erasekit.methods import registry

    _list(registry.REGISTRY.available_for(family), 8)


def _list(specs, width: int, extra=None) -> None:
    """Registered methods or attacks: name and summary, the families they run on, then the paper's defaults and each
    preset. The name column is at least `width` wide, and wider than the longest name."""
    import dataclasses as dc

    specs = list(specs)
    width = max(width, max((len(s.name) for s in specs), default=0) + 2)
    pad = " " * width
    for spec in specs:
        click.echo(f"{spec.name:<{width}}{spec.summary}" + (f"  [{spec.paper}]" if spec.paper else ""))
        click.echo(pad + "families: " + ", ".join(spec.families) + (f" ({spec.why})" if spec.why else ""))
        if extra is not None:
            click.echo(pad + extra(spec))
        defaults = {f.name: f.default for f in dc.fields(spec.config)}
        click.echo(pad + "defaults: " + " ".join(f"{k}={_show(v)}" for k, v in defaults.items()))
        for arch, preset in spec.presets.items():
            click.echo(
                f"{pad}{'miniature' if arch == 'mini' else arch}: "
                + " ".join(f"{k}={_show(v)}" for k, v in preset.items())
            )


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


@main.command()
@click.option("--out", default="erasekit-demo", show_default=True, type=click.Path())
@click.option("--concept", default="star", show_default=True, help="the object to erase")
@click.option("--n", default=16, show_default=True, help="images per prompt in the evaluation")
@click.option("--overwrite", is_flag=True)
def demo(out, concept, n, overwrite):
    """On the miniature: erase one object with ESD and with UCE, evaluate both, write reports and a summary.

    \b
    Example:
      erasekit demo --out erasekit-demo
    """
    from erasekit.demo import run_demo

    lines = run_demo(out, concept=concept, n=n, overwrite=overwrite, echo=click.echo)
    click.echo("\n".join(lines))


@main.group()
def world():
    """The miniature world: rebuild the judge and the embedded miniature."""


@world.command("train")
@click.option(
    "--work",
    default="world-build",
    show_default=True,
    type=click.Path(),
    help="folder for checkpoints and stage outputs",
)
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
    from erasekit.core.assets import ASSETS
    from erasekit.core.files import check_writable
    from erasekit.core.options import build, parse_overrides
    from erasekit.world.train import TrainConfig, train_world

    given = {
        "seed": seed,
        "stages": tuple(s.strip() for s in stages.split(",") if s.strip()),
        **parse_overrides(overrides),
    }
    cfg = build(TrainConfig, given, "world train")
    for where in (Path(work) / "x", Path(out or str(ASSETS)) / "mini"):  # both folders, before hours of training
        check_writable(where)
    path = train_world(work, out or str(ASSETS), cfg, resume=resume)
    if path is not None:
        click.echo(f"wrote {path}/mini and {path}/judge")


if __name__ == "__main__":
    main()
