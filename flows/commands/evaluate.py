"""`crossdiff evaluate`: score pansharpening baselines on scene stores at both resolutions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    stores: Annotated[
        list[Path],
        typer.Argument(help="Scene stores (<scene>.zarr) or folders holding <sensor>/<scene>.zarr.",
                       show_default=False),
    ],
    methods: Annotated[
        str, typer.Option(help="Comma-separated baselines (exp, brovey, gsa, mtf_glp_hpm, ...), "
                          "or all_classical for every one.")
    ] = "exp,brovey,gsa,mtf_glp_hpm",
    out: Annotated[
        Path, typer.Option(help="Folder for metrics.json, metrics_long.csv, tables/, panels/.")
    ] = Path("reports"),
    max_pan_size: Annotated[
        int, typer.Option(help="Evaluate a centred crop at most this many PAN pixels per side.")
    ] = 1024,
    border_cut: Annotated[
        int, typer.Option(help="Reduced-resolution border cut in pixels (21 = the toolbox's).")
    ] = 21,
    block_size: Annotated[int, typer.Option(help="Block size of the Q-type indices.")] = 32,
) -> None:
    """Score methods on each scene: reduced resolution (Wald protocol, the original MS as
    reference: Q2n, Q, SAM, ERGAS, SCC) and full resolution (HQNR, QNR, D_lambda, D_lambda_K,
    D_s, D_rho, R-Q2n, R-Q, R-SAM, R-ERGAS).

    Indices follow the reference toolbox exactly; see METRICS.md.
    """
    from rich.console import Console
    from rich.table import Table

    from crossdiff_core.baselines import METHODS
    from crossdiff_core.evaluation import (
        FULL_INDICES,
        REDUCED_INDICES,
        evaluate_scene,
        expand_methods,
    )
    from crossdiff_core.evaluation_files import write_evaluation
    from crossdiff_core.io.store import find_scene_stores, open_scene

    console = Console(soft_wrap=True)
    names = expand_methods(
        [m.strip().lower().replace("-", "_") for m in methods.split(",") if m.strip()])
    unknown = [n for n in names if n not in METHODS]
    if not names or unknown:
        console.print(f"[red]error:[/red] --methods: unknown {unknown or 'empty list'}; "
                      f"choose from {', '.join(METHODS)}, or all_classical")
        raise typer.Exit(code=1)
    # Core functions, not the flow: a one-shot command gains nothing from a Prefect run (and would
    # pay the server start-up); the evaluate flow wraps the same functions for DVC and schedules.
    try:
        results = []
        for store in find_scene_stores(stores):
            result = evaluate_scene(open_scene(store), {n: METHODS[n] for n in names},
                                    max_pan_size=max_pan_size, block_size=block_size,
                                    border_cut=border_cut)
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
        written = write_evaluation(results, out)
    except (ValueError, OSError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    console.print(f"wrote {written['metrics']}, {written['long_csv']} and per-scene tables "
                  f"under {out}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
