"""Lazy GeoTIFF reading through rioxarray, and the PAN + MS GeoTIFF pair reader.

Rasters are opened without reading pixels; dask chunks are made later (after alignment crops) so
they line up with the store's chunks. ``lock=False`` gives each thread its own file handle, so
chunks are read in parallel.

Every reader here also takes a remote file (``https://``, ``s3://``... as a string, see
``crossdiff_core.io.remote``): GDAL then reads only the blocks asked for.
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
from crossdiff_core.io.remote import gdal_path, is_remote, remote_env, remote_name
from crossdiff_core.io.windows import BandFiles

RASTER_SUFFIXES = (".tif", ".tiff")
RasterPath = str | Path  # a local path, or a remote file as a string


def _as_source(path: RasterPath) -> RasterPath:
    """A remote file stays a string (``Path`` would break ``https://``), a local one a Path."""
    return path if is_remote(path) else Path(path)


def gdal_name(path: RasterPath) -> str | Path:
    """What rasterio opens for ``path`` (``/vsicurl/...`` for a URL)."""
    return gdal_path(path) if is_remote(path) else Path(path)


def file_name(path: RasterPath) -> str:
    """The file name of a local path or a URL."""
    return remote_name(path) if is_remote(path) else Path(path).name


def open_raster(path: RasterPath) -> xr.DataArray:
    """Open a GeoTIFF lazily as (band, y, x) with its CRS/transform; attrs and encoding cleared.

    The nodata value, if any, is kept in ``.attrs["nodata"]``.
    """
    path = _as_source(path)
    if not is_remote(path) and not path.is_file():
        raise MissingBandError(f"{path}: raster file not found")
    try:
        with remote_env(is_remote(path)):
            raster = rioxarray.open_rasterio(gdal_name(path), lock=False, masked=False,
                                             mask_and_scale=False, cache=False)
    except (RasterioError, OSError) as error:
        raise CorruptInputError(f"{path}: not a readable GeoTIFF ({error})") from error
    nodata = raster.rio.nodata
    raster.attrs = {}
    raster.encoding = {}
    raster.attrs["nodata"] = None if nodata is None else float(nodata)
    return raster


def check_raster_readable(path: RasterPath) -> None:
    """Read the last block of every band so truncated files fail now with a clear message."""
    try:
        with remote_env(is_remote(path)), rasterio.open(gdal_name(path)) as dataset:
            window = next(iter(reversed(list(dataset.block_windows(1)))))[1]
            dataset.read(window=window)
    except (RasterioError, OSError, StopIteration) as error:
        raise CorruptInputError(f"{path}: corrupt or truncated GeoTIFF ({error})") from error


def _pixel_area(path: RasterPath) -> float:
    with remote_env(is_remote(path)), rasterio.open(gdal_name(path)) as dataset:
        return abs(dataset.transform.a * dataset.transform.e)


def _band_count(path: RasterPath) -> int:
    try:
        with remote_env(is_remote(path)), rasterio.open(gdal_name(path)) as dataset:
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


def read_pair(pan_path: RasterPath, ms_path: RasterPath, label: Path, scene_id: str,
              sensor_name: str | None, sensor_hint: str = "",
              extra_attrs: dict | None = None) -> RawPair:
    """A PAN GeoTIFF and an MS GeoTIFF (local paths or remote files) as a RawPair (lazy). The
    sensor is taken from ``sensor_name``, else from GDAL metadata, ``sensor_hint`` (e.g. a STAC
    Item's platform) or file names, else left unknown.

    The pair may have Landsat's geometry (ratio 2, MS origin half a PAN pixel off the PAN
    origin): ``crossdiff_core.io.align`` aligns it by the Landsat rule."""
    pan_path, ms_path = _as_source(pan_path), _as_source(ms_path)
    for path in (pan_path, ms_path):
        check_raster_readable(path)
    pan = open_raster(pan_path)
    ms = open_raster(ms_path)
    if pan.sizes["band"] != 1:
        raise MissingBandError(f"{pan_path}: PAN raster has {pan.sizes['band']} bands, expected 1")
    nodata = pan.attrs["nodata"] if pan.attrs["nodata"] is not None else ms.attrs["nodata"]
    if sensor_name is None:
        with remote_env(is_remote(pan_path)), rasterio.open(gdal_name(pan_path)) as dataset:
            tags = " ".join(str(v) for v in dataset.tags().values())
        sensor_name = detect_sensor_from_text(
            f"{tags} {sensor_hint} {label.name} {file_name(pan_path)} {file_name(ms_path)}")
    return RawPair(
        pan=pan.isel(band=0, drop=True),
        ms=ms.drop_vars("band"),
        sensor_name=sensor_name,
        scene_id=scene_id,
        nodata=nodata,
        georeferenced=True,
        files={"pan": pan_path, "ms": ms_path},
        pan_bands=BandFiles(((gdal_name(pan_path), 1),), squeeze=True),
        ms_bands=BandFiles(tuple((gdal_name(ms_path), band)
                                 for band in range(1, ms.sizes["band"] + 1))),
        extra_attrs=dict(extra_attrs or {}),
    )
