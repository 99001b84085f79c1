"""``pansharpen_scene``: a whole scene into a COG or a Zarr store, written atomically.

Models run tiled (``crossdiff_core.infer.tiling``); the classical baselines
(``crossdiff_core.baselines.METHODS``) write through the same outputs but are not tiled: their
statistics and coefficients are global, so each runs on the whole scene lazily and is computed
strip by strip (``BaselineFuser.iter_rows``), which gives the method's one-shot values whatever
the scene size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da

from crossdiff_core.atomic import atomic_folder, atomic_write
from crossdiff_core.config import PansharpenParams
from crossdiff_core.infer.fusers import BaselineFuser
from crossdiff_core.infer.tiling import WindowFuser, check_scene_fits, iter_fused_rows
from crossdiff_core.infer.writers import (
    GeoTiffWriter,
    OutputMetadata,
    OutputValues,
    ZarrWriter,
    check_creation_options,
    check_output,
    clip_bounds,
    cog_creation_options,
    nodata_mask,
    output_dtype,
)
from crossdiff_core.io.windows import gdal_cache_env
from crossdiff_core.scene import Scene


def _write_fused(
    scene: Scene,
    fuser: WindowFuser,
    writer: GeoTiffWriter | ZarrWriter,
    values: OutputValues,
    **tiling,
) -> None:
    """Fuse ``scene`` strip by strip into ``writer`` and finish it; on any failure, abort it
    (it closes what it opened; the atomic write removes what was written)."""
    pan_data, ms_data = scene.pan.data, scene.ms.data
    nodata = values.nodata
    if isinstance(fuser, BaselineFuser):
        rows = fuser.iter_rows(ms_data, pan_data, progress=tiling.get("progress", False))
    else:
        rows = iter_fused_rows(ms_data, pan_data, fuser, **tiling)
    try:
        for first, block in rows:
            hole = None
            if nodata is not None:
                pan_rows, ms_rows = da.compute(
                    pan_data[first : first + block.shape[1]],
                    ms_data[
                        :, first // fuser.ratio : (first + block.shape[1] - 1) // fuser.ratio + 1
                    ],
                )
                hole = nodata_mask(pan_rows, ms_rows, first % fuser.ratio, fuser.ratio, nodata)
            writer.write(first, values.convert(block, hole))
        writer.provenance.update(values.summary())
        writer.finish()
    except BaseException:
        writer.abort()
        raise


def _provenance(scene: Scene, fuser: WindowFuser, given: dict[str, Any] | None,
                parameters: dict[str, Any]) -> dict[str, Any]:
    """The provenance record (``crossdiff_core.infer.provenance``): ``given`` (method, model,
    model_version, inputs from the caller) over what the scene and the fuser say."""
    from crossdiff_core import __version__

    baseline = isinstance(fuser, BaselineFuser)
    record: dict[str, Any] = {
        "method": getattr(fuser.method, "__name__", "baseline") if baseline else "crossdiff",
        "model": None,
        "model_version": __version__ if baseline else None,
        "inputs": {"scene": {"path": scene.attrs.get("store_path"),
                             "sha256": scene.attrs.get("source_sha256")}},
        "source_sha256": scene.attrs.get("source_sha256"),
        "scene_id": scene.attrs.get("scene_id"),
        "sensor": scene.attrs.get("sensor"),
        "software": "crossdiff",
        "software_version": __version__,
    }
    record.update({k: v for k, v in (given or {}).items() if k != "parameters"})
    record["parameters"] = {**parameters, **(given or {}).get("parameters", {})}
    return record


def pansharpen_scene(
    scene: Scene,
    fuser: WindowFuser,
    out: str | Path,
    fmt: str = PansharpenParams.format,
    tile: int = PansharpenParams.tile,
    context: int | None = None,
    blend: int = PansharpenParams.blend,
    batch_size: int = PansharpenParams.batch_size,
    overwrite: bool = False,
    progress: bool = True,
    band_names: list[str] | None = None,
    *,
    clip: str = PansharpenParams.clip,
    creation_options: dict[str, str] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Pansharpen a whole scene into a COG (default) or a Zarr store on the PAN grid.

    The output has the scene's CRS and transform, band names, wavelengths, true-colour
    interpretation, the MS's DN dtype and nodata value (pixels where the PAN or any MS band is
    nodata stay nodata) and the provenance record (``provenance``: method, model,
    model_version, inputs from the caller; the rest filled in here, with the ``clip`` count):
    see ``crossdiff_core.infer.writers``. ``clip``: ``dtype``, ``input`` or ``none``;
    ``creation_options``: GDAL COG options over ``cog_creation_options``' defaults. It is
    written under a hidden temporary name and renamed when complete; an existing ``out`` is
    refused unless ``overwrite``. The tiling (``tile``, ``context``, ``blend``, ``batch_size``;
    defaults: the ``pansharpen`` section's) applies to models; a ``BaselineFuser`` runs its
    method on the whole scene, strip by strip.
    """
    out = check_output(out, fmt, overwrite)
    check_scene_fits(tuple(scene.pan.shape), tuple(scene.ms.shape), fuser, str(out))
    band_names = band_names or scene.band_names
    nodata = scene.attrs.get("nodata")
    dtype = output_dtype(scene.ms.dtype, clip)
    if fmt == "cog":
        options = cog_creation_options(dtype, creation_options)
        if creation_options:  # the user's: refused now if GDAL would not take them
            check_creation_options(options, dtype, len(band_names))
    elif creation_options:
        raise ValueError("creation options (--co) apply to COG outputs, not to Zarr")
    parameters: dict[str, Any] = {"clip": clip, "format": fmt}
    if not isinstance(fuser, BaselineFuser):
        parameters.update(tile=tile, blend=blend, batch_size=batch_size,
                          context=fuser.context if context is None else context)
    if fmt == "cog":
        parameters["creation_options"] = options
    metadata = OutputMetadata.for_scene(scene, band_names,
                                        _provenance(scene, fuser, provenance, parameters))
    values = OutputValues(dtype, nodata, clip_bounds(clip, scene, dtype, nodata))
    writer_type = GeoTiffWriter if fmt == "cog" else ZarrWriter
    # GDAL's block cache (5 % of RAM by default) would keep every written block of the output:
    # cap it at one block row of the output on top of the small reading allowance.
    block_row_bytes = writer_type.chunk * scene.pan.shape[1] * len(band_names) * dtype.itemsize
    tiling = {"tile": tile, "context": context, "blend": blend, "batch_size": batch_size,
              "progress": progress}

    def build(path: Path) -> None:
        with gdal_cache_env(block_row_bytes):
            if fmt == "cog":
                writer = GeoTiffWriter(path, scene, dtype, nodata, band_names, metadata, options)
            else:
                writer = ZarrWriter(path, scene, dtype, nodata, band_names, metadata)
            _write_fused(scene, fuser, writer, values, **tiling)

    if fmt == "cog":
        atomic_write(out, build)
    else:
        atomic_folder(out, build)
    return out
