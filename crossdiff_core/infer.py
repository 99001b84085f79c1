"""Whole-scene pansharpening, window by window, with bounded memory and no seams.

The scene is mirrored by ``context`` PAN pixels on every side and cut into overlapping windows
of ``tile`` pixels. Each window is fused with its context; its output is weighted by a profile
that is zero over the context, rises smoothly over ``blend`` pixels and is one inside, and the
weighted outputs are summed and normalised. Window origins sit on a fixed grid in global
coordinates (multiples of the model's stride and the ratio), and the model is local
(frozen GroupNorm statistics, windowed attention), so the result does not depend on the tiling
beyond the context given. Rows are emitted as soon as no later window touches them: memory
holds one strip of windows, whatever the scene size.

The classical baselines (``crossdiff_core.baselines.METHODS``) write through the same outputs,
but are not tiled: their statistics and coefficients are global, so ``pansharpen_scene`` runs
each on the whole scene lazily and computes it strip by strip (``BaselineFuser.iter_rows``),
which gives the method's one-shot values whatever the scene size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor the writers use)
import xarray as xr
from tqdm.auto import tqdm

from crossdiff_core.atomic import atomic_folder, atomic_write
from crossdiff_core.io.windows import gdal_cache_env
from crossdiff_core.scene import Scene

FORMATS = ("cog", "zarr")
MIN_MS_SIZE = 8  # MS pixels per side: below this interp23tap and the encoders see mostly padding


class WindowFuser(Protocol):
    """What tiled inference needs from a method."""

    ratio: int
    n_bands: int
    size_multiple: int
    context: int

    def fuse_windows(
        self, ms: np.ndarray, pan: np.ndarray, origins: list[tuple[int, int]]
    ) -> np.ndarray:
        """ms (N, B, h, w), pan (N, H, W) in DN -> fused (N, B, H, W) in DN."""


@dataclass
class ModelFuser:
    """A ``Pansharpener`` on a device."""

    model: object  # crossdiff_core.pansharpener.Pansharpener (kept lazy: torch is heavy)
    device: str = "cpu"

    @property
    def ratio(self) -> int:
        return self.model.ratio

    @property
    def n_bands(self) -> int:
        return self.model.n_bands

    @property
    def size_multiple(self) -> int:
        return self.model.size_multiple

    @property
    def context(self) -> int:
        return self.model.context

    @property
    def band_names(self) -> list[str]:
        return self.model.band_names

    def fuse_windows(self, ms, pan, origins):
        return self.model.fuse_windows(ms, pan, origins, self.device)


@dataclass
class BaselineFuser:
    """A classical method ``fuse(ms, pan, ratio, sensor)``.

    Whole scenes go through ``iter_rows`` (as ``pansharpen_scene`` does): the method's global
    statistics over the whole scene, the same values as one in-memory call. ``fuse_windows``
    (the ``WindowFuser`` protocol, e.g. ``fuse_tiled``) fuses each window on its own, with
    statistics of that window: a stand-in for timing, not the method's result on the scene.
    """

    method: Callable
    ratio: int
    n_bands: int
    sensor: object
    context: int = 64

    @property
    def size_multiple(self) -> int:
        return self.ratio

    def fuse_windows(self, ms, pan, origins):
        return np.stack(
            [
                self.method(m.astype(np.float64), p.astype(np.float64), self.ratio, self.sensor)
                for m, p in zip(ms, pan, strict=True)
            ]
        )

    def iter_rows(
        self, ms: da.Array | np.ndarray, pan: da.Array | np.ndarray, progress: bool = False
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first scene row, fused rows (B, n, W) float32) from top to bottom: the method
        on the whole scene, computed strip by strip (``baselines.scene.iter_fused_rows``)."""
        from crossdiff_core.baselines.scene import iter_fused_rows

        check_scene_fits(tuple(pan.shape), tuple(ms.shape), self, "pansharpen")
        with tqdm(total=pan.shape[0], desc="pansharpen", unit="row",
                  disable=not progress or None) as bar:
            for first, rows in iter_fused_rows(self.method, ms, pan, self.ratio, self.sensor):
                yield first, rows.astype(np.float32)
                bar.update(rows.shape[1])


