"""Lazy GeoTIFF reading through rioxarray, and the PAN + MS GeoTIFF pair reader.

Rasters are opened without reading pixels; dask chunks are made later (after alignment crops) so
they line up with the store's chunks. ``lock=False`` gives each thread its own file handle, so
chunks are read in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import rasterio
import rioxarray
import xarray as xr
from rasterio.errors import RasterioError

from crossdiff_core.io.errors import CorruptInputError, MissingBandError, UnknownFormatError
from crossdiff_core.io.raw import RawPair, detect_sensor_from_text
from crossdiff_core.io.windows import BandFiles

RASTER_SUFFIXES = (".tif", ".tiff")


def open_raster(path: str | Path) -> xr.DataArray:
    """Open a GeoTIFF lazily as (band, y, x) with its CRS/transform; attrs and encoding cleared.

    The nodata value, if any, is kept in ``.attrs["nodata"]``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingBandError(f"{path}: raster file not found")
    try:
        raster = rioxarray.open_rasterio(path, lock=False, masked=False, mask_and_scale=False,
                                         cache=False)
    except (RasterioError, OSError) as error:
        raise CorruptInputError(f"{path}: not a readable GeoTIFF ({error})") from error
    nodata = raster.rio.nodata
    raster.attrs = {}
    raster.encoding = {}
    raster.attrs["nodata"] = None if nodata is None else float(nodata)
    return raster


def check_raster_readable(path: Path) -> None:
    """Read the last block of every band so truncated files fail now with a clear message."""
    try:
        with rasterio.open(path) as dataset:
            window = next(iter(reversed(list(dataset.block_windows(1)))))[1]
            dataset.read(window=window)
    except (RasterioError, OSError, StopIteration) as error:
        raise CorruptInputError(f"{path}: corrupt or truncated GeoTIFF ({error})") from error


def _pixel_area(path: Path) -> float:
    with rasterio.open(path) as dataset:
        return abs(dataset.transform.a * dataset.transform.e)


def _band_count(path: Path) -> int:
    try:
        with rasterio.open(path) as dataset:
            return dataset.count
    except (RasterioError, OSError) as error:
        raise CorruptInputError(f"{path}: not a readable GeoTIFF ({error})") from error


@dataclass
class PairFiles:
    pan: Path
    ms: Path


def find_pair(folder: Path, label: Path) -> PairFiles:
    """Pick the PAN and MS GeoTIFFs in ``folder``: PAN has one band, MS several.

    With more than one candidate of a kind, a name containing ``pan`` (PAN) or ``mul``/``ms``
    (MS) decides; anything still ambiguous is refused. ``label`` names the source in errors.
    """
    rasters = sorted(p for p in folder.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES)
    if not rasters:
        raise UnknownFormatError(f"{label}: no GeoTIFF found (expected a PAN and an MS raster)")
    single = [p for p in rasters if _band_count(p) == 1]
    multi = [p for p in rasters if p not in single]

    def pick(candidates: list[Path], hints: tuple[str, ...], kind: str) -> Path:
        if len(candidates) > 1:
            named = [p for p in candidates if any(h in p.stem.lower() for h in hints)]
            candidates = named
        if len(candidates) != 1:
            found = ", ".join(p.name for p in rasters)
            raise MissingBandError(
                f"{label}: cannot tell which raster is the {kind} (found: {found}); pass the PAN "
                "and MS paths explicitly"
            )
        return candidates[0]

    if not multi:
        raise MissingBandError(f"{label}: no multi-band MS GeoTIFF found")
    if not single:
        raise MissingBandError(f"{label}: no single-band PAN GeoTIFF found")
    pan = pick(single, ("pan",), "PAN")
    ms = pick(multi, ("mul", "ms"), "MS")
    if _pixel_area(pan) >= _pixel_area(ms):
        raise MissingBandError(
            f"{label}: the single-band raster {pan.name} is not finer than {ms.name}; "
            "is it really the PAN?"
        )
    return PairFiles(pan=pan, ms=ms)


def read_pair(pan_path: Path, ms_path: Path, label: Path, scene_id: str,
              sensor_name: str | None) -> RawPair:
    """A PAN GeoTIFF and an MS GeoTIFF as a RawPair (lazy). The sensor is taken from
    ``sensor_name``, else from GDAL metadata or file names, else left unknown."""
    for path in (pan_path, ms_path):
        check_raster_readable(path)
    pan = open_raster(pan_path)
    ms = open_raster(ms_path)
    if pan.sizes["band"] != 1:
        raise MissingBandError(f"{pan_path}: PAN raster has {pan.sizes['band']} bands, expected 1")
    nodata = pan.attrs["nodata"] if pan.attrs["nodata"] is not None else ms.attrs["nodata"]
    if sensor_name is None:
        with rasterio.open(pan_path) as dataset:
            tags = " ".join(str(v) for v in dataset.tags().values())
        sensor_name = detect_sensor_from_text(f"{tags} {label.name} {pan_path.name} {ms_path.name}")
    return RawPair(
        pan=pan.isel(band=0, drop=True),
        ms=ms.drop_vars("band"),
        sensor_name=sensor_name,
        scene_id=scene_id,
        nodata=nodata,
        georeferenced=True,
        files={"pan": pan_path, "ms": ms_path},
        pan_bands=BandFiles(((pan_path, 1),), squeeze=True),
        ms_bands=BandFiles(tuple((ms_path, band) for band in range(1, ms.sizes["band"] + 1))),
    )
