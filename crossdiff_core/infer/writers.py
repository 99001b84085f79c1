"""Where fused rows go: a Cloud-Optimized GeoTIFF or a Zarr store on the PAN grid, written in
whole blocks of rows, with what a GIS needs to read it without asking.

Every output carries:

- the scene's CRS and transform, band names (GeoTIFF band descriptions, Zarr ``band``
  coordinate) in the sensor's band order, and each band's nominal centre wavelength and width in
  micrometres (GeoTIFF band metadata ``wavelength``, ``fwhm``, ``wavelength_units`` and GDAL's
  ``IMAGERY`` items ``CENTRAL_WAVELENGTH_UM``, ``FWHM_UM``; Zarr coordinates ``wavelength`` and
  ``fwhm``) where ``crossdiff_core.sensors`` documents them;
- colour interpretation: the sensor's band order is kept, the red, green and blue bands are
  marked red, green and blue (so a GIS shows true colour) and every other band undefined;
- nodata: the inputs' nodata value, set where the PAN or any MS band under the pixel is nodata
  (the GeoTIFF's mask is that value; a valid pixel that would equal it is moved by one step);
- the provenance record (``crossdiff_core.infer.provenance``) with the clip count;
- GeoTIFF only: tiles, DEFLATE, the predictor for the dtype (2, horizontal differencing, for
  integers; 3, floating point, for floats) and overviews (average), all overridable with GDAL
  COG creation options.

The values are clipped by a policy (``CLIP_POLICIES``): ``dtype`` (default) to the valid range
of the output dtype, ``input`` to each band's min/max over the input MS (nodata excluded),
``none`` not at all (integer inputs are then written as float32, so nothing is lost).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor the writers use)
import xarray as xr

from crossdiff_core.config import CLIP_POLICIES
from crossdiff_core.infer.provenance import ZARR_ATTR, to_tags
from crossdiff_core.scene import Scene

FORMATS = ("cog", "zarr")
SUFFIX_FORMATS = {".tif": "cog", ".tiff": "cog", ".zarr": "zarr"}
TRUE_COLOUR = ("red", "green", "blue")
# COG creation options taking an integer: GDAL aborts the whole process on some malformed ones
# (BLOCKSIZE=abc), so they are checked here first.
_INT_OPTIONS = frozenset({"BLOCKSIZE", "LEVEL", "QUALITY", "OVERVIEW_COUNT", "OVERVIEW_QUALITY",
                          "NBITS", "ZOOM_LEVEL", "JXL_EFFORT", "OVERVIEW_LEVEL"})


def output_format(out: str | Path, fmt: str | None = None) -> str:
    """``fmt`` when given, else the format the extension of ``out`` names (``.tif``/``.tiff``:
    COG, ``.zarr``: Zarr); an unknown extension is refused."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}: use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(str(out)).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise ValueError(
            f"{out}: cannot tell the output format from the extension "
            f"{suffix or '(none)'}: name it .tif or .tiff (Cloud-Optimized GeoTIFF) or .zarr "
            "(Zarr store), or give --format cog|zarr")
    return SUFFIX_FORMATS[suffix]


def check_output(out: str | Path, fmt: str, overwrite: bool) -> Path:
    """Validate the output path and format before any work is done."""
    out = Path(out)
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}: use one of {', '.join(FORMATS)}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: choose another path or pass --overwrite")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"the folder of {out} does not exist: create {out.parent} first")
    return out


# ---------------------------------------------------------------- COG creation options

def cog_creation_options(dtype: np.dtype, overrides: dict[str, str] | None = None
                         ) -> dict[str, str]:
    """GDAL COG driver options: DEFLATE, the predictor for ``dtype`` (2 = STANDARD for
    integers, 3 = FLOATING_POINT for floats), 512-pixel tiles, average overviews, BigTIFF when
    needed; ``overrides`` (keys any case) replace or add to them."""
    integer = np.issubdtype(np.dtype(dtype), np.integer)
    options = {
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "STANDARD" if integer else "FLOATING_POINT",
        "BLOCKSIZE": "512",
        "OVERVIEW_RESAMPLING": "AVERAGE",
        "BIGTIFF": "IF_SAFER",
    }
    options.update({str(k).upper(): str(v) for k, v in (overrides or {}).items()})
    return options


