"""Where fused rows go: a Cloud-Optimized GeoTIFF or a Zarr store on the PAN grid, in the MS's
DN dtype and nodata value, written in whole blocks of rows."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor the writers use)
import xarray as xr

from crossdiff_core.scene import Scene

FORMATS = ("cog", "zarr")


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


def to_output_dtype(fused: np.ndarray, dtype: np.dtype, nodata: float | None) -> np.ndarray:
    """Round and clip to an integer DN dtype (keeping valid pixels off the nodata value)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return fused.astype(dtype)
    info = np.iinfo(dtype)
    low = info.min + 1 if nodata is not None and nodata == info.min else info.min
    rounded = np.rint(fused)
    np.clip(rounded, low, info.max, out=rounded)
    return rounded.astype(dtype)


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


class GeoTiffWriter:
    """Rows into a tiled GeoTIFF beside ``path``; ``finish`` turns it into a COG at ``path``."""

    chunk = 256

    def __init__(
        self,
        path: Path,
        scene: Scene,
        dtype: np.dtype,
        nodata: float | None,
        band_names: list[str],
    ) -> None:
        import rasterio

        self.path = path
        self.scratch = path.with_name(path.name + ".strips.tif")
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
        for index, name in enumerate(band_names, start=1):
            self.dataset.set_band_description(index, name)
        self.rows = _BlockRows(self.chunk, self._write_rows)

    def write(self, first: int, block: np.ndarray) -> None:
        self.rows.add(first, block)

    def _write_rows(self, first: int, rows: np.ndarray) -> None:
        from rasterio.windows import Window

        self.dataset.write(rows, window=Window(0, first, rows.shape[2], rows.shape[1]))

    def finish(self) -> None:
        import rasterio
        from rasterio.shutil import copy as raster_copy

        self.rows.flush()
        self.dataset.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            raster_copy(
                self.scratch,
                self.path,
                driver="COG",
                compress="DEFLATE",
                BIGTIFF="IF_SAFER",
                overview_resampling="average",
            )
        self.scratch.unlink()

    def abort(self) -> None:
        self.dataset.close()
        self.scratch.unlink(missing_ok=True)


class ZarrWriter:
    """Rows into a Zarr store (variable ``fused`` (band, y, x) on the PAN grid) at ``path``."""

    chunk = 512

    def __init__(
        self,
        path: Path,
        scene: Scene,
        dtype: np.dtype,
        nodata: float | None,
        band_names: list[str],
    ) -> None:
        self.path = path
        height, width = scene.pan.shape
        template = xr.DataArray(
            da.zeros(
                (len(band_names), height, width),
                dtype=dtype,
                chunks=(len(band_names), self.chunk, self.chunk),
            ),
            dims=("band", "y", "x"),
            coords={"band": band_names, "y": scene.pan["y"].values, "x": scene.pan["x"].values},
            name="fused",
        )
        if scene.pan.rio.crs is not None:
            template = template.rio.write_crs(scene.pan.rio.crs).rio.write_transform(
                scene.pan.rio.transform()
            )
        if nodata is not None:
            template.attrs["_FillValue"] = nodata
        template.attrs.update(
            {"sensor": scene.attrs.get("sensor"), "source_scene": scene.attrs.get("scene_id")}
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
        self.rows.flush()

    def abort(self) -> None:
        pass  # the folder is removed by ``atomic_folder``
