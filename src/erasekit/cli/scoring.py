"""Commands that draw and score: generate, evaluate, attack, inspect, graph."""

from __future__ import annotations

from pathlib import Path

import click

from erasekit.cli import MODEL_HELP, POSITIVE, data_dir_option, main, out_options, resolution_option
from erasekit.core.errors import ErasekitError

EMBEDDING_HELP = "a learned word the prompts use (an attack's embedding/ folder or a textual-inversion file)"
GUIDANCE = click.option(
    "--guidance", default=5.0, show_default=True, type=click.FloatRange(min=0), help="classifier-free guidance scale"
)
STEPS = click.option("--steps", default=25, show_default=True, type=POSITIVE, help="DDIM steps")
QUIET = click.option("--quiet", is_flag=True, help="no progress bar")
MODEL_ARG = click.argument("model_arg", required=False, metavar="[MODEL]")


def _split(text):
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


@main.command()
@MODEL_ARG
@click.option("--model", default=None, help=MODEL_HELP + " (default: the edit's base, or mini)")
@click.option("--edit", default=None, type=click.Path(), help="an edit (run folder) to apply to the model")
@click.option("--prompt", default=None, help="one text prompt: writes a grid (--out FILE.png)")
@click.option(
    "--prompts",
    "prompt_set",
    default=None,
    help="a prompt set (world-objects, ... or a CSV): writes images + index.jsonl (--out DIR)",
)
@click.option("--embedding", default=None, type=click.Path(), help=EMBEDDING_HELP)
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
@STEPS
@GUIDANCE
@click.option("--out", required=True, type=click.Path(), help="output .png grid, or folder with --prompts")
@click.option("--resume", is_flag=True, help="with --prompts: continue an interrupted run from OUT.partial/")
@QUIET
@resolution_option
@data_dir_option
@out_options
def generate(model_arg, model, edit, quiet, **options):
    """Generate seeded images: a grid for one prompt, or a resumable folder for a prompt set.

    \b
    Examples:
      erasekit generate --model mini --prompt "a red star" --n 16 --out grid.png
      erasekit generate mini --edit runs/esd-star --prompts world-objects --n 8 --out gen/esd-star
      erasekit generate --edit runs/esd-star --prompts atk/prompts.csv --embedding atk/embedding --out gen/replay
      erasekit generate --edit runs/hide-star --key runs/hide-star/key.safetensors --prompt "a star" --out key.png
    """
    from erasekit.runs.score import generate as run

    click.echo(f"wrote {run(model or model_arg, edit, progress=not quiet, **options)}")


