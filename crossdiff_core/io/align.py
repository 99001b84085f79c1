"""Make a PAN/MS pair nest exactly: same origin, PAN pixel = MS pixel / ratio, PAN = ratio x MS.

The rule, applied to georeferenced pairs (``align_pair``):

1. Both grids must share one CRS and be north-up (no rotation); otherwise refused.
2. The resolution ratio is MS pixel size / PAN pixel size on each axis. It must be the same on
   both axes and an integer (within 1e-6 relative), and equal to the sensor's ratio when given.
3. The MS origin is expressed in PAN pixels from the PAN origin (``offset``, per axis).
   - Whole-pixel offsets (within 1e-3 PAN px; the WorldView-3 test delivery has +2
     columns and +1 row): whole PAN pixels before the MS origin are dropped. If the PAN starts
     after the MS origin, whole MS pixels are dropped first until the PAN covers the MS origin.
   - Half-pixel offsets (x.5 PAN px on both axes) follow the Landsat convention (Landsat OLI: the
     PAN grid is registered half a PAN pixel, 7.5 m, up and left of the MS grid; USGS documents
     the PAN pixel centres as nested in the MS pixels that way). They are accepted where the
     source declares this convention (a Landsat bundle's MTL) and, for any source, when the pair
     has exactly Landsat's geometry: ratio 2 (a PAN + MS GeoTIFF pair cut from a Landsat bundle,
     or pansharpened from one). The whole-pixel part is dropped as above and the PAN grid is then
     declared to start at the MS origin, i.e. moved by half a PAN pixel; no resampling. The
     alignment records ``convention: "landsat-half-pixel"`` and ``declared_by`` (``source`` or
     ``geometry``).
   - Any other fractional offset (a half pixel at another ratio, a third, ...) would need
     resampling and is refused.
4. Both rasters are cropped to their common extent, a whole number of MS pixels, so extra PAN rows
   or columns at the far edges (Landsat's extra PAN row, WV3's extra rows/columns) are dropped.
   An empty common extent means the footprints do not overlap: refused.
5. The output grids are rebuilt from the aligned origin: MS pixel = ratio x PAN pixel size.

Everything is recorded in the returned ``alignment`` dict (stored as a root attribute). Arrays
stay lazy: only index slicing is applied.
"""

from __future__ import annotations

import math
from pathlib import Path

import xarray as xr
from affine import Affine

from crossdiff_core.io.errors import AlignmentError
from crossdiff_core.io.geo import attach_grid

RATIO_TOLERANCE = 1e-6
OFFSET_TOLERANCE = 1e-3
LANDSAT_RATIO = 2
LANDSAT_CONVENTION = (
    "landsat-half-pixel: PAN grid half a PAN pixel up and left of the MS grid (ratio 2); the PAN "
    "grid is declared to start at the MS origin, no resampling"
)


def _near(value: float, target: float, tolerance: float) -> bool:
    return abs(value - target) <= tolerance


def _drops(offset: int, ratio: int) -> tuple[int, int]:
    """(PAN pixels, MS pixels) to drop at the start so that both start at the same place."""
    ms_drop = 0 if offset >= 0 else math.ceil(-offset / ratio)
    return offset + ms_drop * ratio, ms_drop


