"""`crossdiff pansharpen`: fuse a whole scene with an adapted model or a classical baseline."""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flows.commands import DEFAULT_PARAMS, ParamsFile


class OutputFormat(StrEnum):
    cog = "cog"
    zarr = "zarr"


def pansharpen(
    out: Annotated[Path, typer.Option(help="Output raster (.tif COG) or Zarr store.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="A saved pansharpener folder, a registry URI (models:/<name>@champion) or a "
            "baseline name (exp, brovey, gsa, mtf_glp_hpm, ...); default: pansharpen.model."
        ),
    ] = None,
    scene: Annotated[Path | None, typer.Option(help="An ingested scene store (.zarr).")] = None,
    pan: Annotated[Path | None, typer.Option(help="PAN GeoTIFF (with --ms).")] = None,
    ms: Annotated[Path | None, typer.Option(help="MS GeoTIFF (with --pan).")] = None,
    sensor: Annotated[
        str | None,
        typer.Option(
            help="Sensor of the --pan/--ms pair (QB, WV3, IKONOS, ...) when the files do not say."
        ),
    ] = None,
    fmt: Annotated[OutputFormat | None, typer.Option(
        "--format", help="Output format (default: pansharpen.format).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    tile: Annotated[int | None, typer.Option(
        help="Window edge in PAN pixels (models; a baseline runs on the whole scene, strip by "
        "strip, with its global statistics); default: pansharpen.tile.")] = None,
    blend: Annotated[int | None, typer.Option(
        help="Blending width between windows in PAN pixels (default: pansharpen.blend).")] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Windows per forward, more on a GPU (default: pansharpen.batch_size).")] = None,
    device: Annotated[str | None, typer.Option(
        help="auto, cpu or cuda (default: pansharpen.device).")] = None,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Pansharpen a whole scene of any size, window by window, into a georeferenced raster.

    The output lies on the PAN grid with the scene's CRS, transform, band names, DN dtype and
    nodata; it appears only once complete.
    """
    from rich.console import Console

    from flows.params import cli_config

    if (scene is None) == (pan is None or ms is None) or (scene is not None and (pan or ms)):
        raise typer.BadParameter("give either --scene STORE or both --pan PAN.tif and --ms MS.tif",
                                 param_hint="--scene / --pan / --ms")
    config = cli_config("pansharpen", params, model=model, format=fmt and fmt.value, tile=tile,
                        blend=blend,
                        batch_size=batch_size, device=device)
    from crossdiff_core.infer import check_output
    from tasks.models import fuse_store, local_model

    check_output(out, config.format, overwrite)
    # The function the flow's task runs, called directly: no Prefect server for one scene.
    with local_model(config.model) as local, \
            tempfile.TemporaryDirectory(prefix="crossdiff-pair-") as scratch:
        if scene is None:
            from crossdiff_core.ingest import ingest_source

            # Align and check the pair exactly as ingestion does (grids that do not nest).
            scene = ingest_source((str(pan), str(ms)), scratch, sensor=sensor).store
        path = fuse_store(local, scene, out, config, overwrite=overwrite)
    Console(soft_wrap=True).print(f"pansharpened with {config.model} -> [bold]{path}[/bold]")


def register(app: typer.Typer) -> None:
    app.command()(pansharpen)
