"""The ``crossdiff`` command: one sub-command per user action (flows/commands/*).

Each command reads its section of params.yaml (``--params``) into the section's typed config,
applies its options on top (``flows.params.cli_config``), calls the same flow or the same function
the flow calls, and prints. Errors are handled here, once: a user error (bad input, a missing
file, a refused setting) exits 1 with one line ``error: ...``; a usage error (an unknown option, a
missing or malformed option value) exits 2 with click's usage message; a traceback is printed
only with ``crossdiff --debug ...``. ``-q``/``-v`` (here or after the sub-command's name) set
how much is printed: orchestration log lines (Prefect, MLflow) and library warnings only with
``-v``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from flows.commands import (
    FlagCommand,
    Quiet,
    Verbose,
    adapt,
    bare_flags,
    command_output,
    cross_sensor,
    evaluate,
    ingest,
    pansharpen,
    pretrain,
    report,
    serve,
    verify,
)

# What a user can cause and fix: bad or missing input, refused settings, a diverging run.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, OSError, KeyError, FloatingPointError,
)


def error_line(error: BaseException) -> str:
    """One line saying what went wrong (a KeyError's message without its quotes)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(text.split()) or type(error).__name__
    if isinstance(error, USER_ERRORS):
        return f"error: {text}"
    return (f"error: {type(error).__name__}: {text} (unexpected: rerun with `crossdiff --debug` "
            "for the traceback)")


class ErrorHandlingGroup(TyperGroup):
    """Runs a sub-command and turns what it raises into one line and exit status 1, unless
    ``--debug`` asked for the traceback. Click's own exits (usage errors: 2) pass through.
    Boolean options show as plain flags in ``--help``, here and in every sub-command."""

    command_class = FlagCommand

    def format_help(self, ctx, formatter) -> None:
        bare_flags(self.get_params(ctx))
        for command in self.commands.values():
            # The listing shows the first paragraph of each docstring as it is wrapped in the
            # source: joined into one line, it is wrapped to the terminal instead.
            if command.short_help is None and command.help:
                first = command.help.strip().split("\n\n")[0]
                command.short_help = " ".join(first.split())
        return super().format_help(ctx, formatter)

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise  # usage errors (exit 2), explicit exits and Ctrl+C: click's own handling
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            typer.echo(error_line(error), err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="crossdiff",
    cls=ErrorHandlingGroup,
    help=(
        "CrossDiff self-supervised pansharpening.\n\n"
        "Typical use: `crossdiff ingest ARCHIVE --out data/zarr`, then `dvc repro` for the whole "
        "chain, or `crossdiff pansharpen --model models:/crossdiff-pansharpener@champion "
        "PAN.tif MS.tif FUSED.tif` to fuse your own scene (PAN and MS may be URLs). Settings not "
        "given as options come from params.yaml (`--params` of each command). -q prints only "
        "errors, -v also the log lines of Prefect, MLflow and GDAL."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def print_version(value: bool) -> None:
    if value:
        from crossdiff_core import __version__

        typer.echo(f"crossdiff {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option(
        "--debug", envvar="CROSSDIFF_DEBUG",
        help="Show the full traceback of an error instead of one line.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=print_version, is_eager=True,
        help="Print `crossdiff <version>` and exit.")] = False,
) -> None:
    """Options of every sub-command, before the sub-command's name: ``--debug``, ``-q``,
    ``-v`` (``-q``/``-v`` may also follow the sub-command's name)."""
    ctx.with_resource(command_output(quiet, verbose))


for module in (ingest, pretrain, adapt, evaluate, pansharpen, report, cross_sensor, serve,
               verify):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
