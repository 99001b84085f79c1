"""Whole-scene fusion with a baseline, lazily and chunk by chunk over the scene's dask arrays."""

from __future__ import annotations

from collections.abc import Callable

import dask.array as da
import xarray as xr

from crossdiff_core.baselines import get_method
from crossdiff_core.scene import Scene


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
