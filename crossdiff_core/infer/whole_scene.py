"""``pansharpen_scene``: a whole scene into a COG or a Zarr store, written atomically.

Models run tiled (``crossdiff_core.infer.tiling``); the classical baselines
(``crossdiff_core.baselines.METHODS``) write through the same outputs but are not tiled: their
statistics and coefficients are global, so each runs on the whole scene lazily and is computed
strip by strip (``BaselineFuser.iter_rows``), which gives the method's one-shot values whatever
the scene size.
"""

from __future__ import annotations

from pathlib import Path

import dask.array as da

from crossdiff_core.atomic import atomic_folder, atomic_write
from crossdiff_core.config import PansharpenParams
from crossdiff_core.infer.fusers import BaselineFuser
from crossdiff_core.infer.tiling import WindowFuser, check_scene_fits, iter_fused_rows
from crossdiff_core.infer.writers import (
    GeoTiffWriter,
    ZarrWriter,
    check_output,
    nodata_mask,
    to_output_dtype,
)
from crossdiff_core.io.windows import gdal_cache_env
from crossdiff_core.scene import Scene


def _write_fused(
    scene: Scene,
    fuser: WindowFuser,
    writer: GeoTiffWriter | ZarrWriter,
    nodata: float | None,
    **tiling,
) -> None:
    """Fuse ``scene`` strip by strip into ``writer`` and finish it; on any failure, abort it
    (it closes what it opened; the atomic write removes what was written)."""
    pan_data, ms_data = scene.pan.data, scene.ms.data
    if isinstance(fuser, BaselineFuser):
        rows = fuser.iter_rows(ms_data, pan_data, progress=tiling.get("progress", False))
    else:
        rows = iter_fused_rows(ms_data, pan_data, fuser, **tiling)
    try:
        for first, block in rows:
            values = to_output_dtype(block, scene.ms.dtype, nodata)
            if nodata is not None:
                pan_rows, ms_rows = da.compute(
                    pan_data[first : first + block.shape[1]],
                    ms_data[
                        :, first // fuser.ratio : (first + block.shape[1] - 1) // fuser.ratio + 1
                    ],
                )
                mask = nodata_mask(pan_rows, ms_rows, first % fuser.ratio, fuser.ratio, nodata)
                values[:, mask] = nodata
            writer.write(first, values)
        writer.finish()
    except BaseException:
        writer.abort()
        raise


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
) -> Path:
    """Pansharpen a whole scene into a COG (default) or a Zarr store on the PAN grid.

    The output has the scene's CRS and transform, band names, the MS's DN dtype and nodata value
    (pixels where the PAN or any MS band is nodata stay nodata). It is written under a hidden
    temporary name and renamed when complete; an existing ``out`` is refused unless ``overwrite``.
    The tiling (``tile``, ``context``, ``blend``, ``batch_size``; defaults: the ``pansharpen``
    section's) applies to models; a ``BaselineFuser`` runs its method on the whole scene, strip
    by strip.
    """
    out = check_output(out, fmt, overwrite)
    check_scene_fits(tuple(scene.pan.shape), tuple(scene.ms.shape), fuser, str(out))
    band_names = band_names or scene.band_names
    dtype = scene.ms.dtype
    nodata = scene.attrs.get("nodata")
    writer_type = GeoTiffWriter if fmt == "cog" else ZarrWriter
    # GDAL's block cache (5 % of RAM by default) would keep every written block of the output:
    # cap it at one block row of the output on top of the small reading allowance.
    block_row_bytes = writer_type.chunk * scene.pan.shape[1] * len(band_names) * dtype.itemsize
    tiling = {"tile": tile, "context": context, "blend": blend, "batch_size": batch_size,
              "progress": progress}

    def build(path: Path) -> None:
        with gdal_cache_env(block_row_bytes):
            writer = writer_type(path, scene, dtype, nodata, band_names)
            _write_fused(scene, fuser, writer, nodata, **tiling)

    if fmt == "cog":
        atomic_write(out, build)
    else:
        atomic_folder(out, build)
    return out
