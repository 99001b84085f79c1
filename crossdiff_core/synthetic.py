"""Synthetic PAN/MS pairs and scene stores for tests: textured, band-correlated, realistic DN."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import xarray as xr
from affine import Affine
from scipy.ndimage import gaussian_filter

from crossdiff_core.sensors import Sensor, get_sensor

SYNTHETIC_CRS = "EPSG:32616"


def _texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Zero-mean, unit-std texture mixing fine grain, mid-scale blobs and sharp-edged patches."""
    field = np.zeros(shape)
    for sigma, weight in ((1.0, 0.3), (4.0, 0.6), (16.0, 1.0)):
        layer = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
        field += weight * layer / (layer.std() + 1e-12)
    # Rectangles with hard edges stand in for fields and roofs: they give the PAN real detail.
    for _ in range(max(2, shape[0] * shape[1] // 2048)):
        y0, x0 = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        dy, dx = rng.integers(2, max(3, shape[0] // 4)), rng.integers(2, max(3, shape[1] // 4))
        field[y0:y0 + dy, x0:x0 + dx] += rng.normal(0.0, 1.0)
    return (field - field.mean()) / (field.std() + 1e-12)


def synthetic_pair(
    sensor: str | Sensor = "QuickBird", ms_shape: tuple[int, int] = (32, 32), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A nested PAN/MS pair: ``pan`` (H, W) uint16 and ``ms`` (B, h, w) uint16 with H = ratio * h.

    Each band is a mix of a texture shared by all bands and a band-specific one, so bands correlate
    with each other and with the PAN (their weighted mean), as in real scenes. MS pixels are the
    block means of the high-resolution bands. DN use about a quarter to three quarters of the
    sensor's bit depth.
    """
    sensor = get_sensor(sensor)
    ratio, n_bands = sensor.ratio, sensor.n_bands
    height, width = ms_shape[0] * ratio, ms_shape[1] * ratio
    rng = np.random.default_rng(seed)
    shared = _texture(rng, (height, width))
    bands = np.stack([
        0.85 * shared + 0.5 * _texture(rng, (height, width)) for _ in range(n_bands)
    ])
    max_dn = sensor.max_dn
    level = rng.uniform(0.35, 0.5, size=(n_bands, 1, 1)) * max_dn
    spread = 0.08 * max_dn
    bands_dn = level + spread * bands
    weights = rng.uniform(0.5, 1.5, size=(n_bands, 1, 1))
    pan = (weights * bands_dn).sum(axis=0) / weights.sum()
    pan += rng.normal(0.0, 0.002 * max_dn, size=pan.shape)
    ms = bands_dn.reshape(n_bands, ms_shape[0], ratio, ms_shape[1], ratio).mean(axis=(2, 4))
    return (np.clip(np.rint(pan), 1, max_dn).astype(np.uint16),
            np.clip(np.rint(ms), 1, max_dn).astype(np.uint16))


def synthetic_scene_arrays(
    sensor: str | Sensor = "QuickBird",
    ms_shape: tuple[int, int] = (32, 32),
    seed: int = 0,
    georeferenced: bool = True,
) -> tuple[xr.DataArray, xr.DataArray]:
    """``synthetic_pair`` as DataArrays (pan (y, x), ms (band, y, x)), on a UTM grid if asked."""
    sensor = get_sensor(sensor)
    pan_np, ms_np = synthetic_pair(sensor, ms_shape, seed)
    pan = xr.DataArray(pan_np, dims=("y", "x"))
    ms = xr.DataArray(ms_np, dims=("band", "y", "x"), coords={"band": list(sensor.bands)})
    if georeferenced:
        from crossdiff_core.io.geo import attach_grid, scaled_transform

        pan_pixel = 15.0 if sensor.ratio == 2 else 0.5
        pan_transform = Affine(pan_pixel, 0.0, 452_000.0, 0.0, -pan_pixel, 3_400_000.0)
        pan = attach_grid(pan, pan_transform, SYNTHETIC_CRS)
        ms = attach_grid(ms, scaled_transform(pan_transform, sensor.ratio), SYNTHETIC_CRS)
    return pan, ms


def write_synthetic_store(
    out_dir: str | Path,
    sensor: str | Sensor = "QuickBird",
    ms_shape: tuple[int, int] = (32, 32),
    seed: int = 0,
    georeferenced: bool = True,
) -> Path:
    """Write a synthetic scene store ``<out_dir>/<sensor>/synthetic-<h>x<w>-seed<seed>.zarr``."""
    from crossdiff_core.io.store import scene_attributes, write_scene_store

    sensor = get_sensor(sensor)
    pan, ms = synthetic_scene_arrays(sensor, ms_shape, seed, georeferenced)
    digest = hashlib.sha256(pan.values.tobytes() + ms.values.tobytes()).hexdigest()
    attrs = scene_attributes(
        sensor,
        scene_id=f"synthetic-{ms_shape[0]}x{ms_shape[1]}-seed{seed}",
        scale_max=float(sensor.max_dn),
        nodata=None,
        crs=pan.rio.crs.to_wkt() if georeferenced else None,
        source_name="synthetic",
        source_sha256=digest,
        alignment={"rule": "none", "reason": "generated on nested grids"},
    )
    chunk = max(sensor.ratio, min(1024, 1 << (max(ms_shape) * sensor.ratio - 1).bit_length()))
    return write_scene_store(pan, ms, attrs, out_dir, chunk_size=chunk, overwrite=True)
