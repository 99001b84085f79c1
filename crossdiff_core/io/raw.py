"""What every reader returns: a lazy, not yet aligned PAN/MS pair plus what the source says."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from crossdiff_core.io.windows import BandFiles
from crossdiff_core.sensors import _LOOKUP


@dataclass
class RawPair:
    """``pan`` (y, x) and ``ms`` (band, y, x), lazy; rioxarray CRS/transform when georeferenced.

    ``sensor_name`` is None when the source does not say; ``ratio`` and ``bit_depth`` are set when
    the source states them (.mat files); ``half_pixel_ok`` marks sources whose PAN grid is known
    to sit half a PAN pixel off the MS grid (Landsat); ``files`` names the files read, for errors.
    ``pan_bands``/``ms_bands`` say which GeoTIFF bands hold ``pan``/``ms`` (unaligned, in order),
    when they come from GeoTIFFs: ingestion then reads chunks straight from the files.
    """

    pan: xr.DataArray
    ms: xr.DataArray
    sensor_name: str | None
    scene_id: str
    nodata: float | None = None
    georeferenced: bool = True
    ratio: int | None = None
    bit_depth: int | None = None
    half_pixel_ok: bool = False
    band_names: tuple[str, ...] | None = None
    files: dict[str, Path] = field(default_factory=dict)
    extra_attrs: dict = field(default_factory=dict)
    pan_bands: BandFiles | None = None
    ms_bands: BandFiles | None = None


def detect_sensor_from_text(text: str) -> str | None:
    """A registered sensor named in ``text`` (file names, metadata), if exactly one is."""
    tokens = {token for token in re.split(r"[^a-z0-9-]+", text.lower()) if token}
    tokens |= {token.replace("-", "") for token in tokens}
    found = {_LOOKUP[token] for token in tokens if token in _LOOKUP and len(token) > 1}
    return found.pop() if len(found) == 1 else None