class _GdalComplaints(logging.Handler):
    """Collects what GDAL says (through rasterio's logger) while a block runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def check_creation_options(options: dict[str, str], dtype: np.dtype, bands: int) -> None:
    """Refuse COG creation options GDAL would ignore or choke on, before any work is done: a
    tiny image is written with them in memory and every complaint becomes a ValueError naming
    the option."""
    import rasterio
    from rasterio.shutil import copy as raster_copy
    from rasterio.shutil import delete

    for key, value in options.items():
        if key in _INT_OPTIONS and not str(value).lstrip("-").isdigit():
            raise ValueError(f"--co {key}={value}: {key} takes an integer")
        if key == "NUM_THREADS" and not (str(value).isdigit() or value.upper() == "ALL_CPUS"):
            raise ValueError(f"--co {key}={value}: NUM_THREADS takes an integer or ALL_CPUS")
    source, target = "/vsimem/crossdiff-co-check.tif", "/vsimem/crossdiff-co-check-cog.tif"
    complaints = _GdalComplaints()
    gdal_logger = logging.getLogger("rasterio._env")
    level = gdal_logger.level
    gdal_logger.addHandler(complaints)
    gdal_logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(source, "w", driver="GTiff", width=64, height=64, count=bands,
                               dtype=np.dtype(dtype).name) as dataset:
                dataset.write(np.ones((bands, 64, 64), dtype))
            raster_copy(source, target, driver="COG", **options)
    except rasterio.errors.RasterioError as error:
        raise ValueError(f"--co: GDAL's COG driver refused {_listed(options)}: "
                         f"{' '.join(str(error).split())}") from None
    finally:
        gdal_logger.removeHandler(complaints)
        gdal_logger.setLevel(level)
        for path in (source, target):
            try:
                delete(path)
            except Exception:  # noqa: BLE001  (not written: nothing to remove)
                pass
    relevant = [m for m in complaints.messages if "option" in m.lower() or "value" in m.lower()]
    if relevant:
        raise ValueError(f"--co: GDAL's COG driver refused {_listed(options)}: "
                         f"{'; '.join(' '.join(m.split()) for m in relevant)}")


def _listed(options: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in options.items())


# ---------------------------------------------------------------- values: dtype, clip, nodata

def output_dtype(dtype: np.dtype, clip: str = "dtype") -> np.dtype:
    """The output's dtype: the MS's, or float32 for integer MS under ``clip="none"``."""
    dtype = np.dtype(dtype)
    if clip not in CLIP_POLICIES:
        raise ValueError(f"unknown clip policy {clip!r}: use one of {', '.join(CLIP_POLICIES)}")
    if clip == "none" and np.issubdtype(dtype, np.integer):
        return np.dtype("float32")
    return dtype


def dtype_range(dtype: np.dtype, nodata: float | None) -> tuple[float, float]:
    """Valid values of ``dtype``: an integer dtype's range less a nodata value at either end,
    a float dtype's finite range."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low = info.min + 1 if nodata is not None and nodata == info.min else info.min
        high = info.max - 1 if nodata is not None and nodata == info.max else info.max
        return float(low), float(high)
    info = np.finfo(dtype)
    return float(info.min), float(info.max)


