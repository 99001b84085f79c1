"""The ``crossdiff`` command: one sub-command per user action, each calling a flow."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="crossdiff",
    help=(
        "CrossDiff self-supervised pansharpening.\n\n"
        "Typical use: `crossdiff ingest ARCHIVE --out data/zarr`, then `dvc repro` for the whole "
        "chain, or `crossdiff pansharpen --model models:/crossdiff-pansharpener@champion "
        "--pan PAN.tif --ms MS.tif --out FUSED.tif` to fuse your own scene."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


# Each module in flows/commands defines ``register(app)`` adding its sub-command(s).
COMMAND_MODULES: tuple[str, ...] = (
    "serve", "report", "ingest", "pretrain", "adapt", "pansharpen", "evaluate", "cross_sensor",
)


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"flows.commands.{name}").register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