def baseline_fuser(name: str, scene: Scene) -> BaselineFuser:
    """The baseline ``name`` of ``crossdiff_core.baselines.METHODS`` for this scene's sensor."""
    from crossdiff_core.baselines import get_method

    try:
        method = get_method(name)
    except ValueError as error:
        raise ValueError(f"{error} (or give a saved pansharpener folder)") from None
    return BaselineFuser(method, scene.ratio, scene.ms.sizes["band"], scene.sensor)


@dataclass(frozen=True)
class AxisLayout:
    """Windows along one axis, in padded coordinates (the scene starts at ``context``)."""

    starts: tuple[int, ...]
    tile: int
    context: int
    blend: int
    padded: int  # padded length: context + scene + end padding

    def weights(self, index: int) -> np.ndarray:
        """(tile,) float32 blending profile of window ``index``: 0 on context, smooth ramp,
        1 inside."""
        position = np.arange(self.tile, dtype=np.float64)
        weight = np.ones(self.tile)
        if index > 0:
            weight *= _ramp((position - self.context + 0.5) / max(self.blend, 1))
        else:
            weight[: self.context] = 0.0
        if index < len(self.starts) - 1:
            weight *= _ramp((self.tile - self.context - position - 0.5) / max(self.blend, 1))
        return weight.astype(np.float32)


