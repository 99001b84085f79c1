"""`crossdiff cross-sensor`: the cross-sensor generalisation matrix (HQNR and Q2n)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands import DEFAULT_PARAMS, FlagCommand, ParamsFile


def cross_sensor(
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
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Pretrain encoders on each sensor's scenes, adapt the fusion head to every sensor's scenes
    and score it: rows = encoders' sensor, columns = target sensor, HQNR at full resolution and
    Q2n at reduced resolution (the reduced chain runs on Wald-degraded copies only).

    The cross_sensor section of the parameters file lists the scenes and step counts; its
    pretrain, freeze and adapt sections give every other setting.
    """
    from rich.console import Console

    from flows.params import cli_config

    config = cli_config("cross_sensor", params, scenes=scene, out=out,
                        dev_sources=[] if scene else None)
    from flows.cross_sensor import run

    markdown = run(config, params)
    console = Console(soft_wrap=True)
    console.print(markdown.read_text())
    console.print(f"written: {markdown.parent}/cross_sensor.{{csv,md,png}}")


def register(app: typer.Typer) -> None:
    app.command("cross-sensor", cls=FlagCommand)(cross_sensor)
