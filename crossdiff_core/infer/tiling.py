"""Tiled inference of a model: overlapping windows on a fixed grid, blended without seams.

The scene is mirrored by ``context`` PAN pixels on every side and cut into overlapping windows
of ``tile`` pixels. Each window is fused with its context; its output is weighted by a profile
that is zero over the context, rises smoothly over ``blend`` pixels and is one inside, and the
weighted outputs are summed and normalised. Window origins sit on a fixed grid in global
coordinates (multiples of the model's stride and the ratio), and the model is local
(frozen GroupNorm statistics, windowed attention), so the result does not depend on the tiling
beyond the context given. Rows are emitted as soon as no later window touches them: memory
holds one strip of windows, whatever the scene size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import dask.array as da
import numpy as np
from tqdm.auto import tqdm

from crossdiff_core.config import PansharpenParams

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
    """Row and column ``AxisLayout``s of a ``height`` x ``width`` scene: windows of ``tile``
    pixels with ``context`` mirrored pixels and ``blend`` pixels of ramp, all rounded up to
    ``multiple``."""
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
    tile: int = PansharpenParams.tile,
    context: int | None = None,
    blend: int = PansharpenParams.blend,
    batch_size: int = PansharpenParams.batch_size,
    progress: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first scene row, fused rows (B, n, W) float32) from top to bottom.

    ms (B, h, w) and pan (H, W) may be dask arrays (read strip by strip) or numpy arrays. The
    tiling defaults are the ``pansharpen`` section's (``crossdiff_core.config``); ``context``
    defaults to the model's.
    """
    ratio = fuser.ratio
    context = fuser.context if context is None else context
    height, width = pan.shape
    check_scene_fits((height, width), tuple(ms.shape), fuser, "pansharpen")
    rows, cols = plan_layout(
        height, width, tile, context, blend, math.lcm(fuser.size_multiple, ratio)
    )
    pad = rows.context
    pan_padded, ms_padded = _mirrored(pan, ms, rows, cols, ratio, (height, width))
    sums = _StripSums(ms.shape[0], rows.tile, cols.padded)
    total = len(rows.starts) * len(cols.starts)
    bar = tqdm(total=total, desc="pansharpen", unit="tile", disable=not progress or None)
    emitted = 0  # padded rows already yielded (or skipped as padding)
    for row_index, row_start in enumerate(rows.starts):
        pan_strip, ms_strip = da.compute(
            pan_padded[row_start : row_start + rows.tile],
            ms_padded[:, row_start // ratio : (row_start + rows.tile) // ratio],
            scheduler="synchronous",
        )
        strip = _Strip(pan_strip, ms_strip, row_start - pad, rows.weights(row_index))
        _fuse_strip(fuser, strip, cols, batch_size, sums, bar)
        last = row_index == len(rows.starts) - 1
        done = rows.tile if last else rows.starts[row_index + 1] - row_start
        # Translate finished padded rows [row_start, row_start + done) to scene rows and
        # normalise just those (one new array, the one handed out).
        first = max(row_start, pad)
        stop = min(row_start + done, pad + height)
        if stop > first:
            yield first - pad, sums.normalised(
                slice(first - row_start, stop - row_start), slice(pad, pad + width)
            )
        emitted = row_start + done
        sums.shift_up(done)
    bar.close()
    if emitted < pad + height:
        raise RuntimeError("tiling left scene rows uncovered")  # a layout bug, never user input


def _mirrored(
    pan: da.Array | np.ndarray,
    ms: da.Array | np.ndarray,
    rows: AxisLayout,
    cols: AxisLayout,
    ratio: int,
    shape: tuple[int, int],
) -> tuple[da.Array, da.Array]:
    """PAN and MS mirrored by the context before and up to the padded size after (lazy)."""
    height, width = shape
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
    return pan_padded, ms_padded


@dataclass
class _Strip:
    """One strip of rows of the mirrored scene: pan (tile, padded W), ms (B, tile / ratio, ...),
    its first row in scene coordinates and its row blending profile."""

    pan: np.ndarray
    ms: np.ndarray
    origin_row: int
    row_weight: np.ndarray


class _StripSums:
    """Weighted sums of fused windows over the rows of one strip, and the sum of the weights."""

    def __init__(self, bands: int, height: int, width: int) -> None:
        # float32 is ample for sums of a few weighted DN values (errors ~1e-4 DN) and halves the
        # strip buffer, the largest allocation of a wide scene.
        self.values = np.zeros((bands, height, width), np.float32)
        self.weights = np.zeros((height, width), np.float32)

    def add(self, window: np.ndarray, weight: np.ndarray, col_start: int) -> None:
        """Add ``window`` (B, tile, tile) times ``weight`` (tile, tile) at column ``col_start``."""
        span = slice(col_start, col_start + weight.shape[1])
        window *= weight
        self.values[:, :, span] += window
        self.weights[:, span] += weight

    def normalised(self, rows: slice, cols: slice) -> np.ndarray:
        """The weighted mean over ``rows`` and ``cols``: (B, n, m) float32."""
        return self.values[:, rows, cols] / np.maximum(self.weights[rows, cols], np.float32(1e-12))

    def shift_up(self, done: int) -> None:
        """Drop the first ``done`` rows; keep the rows the next strip still adds to. The shift
        is in place (numpy buffers the copy itself only where source and destination overlap)."""
        kept = self.weights.shape[0] - done
        self.values[:, :kept] = self.values[:, done:]
        self.weights[:kept] = self.weights[done:]
        self.values[:, kept:] = 0.0
        self.weights[kept:] = 0.0


def _fuse_strip(
    fuser: WindowFuser, strip: _Strip, cols: AxisLayout, batch_size: int, sums: _StripSums, bar
) -> None:
    """Fuse the windows of ``strip``, ``batch_size`` at a time, and add them to ``sums``."""
    ratio, pad = fuser.ratio, cols.context
    windows = list(enumerate(cols.starts))
    for batch_start in range(0, len(windows), batch_size):
        batch = windows[batch_start : batch_start + batch_size]
        pan_windows = np.stack([strip.pan[:, s : s + cols.tile] for _, s in batch])
        ms_windows = np.stack(
            [strip.ms[:, :, s // ratio : (s + cols.tile) // ratio] for _, s in batch]
        )
        origins = [(strip.origin_row, s - pad) for _, s in batch]
        fused = fuser.fuse_windows(ms_windows, pan_windows, origins)
        for (col_index, col_start), window in zip(batch, fused, strict=True):
            weight = strip.row_weight[:, None] * cols.weights(col_index)[None, :]
            sums.add(window, weight, col_start)
        bar.update(len(batch))


def fuse_tiled(ms: np.ndarray, pan: np.ndarray, fuser: WindowFuser, **tiling) -> np.ndarray:
    """The whole tiled result in memory: ms (B, h, w), pan (H, W) -> (B, H, W) float32."""
    fused = np.empty((ms.shape[0], *pan.shape), np.float32)
    for first, block in iter_fused_rows(ms, pan, fuser, **tiling):
        fused[:, first : first + block.shape[1]] = block
    return fused