def _ramp(u: np.ndarray) -> np.ndarray:
    """Smoothstep clipped to [0, 1]; ramp(u) + ramp(1 - u) = 1, so neighbours sum to one."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def plan_layout(
    height: int, width: int, tile: int, context: int, blend: int, multiple: int
) -> tuple[AxisLayout, AxisLayout]:
    """Row and column layouts; see ``axis_layout``."""
    rows = _axis(height, tile, context, blend, multiple)
    cols = _axis(width, tile, context, blend, multiple)
    return rows, cols


def _axis(length: int, tile: int, context: int, blend: int, multiple: int) -> AxisLayout:
    def up(value: int) -> int:
        return -(-value // multiple) * multiple

    context, blend, tile = up(context), up(blend), up(tile)
    if tile <= 2 * context + blend:
        raise ValueError(
            f"tile {tile} must exceed 2 x context ({context}) + blend ({blend}): "
            "raise the tile size or lower the context"
        )
    step = tile - 2 * context - blend
    full = length + 2 * context
    if full <= tile:
        size = up(full)
        return AxisLayout((0,), size, context, blend, size)
    count = math.ceil((full - tile) / step) + 1
    starts = tuple(i * step for i in range(count))
    return AxisLayout(starts, tile, context, blend, starts[-1] + tile)


def check_scene_fits(
    pan_shape: tuple[int, int], ms_shape: tuple[int, int, int], fuser: WindowFuser, what: str
) -> None:
    """Raise ValueError when the pair does not fit the method (bands, ratio, size)."""
    bands, ms_h, ms_w = ms_shape
    if bands != fuser.n_bands:
        raise ValueError(
            f"{what}: the model fuses {fuser.n_bands} bands, the scene has {bands}; "
            "adapt a model on this sensor (`crossdiff adapt`)"
        )
    if pan_shape != (ms_h * fuser.ratio, ms_w * fuser.ratio):
        raise ValueError(
            f"{what}: PAN {pan_shape} is not ratio {fuser.ratio} x MS "
            f"{(ms_h, ms_w)}: the scene's ratio does not fit the model"
        )
    if min(ms_h, ms_w) < MIN_MS_SIZE:
        raise ValueError(
            f"{what}: the MS is {ms_h} x {ms_w} pixels, smaller than the "
            f"{MIN_MS_SIZE} x {MIN_MS_SIZE} the upsampler and encoders need"
        )


def iter_fused_rows(
    ms: da.Array | np.ndarray,
    pan: da.Array | np.ndarray,
    fuser: WindowFuser,
    tile: int = 512,
    context: int | None = None,
    blend: int = 32,
    batch_size: int = 4,
    progress: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first scene row, fused rows (B, n, W) float32) from top to bottom.

    ms (B, h, w) and pan (H, W) may be dask arrays (read strip by strip) or numpy arrays.
    """
    ratio = fuser.ratio
    multiple = math.lcm(fuser.size_multiple, ratio)
    context = fuser.context if context is None else context
    height, width = pan.shape
    check_scene_fits((height, width), tuple(ms.shape), fuser, "pansharpen")
    rows, cols = plan_layout(height, width, tile, context, blend, multiple)
    pad = rows.context
    pan_padded = da.pad(
        da.asarray(pan),
        ((pad, rows.padded - pad - height), (pad, cols.padded - pad - width)),
        mode="symmetric",
    )
    ms_padded = da.pad(
        da.asarray(ms),
        (
            (0, 0),
            (pad // ratio, (rows.padded - pad - height) // ratio),
            (pad // ratio, (cols.padded - pad - width) // ratio),
        ),
        mode="symmetric",
    )
    bands = ms.shape[0]
    total = len(rows.starts) * len(cols.starts)
    bar = tqdm(total=total, desc="pansharpen", unit="tile", disable=not progress or None)
    # float32 is ample for sums of a few weighted DN values (errors ~1e-4 DN) and halves the
    # strip buffer, the largest allocation of a wide scene.
    accumulated = np.zeros((bands, rows.tile, cols.padded), np.float32)
    weight_sum = np.zeros((rows.tile, cols.padded), np.float32)
    emitted = 0  # padded rows already yielded (or skipped as padding)
    for row_index, row_start in enumerate(rows.starts):
        pan_strip, ms_strip = da.compute(
            pan_padded[row_start : row_start + rows.tile],
            ms_padded[:, row_start // ratio : (row_start + rows.tile) // ratio],
            scheduler="synchronous",
        )
        row_weight = rows.weights(row_index)
        for batch_start in range(0, len(cols.starts), batch_size):
            batch = list(enumerate(cols.starts))[batch_start : batch_start + batch_size]
            pan_windows = np.stack([pan_strip[:, s : s + cols.tile] for _, s in batch])
            ms_windows = np.stack(
                [ms_strip[:, :, s // ratio : (s + cols.tile) // ratio] for _, s in batch]
            )
            origins = [(row_start - pad, s - pad) for _, s in batch]
            fused = fuser.fuse_windows(ms_windows, pan_windows, origins)
            for (col_index, col_start), window in zip(batch, fused, strict=True):
                weight = row_weight[:, None] * cols.weights(col_index)[None, :]
                span = slice(col_start, col_start + cols.tile)
                window *= weight
                accumulated[:, :, span] += window
                weight_sum[:, span] += weight
            bar.update(len(batch))
        last = row_index == len(rows.starts) - 1
        done = rows.tile if last else rows.starts[row_index + 1] - row_start
        # Translate finished padded rows [row_start, row_start + done) to scene rows and
        # normalise just those (one new array, the one handed out).
        first = max(row_start, pad)
        stop = min(row_start + done, pad + height)
        if stop > first:
            finished = (slice(first - row_start, stop - row_start), slice(pad, pad + width))
            yield (
                first - pad,
                accumulated[(slice(None), *finished)]
                / np.maximum(weight_sum[finished], np.float32(1e-12)),
            )
        emitted = row_start + done
        # Keep the rows the next strip still adds to; shift them up in place (numpy buffers
        # the copy itself only where source and destination overlap).
        kept = rows.tile - done
        accumulated[:, :kept] = accumulated[:, done:]
        weight_sum[:kept] = weight_sum[done:]
        accumulated[:, kept:] = 0.0
        weight_sum[kept:] = 0.0
    bar.close()
    if emitted < pad + height:
        raise RuntimeError("tiling left scene rows uncovered")  # a layout bug, never user input


def fuse_tiled(ms: np.ndarray, pan: np.ndarray, fuser: WindowFuser, **tiling) -> np.ndarray:
    """The whole tiled result in memory: ms (B, h, w), pan (H, W) -> (B, H, W) float32."""
    fused = np.empty((ms.shape[0], *pan.shape), np.float32)
    for first, block in iter_fused_rows(ms, pan, fuser, **tiling):
        fused[:, first : first + block.shape[1]] = block
    return fused


def _nodata_mask(
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


class _GeoTiffWriter:
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


class _ZarrWriter:
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
        piece = piece.drop_vars([c for c in piece.coords if c not in ("band", "y", "x")])
        piece.to_dataset().to_zarr(
            self.path, region={"band": slice(None), "y": region, "x": slice(None)}
        )

    def finish(self) -> None:
        self.rows.flush()

    def abort(self) -> None:
        pass  # the folder is removed by ``atomic_folder``


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


def _write_fused(
    scene: Scene,
    fuser: WindowFuser,
    writer: _GeoTiffWriter | _ZarrWriter,
    nodata: float | None,
    **tiling,
) -> None:
    """Fuse ``scene`` strip by strip into ``writer`` and finish it; on any failure, abort it
    (it closes what it opened; the atomic write removes what was written)."""
    pan_data, ms_data = scene.pan.data, scene.ms.data
    if isinstance(fuser, BaselineFuser):
        rows = fuser.iter_rows(ms_data, pan_data, progress=tiling.get("progress", False))
    else:
        rows = iter_fused_rows(ms_data, pan_data, fuser, **tiling)
    try:
        for first, block in rows:
            values = to_output_dtype(block, scene.ms.dtype, nodata)
            if nodata is not None:
                pan_rows, ms_rows = da.compute(
                    pan_data[first : first + block.shape[1]],
                    ms_data[
                        :, first // fuser.ratio : (first + block.shape[1] - 1) // fuser.ratio + 1
                    ],
                )
                mask = _nodata_mask(pan_rows, ms_rows, first % fuser.ratio, fuser.ratio, nodata)
                values[:, mask] = nodata
            writer.write(first, values)
        writer.finish()
    except BaseException:
        writer.abort()
        raise


def pansharpen_scene(
    scene: Scene,
    fuser: WindowFuser,
    out: str | Path,
    fmt: str = "cog",
    tile: int = 640,
    context: int | None = None,
    blend: int = 32,
    batch_size: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    band_names: list[str] | None = None,
) -> Path:
    """Pansharpen a whole scene into a COG (default) or a Zarr store on the PAN grid.

    The output has the scene's CRS and transform, band names, the MS's DN dtype and nodata value
    (pixels where the PAN or any MS band is nodata stay nodata). It is written under a hidden
    temporary name and renamed when complete; an existing ``out`` is refused unless ``overwrite``.
    The tiling (``tile``, ``context``, ``blend``, ``batch_size``) applies to models; a
    ``BaselineFuser`` runs its method on the whole scene, strip by strip.
    """
    out = check_output(out, fmt, overwrite)
    check_scene_fits(tuple(scene.pan.shape), tuple(scene.ms.shape), fuser, str(out))
    band_names = band_names or scene.band_names
    dtype = scene.ms.dtype
    nodata = scene.attrs.get("nodata")
    writer_type = _GeoTiffWriter if fmt == "cog" else _ZarrWriter
    # GDAL's block cache (5 % of RAM by default) would keep every written block of the output:
    # cap it at one block row of the output on top of the small reading allowance.
    block_row_bytes = writer_type.chunk * scene.pan.shape[1] * len(band_names) * dtype.itemsize
    tiling = {"tile": tile, "context": context, "blend": blend, "batch_size": batch_size,
              "progress": progress}

    def build(path: Path) -> None:
        with gdal_cache_env(block_row_bytes):
            writer = writer_type(path, scene, dtype, nodata, band_names)
            _write_fused(scene, fuser, writer, nodata, **tiling)

    if fmt == "cog":
        atomic_write(out, build)
    else:
        atomic_folder(out, build)
    return out


def load_fuser(model: str | Path, scene: Scene, device: str = "auto") -> WindowFuser:
    """A saved pansharpener folder or a baseline name, checked against ``scene``."""
    from crossdiff_core.device import pick_device
    from crossdiff_core.pansharpener import is_pansharpener_folder, load_pansharpener

    if is_pansharpener_folder(model):
        pansharpener = load_pansharpener(model)
        if pansharpener.ratio != scene.ratio:
            raise ValueError(
                f"model {model} was adapted at ratio {pansharpener.ratio}, the "
                f"scene {scene.scene_id} has ratio {scene.ratio}"
            )
        if pansharpener.band_names != scene.band_names:
            raise ValueError(
                f"model {model} fuses bands {pansharpener.band_names}, the scene "
                f"{scene.scene_id} has {scene.band_names}: adapt a model on it"
            )
        resolved = pick_device(device)
        return ModelFuser(pansharpener.to(resolved), str(resolved))
    if Path(model).exists():
        raise ValueError(f"{model} is not a saved pansharpener folder (no CrossDiff config.json)")
    return baseline_fuser(str(model), scene)
