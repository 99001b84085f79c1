"""`crossdiff ingest`: satellite archives and rasters into Zarr scene stores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands import (
    DEFAULT_PARAMS,
    QUIET,
    FlagCommand,
    ParamsFile,
    Threads,
    thread_limit,
    verbosity,
)

RASTER_SUFFIXES = (".tif", ".tiff")


def is_raster(source: str) -> bool:
    """A GeoTIFF file: a local file, or a URL (https://, s3://, /vsicurl/...) whose path ends
    in .tif/.tiff (query string aside)."""
    from crossdiff_core.infer.provenance import is_remote

    if is_remote(source):
        return source.split("?", 1)[0].lower().endswith(RASTER_SUFFIXES)
    path = Path(source)
    return path.is_file() and path.suffix.lower() in RASTER_SUFFIXES


def group_sources(sources: list[str]) -> list[str | list[str]]:
    """Sources as the flow takes them: exactly two GeoTIFF files form one PAN + MS pair. The
    strings are kept as given: ``Path("s3://b/x")`` would turn a URL into ``s3:/b/x``."""
    sources = [str(s) for s in sources]
    rasters = [s for s in sources if is_raster(s)]
    if not rasters:
        return sources
    if len(rasters) != 2:
        raise ValueError(
            f"{', '.join(rasters)}: give GeoTIFFs as one PAN + MS pair (PAN first), "
            "or a folder/zip holding the pair"
        )
    others = [s for s in sources if s not in rasters]
    return [*others, [rasters[0], rasters[1]]]


def ingest(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE",
            help="Landsat 8/9 Level-1 bundles (.tar, .tar.gz or folder), folders or .zip files "
            "holding a PAN and an MS GeoTIFF, two GeoTIFF paths or URLs (PAN then MS), "
            "PanCollection .h5 files or GRIP .mat files.",
            show_default=False,
        ),
    ],
    out: Annotated[Path | None, typer.Option(
        help="Folder receiving <sensor>/<scene_id>.zarr (default: ingest.out).")] = None,
    sensor: Annotated[
        str | None,
        typer.Option(help="Sensor name or alias (QB, WV3, IKONOS, L8...); needed when the "
                     "source does not say."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Re-ingest sources already ingested (same sha256); "
                           "replaces a damaged store whatever made it.")
    ] = False,
    chunk_size: Annotated[int | None, typer.Option(
        help="PAN chunk edge in pixels, MS chunks are chunk-size / ratio (default: "
        "ingest.chunk_size).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="threads, processes, or a dask.distributed address tcp://host:port (default: "
        "ingest.scheduler).")] = None,
    threads: Threads = None,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Turn satellite deliveries into analysis-ready scene stores, one per scene.

    PAN and MS are aligned so that the PAN grid nests the MS grid exactly.

    Stores are checked and written chunk by chunk, in bounded memory.

    A source already ingested (same sha256) is skipped unless --force, or unless its store
    fails `crossdiff verify`: a damaged store is rebuilt.
    """
    from rich.console import Console

    from flows.params import cli_config

    console = Console(soft_wrap=True)
    config = cli_config("ingest", params, sources=group_sources(sources), out=out,
                        sensor=sensor, chunk_size=chunk_size, scheduler=scheduler)
    # The core function the flow's task calls, not the flow: a one-shot command gains nothing
    # from a Prefect run (and would pay the server start-up).
    from crossdiff_core.ingest import ingest_source

    loud = verbosity() > QUIET
    with thread_limit(threads):
        for source in config.sources:
            result = ingest_source(source if isinstance(source, str) else tuple(source),
                                   config.out, sensor=config.sensor,
                                   chunk_size=config.chunk_size, scheduler=config.scheduler,
                                   force=force, progress=loud)
            label = source if isinstance(source, str) else " + ".join(source)
            verb = "[yellow]skipped[/yellow]" if result.skipped else "[green]wrote[/green]"
            for store in result.stores or (result.store,):
                if loud:
                    console.print(f"{verb} {store}  [dim]from {label}[/dim]")


def register(app: typer.Typer) -> None:
    app.command("ingest", cls=FlagCommand)(ingest)