@main.command()
@MODEL_ARG
@click.option("--model", default=None, help=MODEL_HELP + " (default: the edit's base, or mini)")
@click.option("--edit", default=None, type=click.Path(), help="an edit (run folder); the base is evaluated beside it")
@click.option("--suite", required=True, help="a registered suite: world-objects, imagenette, i2p, i2p-all, coco, ...")
@click.option("--out", required=True, type=click.Path(), help="folder for metrics.json and report.html")
@click.option("--n", default=8, show_default=True, type=POSITIVE, help="images per prompt")
@STEPS
@GUIDANCE
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
    help="a CSV in place of the suite's data set (imagenette, i2p, coco), or of a world suite's own prompts (an "
    "attack's prompts.csv)",
)
@click.option("--embedding", default=None, type=click.Path(), help=EMBEDDING_HELP)
@click.option(
    "--key",
    "key_path",
    default=None,
    type=click.Path(),
    help="a hidden concept's key: its prompts are generated again with it, for RSR-1/5 (rsr@1, rsr@5)",
)
@click.option(
    "--limit",
    default=None,
    type=POSITIVE,
    help="only the first N prompts of the suite (of each concept, where its prompts name one)",
)
@click.option("--resnet", default=None, type=click.Path(), help="local microsoft/resnet-50 folder (imagenette)")
@click.option("--clip", default=None, type=click.Path(), help="local CLIP folder, e.g. openai/clip-vit-large-patch14")
@click.option("--inception", default=None, type=click.Path(), help="TorchScript FID Inception (with --edit: fid)")
@click.option("--lpips", default=None, type=click.Path(), help="TorchScript LPIPS (with --edit: lpips)")
@QUIET
@resolution_option
@data_dir_option
@out_options
def evaluate(
    model_arg, model, edit, suite, out, n, steps, guidance, erased, preserved, split, prompts_file, embedding, key_path, limit,
    resnet, clip, inception, lpips, quiet, resolution, data_dir, overwrite, force,
):  # fmt: skip
    """Evaluate a model (and an edit against its base) on a suite: metrics.json + report.html.

    \b
    Example:
      erasekit evaluate mini --suite world-objects --out eval/base
      erasekit evaluate --edit runs/esd-star --suite world-objects --out eval/esd-star
      erasekit evaluate --edit runs/esd-star --suite world-objects --prompts-file atk/prompts.csv \\
          --embedding atk/embedding --out eval/esd-star-attacked
      erasekit evaluate --edit runs/hide-star --key runs/hide-star/key.safetensors --suite world-objects --out eval/h
    """
    from erasekit.eval.metrics import headline, shown
    from erasekit.eval.suites import SuiteRun
    from erasekit.runs.score import evaluate as run
    from erasekit.runs.score import split_concepts

    suite_run = SuiteRun(
        n=n, steps=steps, guidance=guidance, prompts_file=prompts_file, resnet=resnet, clip=clip, limit=limit,
        inception=inception, lpips=lpips, progress=not quiet, data_dir=data_dir,
    )  # fmt: skip
    erased, preserved = split_concepts(suite, split, _split(erased), _split(preserved))
    ev = run(
        model or model_arg, edit, suite, suite_run, out, erased=erased, preserved=preserved, embedding=embedding,
        key_path=key_path, overwrite=overwrite, force=force, resolution=resolution,
    )  # fmt: skip
    click.echo(f"wrote {Path(out) / 'metrics.json'} and {Path(out) / 'report.html'}")
    base_metrics = ev.base.metrics if ev.base is not None else {}
    for name in headline(ev.edited.metrics):
        base = f"   (base {shown(base_metrics, name)})" if name in base_metrics else ""
        click.echo(f"  {name:<24} {shown(ev.edited.metrics, name)}{base}")


