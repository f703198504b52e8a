"""Commands that describe, list and orchestrate: info, methods, attacks, bench, demo, world."""

from __future__ import annotations

from pathlib import Path

import click

from erasekit.cli import DEVICE_HELP, FAMILY_OPTION, MODEL_HELP, dtype_option, main
from erasekit.core.errors import ErasekitError

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
@dtype_option("weights' precision")
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


@main.command()
@FAMILY_OPTION
def attacks(family):
    """List the attacks, the model families they run on, their defaults (the papers') and the miniature's."""
    from erasekit.attacks import registry

    _list(
        registry.REGISTRY.available_for(family),
        12,
        lambda spec: (
            "ends in: "
            + {"embedding": "a learned word (embedding/)", "weights": "changed weights (relearned/)"}.get(
                spec.ends_in, "text"
            )
        ),
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


@main.group()
def data():
    """The public prompt data sets, by name and checksum (I2P, COCO-30k, Imagenette, the artist sets)."""


@data.command("list")
@click.option(
    "--data-dir", default=None, type=click.Path(), help="the data folder (default: ERASEKIT_DATA, else the cache)"
)
def data_list(data_dir):
    """Each data set: its name, whether the local copy is there and checks out, its rows and what it is."""
    from erasekit.core import datasets

    click.echo(f"data folder: {datasets.data_dir(data_dir)}")
    for d in datasets.DATASETS.values():
        click.echo(f"  {d.name:<15}{datasets.status(d.name, data_dir):<9}{d.rows:>6} rows  {d.what}")


@data.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option(
    "--data-dir", default=None, type=click.Path(), help="the data folder (default: ERASEKIT_DATA, else the cache)"
)
@click.option(
    "--mirror",
    default=None,
    help="download from a mirror instead of the public source: a folder or a URL base (file://...)",
)
def data_fetch(names, data_dir, mirror):
    """Download data sets (`all` for every one) and keep each only if its sha256 is the recorded one.

    \b
    Examples:
      erasekit data fetch i2p coco
      erasekit data fetch all --mirror file:///srv/erasekit-data/
    """
    from erasekit.core import datasets

    names = list(datasets.DATASETS) if names == ("all",) else list(dict.fromkeys(names))
    for name in names:
        datasets.get(name)  # every name checked before the first download
    for name in names:
        click.echo(f"{name}: {datasets.fetch(name, data_dir, mirror)} (sha256 verified)")
