"""The in-memory form of one ingested scene, shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr

from crossdiff_core.sensors import Sensor, get_sensor


@dataclass
class Scene:
    """A PAN/MS pair whose grids nest exactly (PAN shape = ratio x MS shape, same origin).

    ``pan``: DataArray dims (y, x), native DN dtype, usually dask-backed.
    ``ms``: DataArray dims (band, y, x) on the MS grid; ``band`` holds canonical band names.
    ``attrs``: the store's root attributes (sensor, ratio, bit_depth, scale_max, scene_id,
    source, ...).
    """

    pan: xr.DataArray
    ms: xr.DataArray
    attrs: dict

    @property
    def sensor(self) -> Sensor:
        return get_sensor(self.attrs["sensor"], ratio=int(self.attrs["ratio"]),
                          n_bands=int(self.ms.sizes["band"]))

    @property
    def ratio(self) -> int:
        return int(self.attrs["ratio"])

    @property
    def scene_id(self) -> str:
        return str(self.attrs["scene_id"])

    @property
    def scale_max(self) -> float:
        """The DN value that maps to 1.0 under the ``bit_depth`` normalisation (``scaling``)."""
        return float(self.attrs["scale_max"])

    @property
    def band_names(self) -> list[str]:
        return [str(b) for b in self.ms["band"].values]
