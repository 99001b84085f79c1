"""`crossdiff report`: build the evaluation report from the evaluate stage's output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    metrics_dir: Annotated[
        Path, typer.Option(help="Evaluate stage output: metrics.json, metrics_long.csv, panels/.")
    ] = Path("reports"),
    pretrain_dir: Annotated[
        Path,
        typer.Option(
            help="Pretraining output with p2m/losses.csv and m2p/losses.csv (skipped if absent).",
        ),
    ] = Path("data/models/pretrain"),
    adapt_dir: Annotated[
        Path,
        typer.Option(
            help="Adaptation output; every *loss*.csv under it is plotted (skipped if absent).",
        ),
    ] = Path("data/models/head"),
    cross_sensor_dir: Annotated[
        Path,
        typer.Option(
            help="Output of `crossdiff cross-sensor`; its matrix is added when cross_sensor.csv is "
            "there."
        ),
    ] = Path("reports/cross_sensor"),
    out: Annotated[
        Path, typer.Option(help="Folder for report.md, report.html and figures/.")
    ] = Path("reports/report"),
) -> None:
    """Write the evaluation report (Markdown + HTML) from the evaluate stage's output.

    Per-scene tables with the best value marked, mean ranks, plain statements where CrossDiff is
    not best, picture panels, reduced-resolution error maps and loss curves.
    """
    from rich.console import Console

    console = Console(soft_wrap=True)  # one-line errors, whatever the terminal width
    if not (metrics_dir / "metrics.json").is_file():
        console.print(
            f"[red]error:[/red] {metrics_dir / 'metrics.json'} not found: run "
            "`dvc repro evaluate` first or pass --metrics-dir"
        )
        raise typer.Exit(code=1)
    from flows.report import report_flow

    try:
        markdown = report_flow(
            metrics_dir, pretrain_dir, adapt_dir, out, cross_sensor_dir=cross_sensor_dir
        )
    except (ValueError, FileNotFoundError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    console.print(f"report written: {markdown} and {markdown.with_suffix('.html')}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
