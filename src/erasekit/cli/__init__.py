"""The `erasekit` command line: argument parsing and printing over the Python API (`erasekit.runs` does the work).

Every user error, click's own usage errors included, prints one line, `erasekit: error: ...`, and exits with
status 2 (no traceback). Every input is checked before any work starts, and nothing half-written is left behind.
Heavy libraries (torch, diffusers) are imported inside the commands, so `--help` and `--version` answer at once.
The commands live in `edits.py` (erase, hide, recover, export), `scoring.py` (generate, evaluate, attack, inspect,
graph) and `tools.py` (info, methods, attacks, bench, data, demo, world); this module holds what they share.
"""

from __future__ import annotations

import os
import sys

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


def out_options(fn):
    """--overwrite and --force, shared by every command that writes an output or applies an edit."""
    fn = click.option("--force", is_flag=True, help="apply an edit even if the base model's fingerprint differs")(fn)
    return click.option(
        "--overwrite",
        is_flag=True,
        help="replace an existing output (only if everything in it was written by erasekit)",
    )(fn)


def dtype_option(help: str):
    """--dtype: the precision the model's weights are loaded in."""
    return click.option("--dtype", default="fp32", type=click.Choice(["fp32", "bf16", "fp16"]), help=help)


def resolution_option(fn):
    return click.option(
        "--resolution",
        default=None,
        type=click.IntRange(min=1),
        metavar="PIXELS",
        help="side of the images drawn (default: the model's own: 512 for SD-1.x, 768 for SD-2.x, "
        "32 for the miniature)",
    )(fn)


def data_dir_option(fn):
    return click.option(
        "--data-dir",
        default=None,
        type=click.Path(),
        help="folder of the data sets' files (default: ERASEKIT_DATA, else the user's cache; `erasekit data list`)",
    )(fn)


POSITIVE = click.IntRange(min=1)
FAMILY_OPTION = click.option(
    "--family",
    default=None,
    type=click.Choice(["sd1", "sd2", "sdxl", "sd3", "flux"]),
    help="only those that run on this model family",
)

from erasekit.cli import edits, scoring, tools  # noqa: E402,F401  (registers the commands on `main`)

if __name__ == "__main__":
    main()
