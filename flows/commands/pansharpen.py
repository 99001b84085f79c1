"""`crossdiff pansharpen`: fuse a whole scene with an adapted model or a classical baseline."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer


def _model_folder(model: str) -> str:
    """Registry URIs resolve to a local folder; folders and baseline names pass through."""
    if model.startswith("models:/"):
        from tasks.tracking import resolve_model_uri

        return str(resolve_model_uri(model))
    return model


def pansharpen(
    model: Annotated[
        str,
        typer.Option(
            help="A saved pansharpener folder, a registry URI (models:/<name>@champion) or a "
            "baseline name (exp, brovey, gsa, mtf_glp_hpm, ...)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output raster (.tif COG) or Zarr store.")],
    scene: Annotated[Path | None, typer.Option(help="An ingested scene store (.zarr).")] = None,
    pan: Annotated[Path | None, typer.Option(help="PAN GeoTIFF (with --ms).")] = None,
    ms: Annotated[Path | None, typer.Option(help="MS GeoTIFF (with --pan).")] = None,
    sensor: Annotated[
        str | None,
        typer.Option(
            help="Sensor of the --pan/--ms pair (QB, WV3, IKONOS, ...) when the files do not say."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="cog or zarr.")] = "cog",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    tile: Annotated[int, typer.Option(
        help="Window edge in PAN pixels (models; a baseline runs on the whole scene, strip by "
        "strip, with its global statistics).")] = 640,
    batch_size: Annotated[int, typer.Option(help="Windows per forward (more on a GPU).")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Pansharpen a whole scene of any size, window by window, into a georeferenced raster.

    The output lies on the PAN grid with the scene's CRS, transform, band names, DN dtype and
    nodata; it appears only once complete.
    """
    from rich.console import Console

    console = Console(soft_wrap=True)
    if (scene is None) == (pan is None or ms is None) or (scene is not None and (pan or ms)):
        console.print(
            "[red]error:[/red] give either --scene STORE or both --pan PAN.tif and --ms MS.tif"
        )
        raise typer.Exit(code=1)
    try:
        from crossdiff_core.infer import check_output

        check_output(out, fmt, overwrite)
        folder = _model_folder(model)
        with tempfile.TemporaryDirectory(prefix="crossdiff-pair-") as scratch:
            if scene is None:
                from crossdiff_core.ingest import ingest_source

                # Align and check the pair exactly as ingestion does (grids that do not nest).
                scene = ingest_source((str(pan), str(ms)), scratch, sensor=sensor).store
            from crossdiff_core.infer import check_scene_fits, load_fuser
            from crossdiff_core.io.store import open_scene
            from flows.pansharpen import pansharpen_flow

            # Refuse a mismatched model or a tiny scene in one line, before any flow starts.
            opened = open_scene(scene)
            check_scene_fits(
                tuple(opened.pan.shape),
                tuple(opened.ms.shape),
                load_fuser(folder, opened, "cpu"),
                str(scene),
            )

            path = pansharpen_flow(
                model=folder,
                scene=str(scene),
                out=str(out),
                fmt=fmt,
                tile=tile,
                batch_size=batch_size,
                device=device,
                overwrite=overwrite,
            )
    except (ValueError, OSError, KeyError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    console.print(f"pansharpened with {model} -> [bold]{path}[/bold]")


def register(app: typer.Typer) -> None:
    app.command()(pansharpen)
