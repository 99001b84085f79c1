"""`crossdiff report`: build the evaluation report from the evaluate stage's output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands import DEFAULT_PARAMS, FlagCommand, ParamsFile


def report(
    metrics_dir: Annotated[
        Path | None, typer.Option(
            help="Evaluate stage output: metrics.json, metrics_long.csv, panels/ (default: "
            "report.metrics_dir).")
    ] = None,
    pretrain_dir: Annotated[
        Path | None,
        typer.Option(
            help="Pretraining output with p2m/losses.csv and m2p/losses.csv, skipped if absent "
            "(default: report.pretrain_dir).",
        ),
    ] = None,
    adapt_dir: Annotated[
        Path | None,
        typer.Option(
            help="Adaptation output; every *loss*.csv under it is plotted, skipped if absent "
            "(default: report.adapt_dir).",
        ),
    ] = None,
    cross_sensor_dir: Annotated[
        Path | None,
        typer.Option(
            help="Output of `crossdiff cross-sensor`; its matrix is added when cross_sensor.csv is "
            "there (default: report.cross_sensor_dir)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(
            help="Folder for report.md, report.html and figures/ (default: report.out).")
    ] = None,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Write the evaluation report (Markdown + HTML) from the evaluate stage's output.

    Per-scene tables with the best value marked, mean ranks, plain statements where CrossDiff is
    not best, picture panels, reduced-resolution error maps and loss curves.
    """
    from rich.console import Console

    from flows.params import cli_config

    config = cli_config("report", params, metrics_dir=metrics_dir, pretrain_dir=pretrain_dir,
                        adapt_dir=adapt_dir, cross_sensor_dir=cross_sensor_dir, out=out)
    metrics = Path(config.metrics_dir) / "metrics.json"
    if not metrics.is_file():
        raise FileNotFoundError(f"{metrics} not found: run `dvc repro evaluate` first or pass "
                                "--metrics-dir")
    from flows.report import report_flow

    markdown = report_flow(config)
    Console(soft_wrap=True).print(
        f"report written: {markdown} and {markdown.with_suffix('.html')}")


def register(app: typer.Typer) -> None:
    app.command("report", cls=FlagCommand)(report)
