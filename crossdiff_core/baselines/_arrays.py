"""Array operations the baselines share, for numpy arrays and (chunk-wise, exact) dask arrays.

A baseline written with these helpers runs in memory on numpy input and lazily, chunk by chunk,
on dask input: global statistics are reductions that :func:`materialise` computes once, and the
fusion rules are pixel-wise.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from crossdiff_core import degrade
from crossdiff_core.sensors import Sensor

Array = np.ndarray | da.Array


def is_lazy(array: Array) -> bool:
    return isinstance(array, da.Array)


def check_inputs(ms: Array, pan: Array, ratio: int) -> tuple[Array, Array]:
    """Validate ms (B, h, w) and pan (ratio h, ratio w); returns float64 views."""
    if ms.ndim != 3:
        raise ValueError(f"ms must be (band, y, x), got shape {ms.shape}")
    if pan.ndim != 2:
        raise ValueError(f"pan must be (y, x), got shape {pan.shape}")
    if isinstance(ratio, bool) or int(ratio) != ratio or ratio < 2:
        raise ValueError(f"ratio must be an integer >= 2, got {ratio!r}")
    if pan.shape != (ms.shape[1] * ratio, ms.shape[2] * ratio):
        raise ValueError(f"pan shape {pan.shape} is not ratio {ratio} x ms shape {ms.shape[1:]}: "
                         "the grids must nest")
    if is_lazy(ms) != is_lazy(pan):
        raise ValueError("give ms and pan both as numpy or both as dask arrays")
    if not is_lazy(ms):
        ms, pan = np.asarray(ms, dtype=np.float64), np.asarray(pan, dtype=np.float64)
        for name, image in (("ms", ms), ("pan", pan)):
            if not np.isfinite(image).all():
                raise ValueError(f"{name} contains NaN or inf: fill or mask them before fusing")
        return ms, pan
    return ms.astype(np.float64), pan.astype(np.float64)


def upsample(ms: Array, ratio: int) -> Array:
    """interp23tap: (B, h, w) -> (B, ratio h, ratio w)."""
    if is_lazy(ms):
        return degrade.interp23tap_dask(ms, ratio)
    return degrade.interp23tap(ms, ratio)


def filter_stack(images: Array, kernels: np.ndarray) -> Array:
    """Each of (B, y, x) correlated with its own kernel (B, k, k), replicate borders."""
    if not is_lazy(images):
        return degrade.filter_bands(images, kernels)
    depth = kernels.shape[-1] // 2
    images = images.rechunk({0: -1})
    if min(min(c) for c in images.chunks[1:]) < depth:
        images = images.rechunk({1: max(256, depth), 2: max(256, depth)})
    return images.map_overlap(degrade.filter_bands, kernels=kernels, depth={1: depth, 2: depth},
                              boundary="nearest", dtype=np.float64)


def replicate(pan: Array, n_bands: int, like: Array) -> Array:
    """pan (H, W) broadcast to (B, H, W), chunked like ``like``."""
    if not is_lazy(pan):
        return np.broadcast_to(pan, (n_bands, *pan.shape))
    return da.broadcast_to(pan[None], (n_bands, *pan.shape)).rechunk(like.chunks)


def decimate(images: Array, ratio: int) -> Array:
    return degrade.decimate_dask(images, ratio) if is_lazy(images) else degrade.decimate(
        images, ratio)


def shrink(image: Array, ratio: int) -> Array:
    """MATLAB imresize(image, 1 / ratio), bicubic antialiased."""
    if is_lazy(image):
        return degrade.imresize_shrink_dask(image, ratio)
    return degrade.imresize_bicubic(image, 1.0 / ratio)


def mtf_lowpass_pan(pan: Array, ratio: int, sensor: str | Sensor, n_bands: int,
                    like: Array) -> Array:
    """The PAN seen through each band's MTF, decimated and re-expanded: the GLP low-pass PAN.

    pan (H, W) -> (B, H, W).
    """
    kernels = degrade.mtf_kernels(sensor, ratio, n_bands=n_bands)
    filtered = filter_stack(replicate(pan, n_bands, like), kernels)
    return upsample(decimate(filtered, ratio), ratio)


def band_mean(images: Array) -> Array:
    """Per-band mean, (B, y, x) -> (B, 1, 1)."""
    return images.mean(axis=(-2, -1), keepdims=True)


def materialise(*stats):
    """Compute dask statistics once (numpy ones pass through)."""
    if any(is_lazy(s) for s in stats):
        stats = dask.compute(*stats)
    return tuple(np.asarray(s, dtype=np.float64) for s in stats)
