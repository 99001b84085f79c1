"""`crossdiff cross-sensor`: the cross-sensor generalisation matrix (HQNR and Q2n)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def cross_sensor(
    params: Annotated[
        Path,
        typer.Option(
            help="Parameters file; its cross_sensor section lists the scenes and step counts, the "
            "pretrain/freeze/adapt sections give every other setting."
        ),
    ] = Path("params.yaml"),
    scene: Annotated[
        list[Path] | None,
        typer.Option(
            help="Scene store or folder of stores (repeatable); replaces cross_sensor.scenes and "
            "skips cross_sensor.dev_sources."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for cross_sensor.csv, .md and .png (default: cross_sensor.out)."),
    ] = None,
) -> None:
    """Pretrain encoders on each sensor's scenes, adapt the fusion head to every sensor's scenes
    and score it: rows = encoders' sensor, columns = target sensor, HQNR at full resolution and
    Q2n at reduced resolution (the reduced chain runs on Wald-degraded copies only)."""
    import os

    from rich.console import Console

    console = Console(soft_wrap=True)  # one-line errors, whatever the terminal width
    if not params.is_file():
        console.print(
            f"[red]error:[/red] {params} not found: run from the project root or pass --params"
        )
        raise typer.Exit(code=1)
    os.environ["CROSSDIFF_PARAMS"] = str(params)
    from flows.cross_sensor import main

    try:
        markdown = main(
            scenes=[str(s) for s in scene] if scene else None, out=str(out) if out else None
        )
    except (ValueError, FileNotFoundError, KeyError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    console.print(markdown.read_text())
    console.print(f"written: {markdown.parent}/cross_sensor.{{csv,md,png}}")


def register(app: typer.Typer) -> None:
    app.command("cross-sensor")(cross_sensor)