def clip_bounds(clip: str, scene: Scene, dtype: np.dtype, nodata: float | None
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-band (low, high) of the ``clip`` policy, or None for ``none``. ``input`` reads the MS
    once (it is ratio^2 times smaller than the output) for each band's min and max."""
    if clip not in CLIP_POLICIES:
        raise ValueError(f"unknown clip policy {clip!r}: use one of {', '.join(CLIP_POLICIES)}")
    if clip == "none":
        return None
    bands = int(scene.ms.sizes["band"])
    low, high = dtype_range(dtype, nodata)
    lows, highs = np.full(bands, low), np.full(bands, high)
    if clip == "input":
        ms = scene.ms.data.astype(np.float64)
        if nodata is not None:
            ms = da.where(ms == nodata, np.nan, ms)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-nodata band: NaN, kept wide
            mins, maxs = da.compute(da.nanmin(ms, axis=(1, 2)), da.nanmax(ms, axis=(1, 2)))
        lows = np.where(np.isnan(mins), lows, np.maximum(lows, mins))
        highs = np.where(np.isnan(maxs), highs, np.minimum(highs, maxs))
    return lows, highs


class OutputValues:
    """Fused rows (float) into output values: rounded for an integer dtype, clipped to per-band
    ``bounds`` (counting the pixels clipped, nodata pixels excluded), valid pixels kept off the
    nodata value and ``hole`` pixels set to it."""

    def __init__(self, dtype: np.dtype, nodata: float | None,
                 bounds: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.dtype = np.dtype(dtype)
        self.integer = np.issubdtype(self.dtype, np.integer)
        self.nodata = nodata
        self.bounds = bounds
        self.clipped_pixels = 0
        self.clipped_per_band: np.ndarray | None = None

    def convert(self, fused: np.ndarray, hole: np.ndarray | None = None) -> np.ndarray:
        """``fused`` (B, n, W) -> values (B, n, W) of ``dtype``; ``hole`` (n, W): nodata."""
        values = np.rint(fused) if self.integer else fused.astype(
            np.result_type(fused.dtype, self.dtype), copy=True)
        if self.bounds is not None:
            low = np.asarray(self.bounds[0], np.float64).reshape(-1, 1, 1)
            high = np.asarray(self.bounds[1], np.float64).reshape(-1, 1, 1)
            outside = (values < low) | (values > high)
            if hole is not None:
                outside &= ~hole
            per_band = outside.sum(axis=(1, 2))
            self.clipped_per_band = (per_band if self.clipped_per_band is None
                                     else self.clipped_per_band + per_band)
            self.clipped_pixels += int(outside.any(axis=0).sum())
            np.clip(values, low, high, out=values, casting="same_kind")
        out = values.astype(self.dtype)
        if self.nodata is not None and not np.isnan(self.nodata):
            taken = out == self.nodata
            if taken.any():  # a valid pixel would read as nodata: one step away from it
                out[taken] = self._beside_nodata()
        if hole is not None and self.nodata is not None:
            out[:, hole] = self.nodata
        return out

    def _beside_nodata(self):
        nodata = self.dtype.type(self.nodata)
        if self.integer:
            info = np.iinfo(self.dtype)
            return nodata + 1 if nodata < info.max else nodata - 1
        return np.nextafter(nodata, self.dtype.type(np.inf))

    def summary(self) -> dict[str, Any]:
        per_band = self.clipped_per_band
        return {"clipped_pixels": int(self.clipped_pixels),
                "clipped_per_band": None if per_band is None else [int(c) for c in per_band]}


def nodata_mask(
    pan_rows: np.ndarray, ms_rows: np.ndarray, offset: int, ratio: int, nodata: float
) -> np.ndarray:
    """True where the PAN pixel or any band of the MS pixel under it is nodata: (n, W).

    ``ms_rows`` (B, m, w) are the MS rows under ``pan_rows`` (n, W), whose first row is
    ``offset`` PAN rows into the first MS row.
    """
    ms_hole = np.any(ms_rows == nodata, axis=0)
    ms_hole = np.repeat(np.repeat(ms_hole, ratio, axis=0), ratio, axis=1)
    return (pan_rows == nodata) | ms_hole[offset : offset + pan_rows.shape[0]]


def to_output_dtype(fused: np.ndarray, dtype: np.dtype, nodata: float | None,
                    bounds: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Round and clip to an integer DN dtype (keeping valid pixels off the nodata value); a
    float dtype is clipped only to ``bounds`` when given."""
    dtype = np.dtype(dtype)
    if bounds is None and np.issubdtype(dtype, np.integer):
        low, high = dtype_range(dtype, nodata)
        bounds = (np.full(fused.shape[0], low), np.full(fused.shape[0], high))
    return OutputValues(dtype, nodata, bounds).convert(fused)


# ---------------------------------------------------------------- band metadata

@dataclass
class OutputMetadata:
    """What each output says besides its pixels: per band (sensor order) name, centre
    wavelength and width (micrometres, None where undocumented), colour interpretation
    (``red``/``green``/``blue``/``undefined``), and the provenance record."""

    band_names: list[str]
    wavelengths: list[float | None]
    fwhms: list[float | None]
    colours: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_scene(cls, scene: Scene, band_names: list[str],
                  provenance: dict[str, Any] | None = None) -> OutputMetadata:
        try:
            sensor = scene.sensor
        except (KeyError, ValueError):  # a store without a known sensor: names only
            sensor = None
        waves = [sensor.wavelength_um(b) if sensor else None for b in band_names]
        widths = [sensor.fwhm_um(b) if sensor else None for b in band_names]
        colours = [b if b in TRUE_COLOUR else "undefined" for b in band_names]
        return cls(list(band_names), waves, widths, colours, dict(provenance or {}))


class _BlockRows:
    """Collects rows arriving top to bottom and passes them to ``write_rows(first, rows)``
    ``chunk`` rows at a time (the rest on ``flush``).

    Both outputs are stored in blocks of ``chunk`` rows; writing whole block rows means each block
    is compressed and written once, instead of being re-read, rewritten and kept in a cache while
    the next strip completes it (and Zarr region writes must cover whole chunks).
    """

    def __init__(self, chunk: int, write_rows: Callable[[int, np.ndarray], None]) -> None:
        self.chunk, self.write_rows = chunk, write_rows
        self.pending: list[np.ndarray] = []
        self.first = 0  # scene row of the first pending row
        self.count = 0  # pending rows

    def add(self, first: int, block: np.ndarray) -> None:
        if first != self.first + self.count:
            raise RuntimeError("rows must arrive in order")  # a tiling bug, never user input
        self.pending.append(block)
        self.count += block.shape[1]
        whole = (self.count // self.chunk) * self.chunk
        if whole:
            self._pass_on(whole)

    def flush(self) -> None:
        if self.count:
            self._pass_on(self.count)

    def _pass_on(self, rows: int) -> None:
        stacked = np.concatenate(self.pending, axis=1) if len(self.pending) > 1 else self.pending[0]
        self.write_rows(self.first, stacked[:, :rows])
        self.pending = [stacked[:, rows:]]
        self.first += rows
        self.count -= rows


def _metadata(scene: Scene, band_names: list[str], metadata: OutputMetadata | None
              ) -> OutputMetadata:
    return metadata if metadata is not None else OutputMetadata.for_scene(scene, band_names)


class GeoTiffWriter:
    """Rows into a tiled GeoTIFF beside ``path``; ``finish`` turns it into a COG at ``path``
    with ``creation_options`` (default: ``cog_creation_options(dtype)``). ``provenance`` (the
    metadata's record, completed by the caller before ``finish``) becomes dataset metadata."""

    chunk = 256

    def __init__(
        self,
        path: Path,
        scene: Scene,
        dtype: np.dtype,
        nodata: float | None,
        band_names: list[str],
        metadata: OutputMetadata | None = None,
        creation_options: dict[str, str] | None = None,
    ) -> None:
        import rasterio
        from rasterio.enums import ColorInterp

        self.path = path
        self.scratch = path.with_name(path.name + ".strips.tif")
        self.options = creation_options or cog_creation_options(dtype)
        self.metadata = _metadata(scene, band_names, metadata)
        self.provenance = self.metadata.provenance
        height, width = scene.pan.shape
        profile = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "count": len(band_names),
            "dtype": np.dtype(dtype).name,
            "tiled": True,
            "blockxsize": self.chunk,
            "blockysize": self.chunk,
            "compress": "deflate",
            "BIGTIFF": "IF_SAFER",
        }
        if nodata is not None:
            profile["nodata"] = nodata
        if scene.pan.rio.crs is not None:
            profile["crs"] = scene.pan.rio.crs
            profile["transform"] = scene.pan.rio.transform()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            self.dataset = rasterio.open(self.scratch, "w", **profile)
        meta = self.metadata
        for index, name in enumerate(band_names, start=1):
            self.dataset.set_band_description(index, name)
            wave, width_um = meta.wavelengths[index - 1], meta.fwhms[index - 1]
            if wave is not None:
                self.dataset.update_tags(index, wavelength=f"{wave:g}",
                                         wavelength_units="micrometers",
                                         fwhm=f"{width_um:g}")
                self.dataset.update_tags(index, ns="IMAGERY",
                                         CENTRAL_WAVELENGTH_UM=f"{wave:g}",
                                         FWHM_UM=f"{width_um:g}")
        self.dataset.colorinterp = [ColorInterp[c] for c in meta.colours]
        self.rows = _BlockRows(self.chunk, self._write_rows)

    def write(self, first: int, block: np.ndarray) -> None:
        self.rows.add(first, block)

    def _write_rows(self, first: int, rows: np.ndarray) -> None:
        from rasterio.windows import Window

        self.dataset.write(rows, window=Window(0, first, rows.shape[2], rows.shape[1]))

    def finish(self) -> None:
        import rasterio
        from rasterio.shutil import copy as raster_copy

        from crossdiff_core import __version__

        self.rows.flush()
        self.dataset.update_tags(TIFFTAG_SOFTWARE=f"crossdiff {__version__}",
                                 **to_tags(self.provenance))
        self.dataset.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            raster_copy(self.scratch, self.path, driver="COG", **self.options)
        self.scratch.unlink()

    def abort(self) -> None:
        self.dataset.close()
        self.scratch.unlink(missing_ok=True)


class ZarrWriter:
    """Rows into a Zarr store (variable ``fused`` (band, y, x) on the PAN grid) at ``path``;
    band coordinates ``wavelength``/``fwhm`` (micrometres), attributes ``rgb_bands`` and
    ``provenance`` (completed by the caller before ``finish``)."""

    chunk = 512

    def __init__(
        self,
        path: Path,
        scene: Scene,
        dtype: np.dtype,
        nodata: float | None,
        band_names: list[str],
        metadata: OutputMetadata | None = None,
    ) -> None:
        self.path = path
        self.metadata = _metadata(scene, band_names, metadata)
        self.provenance = self.metadata.provenance
        height, width = scene.pan.shape
        coords: dict[str, Any] = {"band": band_names, "y": scene.pan["y"].values,
                                  "x": scene.pan["x"].values}
        meta = self.metadata
        if any(w is not None for w in meta.wavelengths):
            nan = float("nan")
            coords["wavelength"] = ("band", [nan if w is None else w for w in meta.wavelengths],
                                    {"units": "micrometers", "long_name": "centre wavelength"})
            coords["fwhm"] = ("band", [nan if w is None else w for w in meta.fwhms],
                              {"units": "micrometers", "long_name": "band width"})
        template = xr.DataArray(
            da.zeros(
                (len(band_names), height, width),
                dtype=dtype,
                chunks=(len(band_names), self.chunk, self.chunk),
            ),
            dims=("band", "y", "x"),
            coords=coords,
            name="fused",
        )
        if scene.pan.rio.crs is not None:
            template = template.rio.write_crs(scene.pan.rio.crs).rio.write_transform(
                scene.pan.rio.transform()
            )
        if nodata is not None:
            template.attrs["_FillValue"] = nodata
        template.attrs.update(
            {"sensor": scene.attrs.get("sensor"), "source_scene": scene.attrs.get("scene_id"),
             "rgb_bands": [b for b in TRUE_COLOUR if b in band_names]}
        )
        self.template = template
        template.to_dataset().to_zarr(path, compute=False, mode="w", consolidated=True)
        self.rows = _BlockRows(self.chunk, self._write_rows)

    def write(self, first: int, block: np.ndarray) -> None:
        self.rows.add(first, block)

    def _write_rows(self, first: int, rows: np.ndarray) -> None:
        # Whole chunk rows (the last one may be short), as region writes require.
        region = slice(first, first + rows.shape[1])
        piece = self.template.isel(y=region).copy(data=rows)
        piece.attrs = {}  # written with the template; _FillValue again would clash with encoding
        piece = piece.drop_vars([c for c in piece.coords if c not in ("band", "y", "x")])
        piece.to_dataset().to_zarr(
            self.path, region={"band": slice(None), "y": region, "x": slice(None)}
        )

    def finish(self) -> None:
        import zarr

        self.rows.flush()
        group = zarr.open_group(str(self.path), mode="r+")
        group["fused"].attrs[ZARR_ATTR] = json.loads(json.dumps(self.provenance))
        zarr.consolidate_metadata(str(self.path))

    def abort(self) -> None:
        pass  # the folder is removed by ``atomic_folder``
