"""`crossdiff evaluate`: score pansharpening baselines on scene stores at both resolutions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands import DEFAULT_PARAMS, FlagCommand, ParamsFile, Threads, thread_limit


def evaluate(
    stores: Annotated[
        list[Path],
        typer.Argument(metavar="STORE",
                       help="Scene stores (<scene>.zarr) or folders holding <sensor>/<scene>.zarr.",
                       show_default=False),
    ],
    methods: Annotated[
        str | None, typer.Option(
            help="Comma-separated baselines (exp, brovey, gsa, mtf_glp_hpm, ...), or "
            "all_classical for every one (default: the baselines of evaluate.methods; the "
            "CrossDiff methods need the pipeline's models: `dvc repro evaluate`).")
    ] = None,
    out: Annotated[Path | None, typer.Option(
        help="Folder for metrics.json, metrics_long.csv, tables/, panels/ (default: "
        "evaluate.out).")] = None,
    max_pan_size: Annotated[int | None, typer.Option(
        help="Evaluate a centred crop at most this many PAN pixels per side.")] = None,
    border_cut: Annotated[int | None, typer.Option(
        help="Reduced-resolution border cut in pixels (21 = the toolbox's).")] = None,
    block_size: Annotated[int | None, typer.Option(
        help="Block size of the Q-type indices.")] = None,
    threads: Threads = None,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Score methods on each scene: reduced resolution (Wald protocol, the original MS as
    reference: Q2n, Q, SAM, ERGAS, SCC) and full resolution (HQNR, QNR, D_lambda, D_lambda_K,
    D_s, D_rho, R-Q2n, R-Q, R-SAM, R-ERGAS).

    Indices follow the reference toolbox exactly; each index is defined in the docstrings of
    crossdiff_core/metrics.py (`python -m pydoc crossdiff_core.metrics`).
    """
    from rich.console import Console

    from crossdiff_core.baselines import METHODS
    from crossdiff_core.evaluation import expand_methods
    from crossdiff_core.io.store import find_scene_stores
    from flows.params import cli_config

    console = Console(soft_wrap=True)
    names = None if methods is None else [
        m.strip().lower().replace("-", "_") for m in methods.split(",") if m.strip()]
    config = cli_config("evaluate", params, scenes=stores, methods=names, out=out,
                        max_pan_size=max_pan_size, border_cut=border_cut, block_size=block_size)
    chosen = expand_methods(config.methods)
    others = [n for n in chosen if n not in METHODS]
    baselines = [n for n in chosen if n in METHODS]
    if (others and methods is not None) or not baselines:
        raise ValueError(f"--methods: unknown {others or 'empty list'}; choose from "
                         f"{', '.join(METHODS)}, or all_classical (the CrossDiff methods are "
                         "scored by `dvc repro evaluate`)")
    if others:
        console.print(f"[dim]{', '.join(others)}: scored by `dvc repro evaluate` (they need the "
                      "pipeline's models), not here[/dim]")
    # Core functions, not the flow: a one-shot command gains nothing from a Prefect run (and would
    # pay the server start-up); the evaluate flow's tasks call the same functions.
    with thread_limit(threads):
        written = _score(find_scene_stores(config.scenes), baselines, config, console)
    console.print(f"wrote {written['metrics']}, {written['long_csv']} and per-scene tables "
                  f"under {config.out}")


def _score(stores, baselines, config, console) -> dict:
    """Score ``baselines`` on each store, print the tables, write the files."""
    from rich.table import Table

    from crossdiff_core.baselines import METHODS
    from crossdiff_core.evaluation import FULL_INDICES, REDUCED_INDICES, evaluate_scene
    from crossdiff_core.evaluation_files import write_evaluation
    from crossdiff_core.io.store import open_scene

    results = []
    for store in stores:
        result = evaluate_scene(open_scene(store), {n: METHODS[n] for n in baselines},
                                max_pan_size=config.max_pan_size, block_size=config.block_size,
                                border_cut=config.border_cut)
        results.append(result)
        # Full-resolution indices in two tables so each fits an 80-column terminal.
        tables = (("reduced resolution", REDUCED_INDICES),
                  ("full resolution", FULL_INDICES[:6]), ("full resolution", FULL_INDICES[6:]))
        for title, indices in tables:
            table = Table(title=f"{result.scene_id} ({result.sensor}): {title}")
            table.add_column("method")
            for index in indices:
                table.add_column(index, justify="right")
            for method, scores in result.scores.items():
                table.add_row(method, *(f"{scores[i]:.4f}" for i in indices))
            console.print(table)
    return write_evaluation(results, config.out, panel_crop=config.panel_crop)


def register(app: typer.Typer) -> None:
    app.command("evaluate", cls=FlagCommand)(evaluate)
