"""Arrays on a georeferenced grid: pixel-centre coordinates plus rioxarray CRS/transform."""

from __future__ import annotations

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine


def attach_grid(array: xr.DataArray, transform: Affine, crs) -> xr.DataArray:
    """Give ``array`` (..., y, x) pixel-centre ``x``/``y`` coordinates and a CRS/transform."""
    n_y, n_x = array.sizes["y"], array.sizes["x"]
    x = transform.c + transform.a * (np.arange(n_x) + 0.5)
    y = transform.f + transform.e * (np.arange(n_y) + 0.5)
    array = array.assign_coords(x=("x", x), y=("y", y))
    array = array.rio.write_crs(crs)
    return array.rio.write_transform(transform)


def scaled_transform(transform: Affine, factor: float) -> Affine:
    """The transform of a grid with the same origin and pixels ``factor`` times larger."""
    return Affine(transform.a * factor, transform.b * factor, transform.c,
                  transform.d * factor, transform.e * factor, transform.f)
