"""`crossdiff pansharpen`: fuse a whole scene with an adapted model or a classical baseline.

    crossdiff pansharpen [OPTIONS] PAN MS OUT
    crossdiff pansharpen [OPTIONS] --scene STORE OUT

PAN and MS are passed unchanged (local paths or URLs) to ``crossdiff_core.ingest.ingest_source``;
the output format follows OUT's extension unless ``--format``. ``--pan``, ``--ms`` and ``--out``
remain as hidden aliases of the positional arguments.
"""

from __future__ import annotations

import dataclasses
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flows.commands import (
    DEFAULT_PARAMS,
    QUIET,
    FlagCommand,
    ParamsFile,
    Quiet,
    Threads,
    Verbose,
    set_verbosity,
    thread_limit,
)


class OutputFormat(StrEnum):
    cog = "cog"
    zarr = "zarr"


class ClipPolicy(StrEnum):
    dtype = "dtype"
    input = "input"
    none = "none"


USAGE = "give PAN MS OUT, or --scene STORE OUT"


class PansharpenCommand(FlagCommand):
    """Its usage line names both forms: ``[OPTIONS] (PAN MS | --scene STORE) OUT``."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [self.options_metavar, "(PAN MS | --scene STORE) OUT"]


def creation_options(values: list[str] | None) -> dict[str, str]:
    """``--co KEY=VALUE`` options as {KEY: VALUE} (keys upper-cased, as GDAL spells them)."""
    options = {}
    for value in values or []:
        key, sep, setting = value.partition("=")
        if not sep or not key.strip() or not setting.strip():
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE (e.g. --co LEVEL=9)",
                                     param_hint="--co")
        options[key.strip().upper()] = setting.strip()
    return options


def split_inputs(paths: list[str], scene: Path | None, pan: str | None, ms: str | None,
                 out: str | None) -> tuple[str | None, str | None, str]:
    """(PAN, MS, OUT) from the positional arguments and the hidden aliases; a usage error when
    they do not make one of the two forms."""
    given = list(paths)
    if out is None:
        if not given:
            raise typer.BadParameter(f"missing OUT: {USAGE}", param_hint="OUT")
        out = given.pop()
    if scene is not None:
        if given or pan or ms:
            raise typer.BadParameter(f"with --scene STORE give only OUT: {USAGE}",
                                     param_hint="--scene")
        return None, None, out
    if pan or ms:
        if given or not (pan and ms):
            raise typer.BadParameter(USAGE, param_hint="PAN MS")
        return pan, ms, out
    if len(given) != 2:
        raise typer.BadParameter(USAGE, param_hint="PAN MS")
    return given[0], given[1], out


def pansharpen(
    paths: Annotated[list[str] | None, typer.Argument(
        metavar="[PAN MS] OUT",
        help="PAN and MS rasters (local paths or URLs: https://..., s3://..., /vsicurl/...), "
        "then the output: .tif/.tiff = Cloud-Optimized GeoTIFF, .zarr = Zarr store (or "
        "--format). With --scene STORE, only OUT.", show_default=False)] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="A saved pansharpener folder, a registry URI (models:/<name>@champion) or a "
            "baseline name (exp, brovey, gsa, mtf_glp_hpm, ...); default: pansharpen.model."
        ),
    ] = None,
    scene: Annotated[Path | None, typer.Option(
        help="An ingested scene store (.zarr) instead of PAN and MS.")] = None,
    sensor: Annotated[
        str | None,
        typer.Option(
            help="Sensor of the PAN + MS pair (QB, WV3, IKONOS, ...) when the files do not say."
        ),
    ] = None,
    fmt: Annotated[OutputFormat | None, typer.Option(
        "--format", help="Output format (default: from OUT's extension).")] = None,
    clip: Annotated[ClipPolicy | None, typer.Option(
        help="dtype: clip to the valid range of the MS dtype; input: to each band's min/max "
        "over the input MS; none: no clipping (integer MS are written as float32). The count of "
        "clipped pixels is printed and stored in the output (default: pansharpen.clip).",
        show_default=False)] = None,
    co: Annotated[list[str] | None, typer.Option(
        "--co", metavar="KEY=VALUE",
        help="GDAL COG creation option over the defaults (COMPRESS=DEFLATE, PREDICTOR 2 for "
        "integers / 3 for floats, BLOCKSIZE=512, OVERVIEW_RESAMPLING=AVERAGE); repeatable, e.g. "
        "--co LEVEL=9 --co BLOCKSIZE=256.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")
                         ] = False,
    tile: Annotated[int | None, typer.Option(
        help="Window edge in PAN pixels (models; a baseline runs on the whole scene, strip by "
        "strip, with its global statistics); default: pansharpen.tile.")] = None,
    blend: Annotated[int | None, typer.Option(
        help="Blending width between windows in PAN pixels (default: pansharpen.blend).")] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Windows per forward, more on a GPU (default: pansharpen.batch_size).")] = None,
    device: Annotated[str | None, typer.Option(
        help="auto, cpu or cuda (default: pansharpen.device).")] = None,
    threads: Threads = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Fuse on a Dask cluster: a scheduler address (tcp://host:8786) or local:N[:MEMORY] "
        "(N one-thread workers started for this command, e.g. local:2:1GiB); the same file bit "
        "for bit. Default: in this process.", show_default=False)] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    params: ParamsFile = DEFAULT_PARAMS,
    pan: Annotated[str | None, typer.Option("--pan", hidden=True)] = None,
    ms: Annotated[str | None, typer.Option("--ms", hidden=True)] = None,
    out_option: Annotated[str | None, typer.Option("--out", hidden=True)] = None,
) -> None:
    """Pansharpen a whole scene of any size, window by window, into a georeferenced raster.

    crossdiff pansharpen [OPTIONS] PAN MS OUT, or crossdiff pansharpen [OPTIONS] --scene STORE
    OUT. The output lies on the PAN grid with the scene's CRS, transform, DN dtype and nodata
    (pixels where the PAN or any MS band is nodata stay nodata); it appears only once complete.

    A COG keeps the sensor's band order: bands carry their names, centre wavelengths
    (micrometres) and colour interpretation (red, green and blue on those bands, undefined on
    the others); the metadata record the method, model and version, the sha256 of the inputs,
    the software version, the settings and the clipped-pixel count. A Zarr output carries the
    same as coordinates and attributes; a STAC Item (OUT.stac.json) describes either.
    """
    from rich.console import Console

    from flows.params import cli_config

    level = set_verbosity(quiet, verbose)
    pan, ms, out = split_inputs(paths or [], scene, pan, ms, out_option)
    from crossdiff_core.infer.writers import output_format

    try:
        chosen = output_format(out, fmt and fmt.value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="OUT") from None
    if scheduler is not None:
        from crossdiff_core.io.scheduler import is_distributed

        try:
            cluster = is_distributed(scheduler)
        except ValueError:
            cluster = False
        if not cluster:
            raise typer.BadParameter(f"{scheduler!r} is no cluster: give tcp://host:8786 or "
                                     "local:N[:MEMORY]", param_hint="--scheduler")
    options = creation_options(co)
    if options and chosen != "cog":
        raise typer.BadParameter("--co applies to COG outputs (.tif), not to Zarr",
                                 param_hint="--co")
    config = cli_config("pansharpen", params, model=model, format=chosen, tile=tile,
                        blend=blend, batch_size=batch_size, device=device,
                        clip=clip and clip.value)
    if options:
        merged = {str(k).upper(): str(v) for k, v in config.creation_options.items()}
        config = dataclasses.replace(config, creation_options={**merged, **options})
    from crossdiff_core.infer import check_output
    from crossdiff_core.infer.provenance import input_record, read_provenance
    from tasks.models import fuse_store, local_model

    out_path = check_output(out, config.format, overwrite)
    inputs = None if scene is not None else {"pan": input_record(pan), "ms": input_record(ms)}
    # The function the flow's task runs, called directly: no Prefect server for one scene.
    with thread_limit(threads), local_model(config.model) as local, \
            tempfile.TemporaryDirectory(prefix="crossdiff-pair-") as scratch:
        store = scene
        if store is None:
            from crossdiff_core.ingest import ingest_source

            # Align and check the pair exactly as ingestion does (grids that do not nest); the
            # strings go unchanged: URLs stay URLs.
            store = ingest_source((pan, ms), scratch, sensor=sensor).store
        path = fuse_store(local, store, out_path, config, overwrite=overwrite,
                          progress=level > QUIET, inputs=inputs, scheduler=scheduler)
    if level > QUIET:
        record = read_provenance(path)
        console = Console(soft_wrap=True, highlight=False)
        console.print(f"pansharpened with {config.model} -> [bold]{path}[/bold]")
        console.print(f"clipped {record.get('clipped_pixels', 0)} pixels "
                      f"(--clip {config.clip})")


def register(app: typer.Typer) -> None:
    app.command(cls=PansharpenCommand)(pansharpen)
