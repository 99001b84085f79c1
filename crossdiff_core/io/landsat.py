"""Landsat 8/9 OLI Level-1 bundles: a folder of per-band GeoTIFFs plus the ``_MTL.txt`` metadata.

Both file namings are understood: pre-collection (``LC80200392015216LGN00_B8.TIF``) and
Collection 1/2 (``LC08_L1TP_020039_20150804_20200908_02_T1_B8.TIF``). Band files are taken from the
MTL's ``FILE_NAME_BAND_<n>`` entries when present, else found by their ``_B<n>`` suffix. The
sensor comes from the MTL's ``SPACECRAFT_ID``. Level-1 DN 0 is fill, so nodata is 0.
"""

from __future__ import annotations

import re
from pathlib import Path

import xarray as xr

from crossdiff_core.io.errors import CorruptInputError, MissingBandError, UnknownSensorError
from crossdiff_core.io.geotiff import check_raster_readable, open_raster
from crossdiff_core.io.names import safe_name
from crossdiff_core.io.raw import RawPair
from crossdiff_core.io.windows import BandFiles

# OLI band numbers to canonical names (B1 coastal aerosol ... B7 SWIR-2; B8 is the PAN).
OLI_BAND_NAMES = {1: "coastal", 2: "blue", 3: "green", 4: "red", 5: "nir", 6: "swir1", 7: "swir2"}
DEFAULT_PAN_BAND = 8
DEFAULT_MS_BANDS = (2, 3, 4, 5)
SPACECRAFT_TO_SENSOR = {"LANDSAT_8": "Landsat-8", "LANDSAT_9": "Landsat-9"}


def find_mtl(folder: Path) -> Path | None:
    """The ``*_MTL.txt`` file in ``folder`` (searched recursively), or None."""
    found = sorted(folder.rglob("*_MTL.txt")) + sorted(folder.rglob("*_MTL.TXT"))
    return found[0] if found else None


def parse_mtl(path: Path) -> dict[str, str]:
    """Flat ``KEY -> value`` mapping of an MTL file (groups are ignored; quotes stripped)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise CorruptInputError(f"{path}: cannot read the MTL metadata ({error})") from error
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and key not in ("GROUP", "END_GROUP"):
            values.setdefault(key, value.strip().strip('"'))
    if "SPACECRAFT_ID" not in values:
        raise CorruptInputError(f"{path}: MTL metadata without SPACECRAFT_ID (truncated?)")
    return values


def _band_file(folder: Path, mtl: dict[str, str], band: int, label: Path) -> Path:
    listed = mtl.get(f"FILE_NAME_BAND_{band}")
    if listed:
        matches = sorted(folder.rglob(listed))
        if matches:
            return matches[0]
    pattern = re.compile(rf"_B{band}\.tiff?$", re.IGNORECASE)
    matches = sorted(p for p in folder.rglob("*") if pattern.search(p.name))
    if not matches:
        raise MissingBandError(
            f"{label}: Landsat band B{band} is missing (no {listed or f'*_B{band}.TIF'} file)"
        )
    return matches[0]


def read_landsat(folder: Path, label: Path, sensor_name: str | None = None,
                 pan_band: int = DEFAULT_PAN_BAND,
                 ms_bands: tuple[int, ...] = DEFAULT_MS_BANDS) -> RawPair:
    """A Landsat Level-1 bundle in ``folder`` as a RawPair; ``label`` names the source in errors."""
    mtl_path = find_mtl(folder)
    if mtl_path is None:
        raise MissingBandError(f"{label}: no *_MTL.txt metadata file in the Landsat bundle")
    mtl = parse_mtl(mtl_path)
    spacecraft = mtl["SPACECRAFT_ID"]
    if sensor_name is None:
        sensor_name = SPACECRAFT_TO_SENSOR.get(spacecraft)
        if sensor_name is None:
            raise UnknownSensorError(
                f"{label}: SPACECRAFT_ID {spacecraft!r} is not Landsat 8 or 9; pass --sensor"
            )
    unknown = [b for b in ms_bands if b not in OLI_BAND_NAMES]
    if unknown:
        raise MissingBandError(f"{label}: MS bands {unknown} are not OLI reflective bands 1-7")
    pan_path = _band_file(folder, mtl, pan_band, label)
    ms_paths = [_band_file(folder, mtl, band, label) for band in ms_bands]
    for path in (pan_path, *ms_paths):
        check_raster_readable(path)
    pan = open_raster(pan_path).isel(band=0, drop=True)
    ms_bands_arrays = [open_raster(path).isel(band=0, drop=True) for path in ms_paths]
    shapes = {tuple(a.shape) for a in ms_bands_arrays}
    if len(shapes) != 1:
        raise CorruptInputError(f"{label}: MS band files differ in shape {sorted(shapes)}")
    ms = xr.concat(ms_bands_arrays, dim="band", coords="minimal", compat="override",
                   join="override")
    stated = mtl.get("LANDSAT_PRODUCT_ID") or mtl.get("LANDSAT_SCENE_ID") or mtl_path.stem[:-4]
    try:
        scene_id = safe_name(stated, "Landsat scene id")  # becomes a folder name
    except ValueError as error:
        raise CorruptInputError(f"{label}: {error} (in {mtl_path.name})") from error
    acquired = mtl.get("DATE_ACQUIRED", "")
    centre_time = mtl.get("SCENE_CENTER_TIME", "")
    return RawPair(
        pan=pan,
        ms=ms,
        sensor_name=sensor_name,
        scene_id=scene_id,
        nodata=0.0,
        georeferenced=True,
        half_pixel_ok=True,
        band_names=tuple(OLI_BAND_NAMES[b] for b in ms_bands),
        files={"pan": pan_path, "ms": ms_paths[0]},
        pan_bands=BandFiles(((pan_path, 1),), squeeze=True),
        ms_bands=BandFiles(tuple((path, 1) for path in ms_paths)),
        extra_attrs={
            "acquisition_time": f"{acquired}T{centre_time}" if acquired else None,
            "landsat_bands": {"pan": pan_band, "ms": list(ms_bands)},
            "spacecraft": spacecraft,
        },
    )
