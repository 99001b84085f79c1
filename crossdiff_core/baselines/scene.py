"""Whole-scene fusion with a baseline, lazily and chunk by chunk over the scene's dask arrays."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dask.array as da
import numpy as np
import xarray as xr

from crossdiff_core.baselines import get_method
from crossdiff_core.baselines._arrays import iter_block_rows
from crossdiff_core.scene import Scene

STRIP_ROWS = 128  # PAN rows computed at a time by ``iter_fused_rows`` (a multiple of the ratio)


def fuse_scene(scene: Scene, method: str | Callable) -> xr.DataArray:
    """Fused image of a whole scene: a lazy DataArray (band, y, x) on the PAN grid, float64 DN.

    Global statistics are computed once over the scene (a few passes over the data); the fusion
    itself runs chunk by chunk when the result is computed or written.
    """
    fuse = get_method(method) if isinstance(method, str) else method
    ms, pan = scene.ms.data, scene.pan.data
    if not isinstance(ms, da.Array):
        ms, pan = da.from_array(ms), da.from_array(pan)
    fused = fuse(ms, pan, scene.ratio, scene.sensor)
    coords = {name: coord for name, coord in scene.pan.coords.items()}
    coords["band"] = scene.ms["band"]
    name = method if isinstance(method, str) else getattr(method, "__name__", "fused")
    return xr.DataArray(fused, dims=("band", "y", "x"), coords=coords, name="fused",
                        attrs={"method": name, "sensor": scene.sensor.name, "units": "DN"})


def iter_fused_rows(
    method: Callable,
    ms: da.Array | np.ndarray,
    pan: da.Array | np.ndarray,
    ratio: int,
    sensor,
    strip_rows: int = STRIP_ROWS,
) -> Iterator[tuple[int, np.ndarray]]:
    """The whole-scene fusion ``method(ms, pan, ratio, sensor)``, yielded top to bottom as
    (first PAN row, rows (B, n, W) float64): the same values as one call on the whole scene in
    memory (global statistics over all of it, the method's own borders at the scene's edges).

    The method runs lazily on the scene's dask arrays rechunked to strips of ``strip_rows`` PAN
    rows (fewer where the scene's own chunks are shorter) by its chunk width (its global
    statistics are computed first, over the whole scene); see ``iter_row_blocks`` for how the
    strips are computed with bounded memory.
    """
    yield from iter_row_blocks(fused_strips(method, ms, pan, ratio, sensor, strip_rows))


def fused_strips(
    method: Callable,
    ms: da.Array | np.ndarray,
    pan: da.Array | np.ndarray,
    ratio: int,
    sensor,
    strip_rows: int = STRIP_ROWS,
) -> da.Array:
    """The lazy (B, H, W) float64 fusion ``iter_fused_rows`` computes, in strips of
    ``strip_rows`` PAN rows (global statistics already computed, on the current dask scheduler).
    Computing its chunks anywhere (e.g. on a dask.distributed cluster,
    ``crossdiff_core.infer.distributed``) gives the values ``iter_fused_rows`` yields."""
    ms, pan = da.asarray(ms), da.asarray(pan)
    rows = max(ratio, min(strip_rows, pan.chunksize[0]) // ratio * ratio)
    columns = pan.chunksize[1]
    ms = ms.rechunk((-1, rows // ratio, max(1, columns // ratio)))
    pan = pan.rechunk((rows, max(ratio, columns // ratio * ratio)))
    return method(ms, pan, ratio, sensor)


def iter_row_blocks(array: da.Array) -> Iterator[tuple[int, np.ndarray]]:
    """Compute a lazy (B, H, W) array one chunk row at a time, top to bottom; yield (first row,
    rows (B, n, W)).

    Every task runs once: results that a later chunk row still needs (the upstream chunks its
    overlaps reach into) are kept until that row is done, and nothing else is. Memory therefore
    holds one chunk row of the pipeline plus those carried chunks, whatever the scene height,
    where dask's own scheduling of the whole graph may hold far more on wide scenes.
    """
    if array.ndim != 3:
        raise ValueError(f"expected a (band, y, x) array, got shape {array.shape}")
    if array.numblocks[0] != 1:
        array = array.rechunk({0: -1})
    first = 0
    for blocks in iter_block_rows(array, 1):
        rows = np.concatenate(blocks, axis=-1)
        yield first, rows
        first += rows.shape[-2]