@main.command()
@MODEL_ARG
@click.option("--model", default=None, help=MODEL_HELP + " (default: the edit's base, or mini)")
@click.option("--edit", default=None, type=click.Path(), help="the edit (run folder) to attack")
@click.option("--attack", "attack_name", required=True, help="an attack name (see `erasekit attacks`)")
@click.option("--concept", required=True, help="the concept to bring back")
@click.option(
    "--prompts",
    "prompt_set",
    default=None,
    help="prompts to attack: a prompt set, a data set (i2p, imagenette, ...) or a CSV; rows labelled with the concept are kept (default on the "
    "miniature: the prompts that ask for the concept)",
)
@click.option("--limit", default=None, type=POSITIVE, help="attack only the first N prompts")
@click.option("--images", default=None, type=click.Path(), help="a folder of images of the concept (inversion)")
@click.option("--config", "config_file", default=None, type=click.Path(), help="YAML file of attack options")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override one attack option")
@click.option("--n", default=8, show_default=True, type=POSITIVE, help="evaluation images per prompt")
@STEPS
@click.option("--guidance", default=5.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--out", required=True, type=click.Path(), help="folder: metrics.json, prompts.csv, report.html, ...")
@click.option("--resume", is_flag=True, help="continue an interrupted attack from OUT.partial/")
@click.option("--resnet", default=None, type=click.Path(), help="local microsoft/resnet-50 (Imagenette concepts)")
@click.option("--clip", default=None, type=click.Path(), help="local CLIP folder (art styles)")
@QUIET
@resolution_option
@data_dir_option
@out_options
def attack(
    model_arg, model, edit, attack_name, concept, prompt_set, limit, images, config_file, overrides, n, steps, guidance,
    out, resume, resnet, clip, quiet, resolution, data_dir, overwrite, force,
):  # fmt: skip
    """Attack a model or an edit: try to bring an erased concept back, and measure how often it comes.

    \b
    Writes OUT/metrics.json (asr, asr_cal with the original prompt kept as a candidate, pre_attack_rate, per
    prompt; relearn: the curve of rates against steps), prompts.csv (replay them with
    `erasekit generate --prompts OUT/prompts.csv`, plus --embedding OUT/embedding for a learned word), images/
    (the attacked images, as `generate` writes them) and report.html (base, edited, attacked; same seeds).
    \b
    Examples:
      erasekit attack --edit runs/esd-star --attack inversion --concept star --out atk/esd-star-cce
      erasekit attack --edit runs/esd-mark --attack unlearndiff --concept mark --limit 6 --out atk/esd-mark-udiff
    """
    from erasekit.attacks import registry
    from erasekit.eval.attack import AttackRun, build_goal, concept_detector, goal_prompts
    from erasekit.eval.metrics import shown
    from erasekit.eval.registries import Files
    from erasekit.runs.attack import attack as run
    from erasekit.runs.inputs import edit_and_base, image_folder
    from erasekit.runs.record import prepare

    spec = registry.get(attack_name)
    prepare(out, resume, overwrite)
    loaded, base = edit_and_base(edit, model or model_arg, force, resolution)
    edited = base if loaded is None else loaded.apply(base, force=force)
    spec.check_family(base.family)
    config = registry.build_config(spec, config_file, overrides, preset=base.preset)
    attack_run = AttackRun(n=n, steps=steps, guidance=guidance, progress=not quiet, resnet=resnet, clip=clip)
    detect = concept_detector(edited, concept, files=Files.of(attack_run))
    prompts = goal_prompts(edited, concept, prompt_set, limit, data_dir)
    goal = build_goal(edited, base, concept, prompts, detect, attack_run, image_folder(images) if images else None)
    data, result = run(
        spec, config, edited, base, goal, attack_run, out, resume=resume, overwrite=overwrite, progress=not quiet
    )
    click.echo(f"wrote {out}  ({spec.name} on {concept}: {len(result.prompts)} prompts, {result.seconds:.1f} s)")
    for name in ("asr", "asr_cal", "asr_prompts", "pre_attack_rate", "base_rate"):
        click.echo(f"  {name:<18} {shown(data['metrics'], name)}")
    for point in data["metrics"].get("curve", []):
        click.echo(f"  after {point['steps']:>4} steps {shown(point, 'rate')}")


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
@QUIET
@out_options
def inspect(model_arg, model, edit, against, vocab, erased, lam, search, probes, top, n, out, quiet, overwrite, force):
    """Which concepts did a fine-tune change? Rank a vocabulary by talk Eq. 19 (blind, or with a known c_e).

    \b
    Examples:
      erasekit inspect mini --edit runs/esd-star --out inspect/esd-star
      erasekit inspect mini --edit runs/esd-star --erased star --lam 1 --out inspect/esd-star-sensitive
      erasekit inspect base-model/ --against fine-tuned/ --vocab concepts.txt --out inspect/ft
    """
    from erasekit.eval.inspect import InspectConfig
    from erasekit.runs.score import inspect as run

    config = InspectConfig(lam=lam, probes=probes, search=search)
    ins = run(
        model or model_arg, edit, against, out, config, vocab=vocab, erased=erased, top=top, n=n, overwrite=overwrite,
        force=force, progress=not quiet,
    )  # fmt: skip
    click.echo(f"wrote {Path(out) / 'table.csv'} and {Path(out) / 'report.html'}")
    for i, r in enumerate(ins.rows[:10]):
        delta = "" if r.delta is None else f"   judge δ {r.delta:.3f}"
        extra = "" if r.l1 is None else f"  (L1 {r.l1:.4g}, L2 {r.l2:.4g})"
        click.echo(f"  {i + 1:>2}. {r.concept:<16} {r.score:.4g}{extra}{delta}")


@main.command()
@MODEL_ARG
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
@STEPS
@click.option("--out", required=True, type=click.Path(), help="folder for graph.csv and graph.png")
@QUIET
@out_options
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
    if concepts not in ("world-objects", "objects"):
        raise ErasekitError(f"unknown concept set {concepts!r}; valid: world-objects")
    from erasekit.eval.graph import most_hurt
    from erasekit.runs.score import graph as run

    rows, objects = run(
        model or model_arg, edits, out, n=n, steps=steps, overwrite=overwrite, force=force, progress=not quiet
    )
    click.echo(f"wrote {Path(out) / 'graph.csv'} and {Path(out) / 'graph.png'}")
    for name, what, row in rows:
        concept, value = most_hurt(row, objects, what)[0]
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