def align_pair(
    pan: xr.DataArray,
    ms: xr.DataArray,
    expected_ratio: int | None = None,
    half_pixel_ok: bool = False,
    label: str | Path = "input",
) -> tuple[xr.DataArray, xr.DataArray, dict]:
    """Crop georeferenced ``pan`` (y, x) and ``ms`` (band, y, x) to nesting grids.

    Returns ``(pan, ms, alignment)`` where PAN shape = ratio x MS shape and the PAN transform is the
    MS transform scaled by 1/ratio. Raises AlignmentError (naming ``label``) when it cannot.
    """
    ratio = _grid_ratio(pan, ms, expected_ratio, label)
    _check_overlap(pan, ms, label)
    pan_crs, ms_crs = pan.rio.crs, ms.rio.crs
    pan_t, ms_t = pan.rio.transform(recalc=False), ms.rio.transform(recalc=False)
    col_offset = (ms_t.c - pan_t.c) / pan_t.a
    row_offset = (ms_t.f - pan_t.f) / pan_t.e
    whole = all(_near(v, round(v), OFFSET_TOLERANCE) for v in (col_offset, row_offset))
    half = all(_near(v - math.floor(v), 0.5, OFFSET_TOLERANCE) for v in (col_offset, row_offset))
    if whole:
        rule, col_int, row_int = "whole_pixel_crop", round(col_offset), round(row_offset)
    elif half and (half_pixel_ok or ratio == LANDSAT_RATIO):
        rule = "half_pixel_shift"
        col_int, row_int = math.floor(col_offset), math.floor(row_offset)
    else:
        raise AlignmentError(
            f"{label}: MS origin is ({row_offset:.3f}, {col_offset:.3f}) PAN pixels (row, col) "
            "from the PAN origin: a fractional offset that only resampling could fix (only "
            "Landsat's half PAN pixel at ratio 2 is aligned without resampling)"
        )
    pan_row0, ms_row0 = _drops(row_int, ratio)
    pan_col0, ms_col0 = _drops(col_int, ratio)
    n_rows = min(ms.sizes["y"] - ms_row0, (pan.sizes["y"] - pan_row0) // ratio)
    n_cols = min(ms.sizes["x"] - ms_col0, (pan.sizes["x"] - pan_col0) // ratio)
    if n_rows <= 0 or n_cols <= 0:
        raise AlignmentError(f"{label}: PAN and MS footprints do not overlap")

    origin_x = ms_t.c + ms_col0 * ms_t.a
    origin_y = ms_t.f + ms_row0 * ms_t.e
    pan_grid = Affine(pan_t.a, 0.0, origin_x, 0.0, pan_t.e, origin_y)
    ms_grid = Affine(pan_t.a * ratio, 0.0, origin_x, 0.0, pan_t.e * ratio, origin_y)
    aligned_pan = pan.isel(y=slice(pan_row0, pan_row0 + n_rows * ratio),
                           x=slice(pan_col0, pan_col0 + n_cols * ratio))
    aligned_ms = ms.isel(y=slice(ms_row0, ms_row0 + n_rows), x=slice(ms_col0, ms_col0 + n_cols))
    aligned_pan = attach_grid(aligned_pan.drop_vars(["x", "y"], errors="ignore"), pan_grid, pan_crs)
    aligned_ms = attach_grid(aligned_ms.drop_vars(["x", "y"], errors="ignore"), ms_grid, ms_crs)
    alignment = {
        "rule": "nested" if rule == "whole_pixel_crop" and not any(
            (pan_row0, pan_col0, ms_row0, ms_col0,
             pan.sizes["y"] - n_rows * ratio, pan.sizes["x"] - n_cols * ratio,
             ms.sizes["y"] - n_rows, ms.sizes["x"] - n_cols)) else rule,
        "ratio": ratio,
        "ms_origin_in_pan_pixels": [round(row_offset, 6), round(col_offset, 6)],
        # Rounded to the micrometre: what is left after whole-pixel drops is float noise.
        "pan_shift_m": [round(pan_grid.c - pan_t.c - pan_col0 * pan_t.a, 6),
                        round(pan_grid.f - pan_t.f - pan_row0 * pan_t.e, 6)],
        "pan_dropped": {"top": pan_row0, "left": pan_col0,
                        "bottom": pan.sizes["y"] - pan_row0 - n_rows * ratio,
                        "right": pan.sizes["x"] - pan_col0 - n_cols * ratio},
        "ms_dropped": {"top": ms_row0, "left": ms_col0,
                       "bottom": ms.sizes["y"] - ms_row0 - n_rows,
                       "right": ms.sizes["x"] - ms_col0 - n_cols},
    }
    if rule == "half_pixel_shift":
        alignment["convention"] = LANDSAT_CONVENTION
        alignment["declared_by"] = "source" if half_pixel_ok else "geometry"
    return aligned_pan, aligned_ms, alignment


def _grid_ratio(
    pan: xr.DataArray, ms: xr.DataArray, expected_ratio: int | None, label: str | Path
) -> int:
    """The integer MS/PAN resolution ratio of two north-up grids in one CRS (rules 1 and 2)."""
    pan_crs, ms_crs = pan.rio.crs, ms.rio.crs
    if pan_crs is None or ms_crs is None:
        raise AlignmentError(f"{label}: PAN or MS has no CRS; cannot check that they overlap")
    if pan_crs != ms_crs:
        raise AlignmentError(
            f"{label}: CRS mismatch: PAN is {pan_crs.to_string()}, MS is {ms_crs.to_string()}; "
            "reproject one of them first"
        )
    pan_t, ms_t = pan.rio.transform(recalc=False), ms.rio.transform(recalc=False)
    if pan_t.b or pan_t.d or ms_t.b or ms_t.d:
        raise AlignmentError(f"{label}: rotated grids are not supported")
    ratio_x, ratio_y = ms_t.a / pan_t.a, ms_t.e / pan_t.e
    ratio = round(ratio_x)
    if not (_near(ratio_x, ratio_y, RATIO_TOLERANCE * ratio_x)
            and _near(ratio_x, ratio, RATIO_TOLERANCE * ratio_x) and ratio >= 1):
        raise AlignmentError(
            f"{label}: non-integer resolution ratio: MS/PAN pixel sizes give {ratio_x:.6g} (x) "
            f"and {ratio_y:.6g} (y)"
        )
    if expected_ratio is not None and ratio != expected_ratio:
        raise AlignmentError(
            f"{label}: resolution ratio is {ratio} but the sensor's is {expected_ratio}"
        )
    return ratio


def _check_overlap(pan: xr.DataArray, ms: xr.DataArray, label: str | Path) -> None:
    pan_left, pan_bottom, pan_right, pan_top = pan.rio.bounds(recalc=False)
    ms_left, ms_bottom, ms_right, ms_top = ms.rio.bounds(recalc=False)
    if min(pan_right, ms_right) <= max(pan_left, ms_left) or \
            min(pan_top, ms_top) <= max(pan_bottom, ms_bottom):
        raise AlignmentError(f"{label}: PAN and MS footprints do not overlap")


def check_nested_shapes(pan: xr.DataArray, ms: xr.DataArray, ratio: int,
                        label: str | Path) -> dict:
    """For inputs without georeferencing: the shapes must already nest (nothing to align on)."""
    expected = (ms.sizes["y"] * ratio, ms.sizes["x"] * ratio)
    if (pan.sizes["y"], pan.sizes["x"]) != expected:
        raise AlignmentError(
            f"{label}: PAN shape {tuple(pan.shape)} is not ratio {ratio} x MS shape "
            f"{tuple(ms.shape[1:])}, and without georeferencing nothing says how to align them"
        )
    return {"rule": "nested", "ratio": ratio, "georeferenced": False}
