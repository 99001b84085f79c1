"""Low-pass images of the toolbox's wavelet and morphological methods, numpy or dask (chunk-wise).

* :func:`wavelet_approximation`: the approximation of the undecimated wavelet decomposition the
  toolbox uses in GSA (``LPfilterPlusDec``, before its decimation) and AWLP: ``ceil(log2 ratio)``
  levels with the Starck-Murtagh B3 filter [1 4 6 4 1] / 16 (not dilated between levels), details
  set to zero and the transform inverted. Each decomposition level grows the image by 2 pixels a
  side (half-point symmetric extension, as the toolbox's ``ndwt2_working`` in 'sym' mode); each
  reconstruction level crops them again (``indwt2_working``).
* :func:`half_gradient_lowpass`: the coarsest level of the toolbox's morphological pyramid
  (``Pyr_Dec`` with the half-gradient and a 3 x 3 cross), re-expanded with bilinear ``imresize``.
* :func:`bicubic_round_trip`: MATLAB ``imresize(imresize(image, 1 / ratio), ratio)`` (bicubic).

Each operator is local, so the dask variants run it on every chunk extended by real neighbouring
pixels (``map_overlap`` without boundary padding: a chunk on the image edge sees the true edge) and
give the in-memory result. Images are (y, x) or (B, y, x).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from scipy import ndimage

from crossdiff_core import degrade
from crossdiff_core.baselines._arrays import Array, is_lazy

_B3 = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
_B3_HALF = len(_B3) // 2
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def _levels(ratio: int) -> int:
    return int(np.ceil(np.log2(ratio)))


def _b3_valid(signal: np.ndarray, axis: int) -> np.ndarray:
    """The B3 filter where it fits entirely inside ``signal``: 4 samples shorter along ``axis``."""
    length = signal.shape[axis] - 2 * _B3_HALF
    taps = [np.take(signal, np.arange(k, k + length), axis=axis) for k in range(len(_B3))]
    return sum(weight * tap for weight, tap in zip(_B3, taps, strict=True))


def _approximation_1d(signal: np.ndarray, axis: int, levels: int) -> np.ndarray:
    pad = [(0, 0)] * signal.ndim
    pad[axis] = (2 * _B3_HALF, 2 * _B3_HALF)
    for _ in range(levels):  # decomposition: extend by 4, filter, 2 samples gained each side
        signal = _b3_valid(np.pad(signal, pad, mode="symmetric"), axis)
    for _ in range(levels):  # reconstruction of the approximation alone: 2 samples lost each side
        signal = _b3_valid(signal, axis)
    return signal


def _wavelet_approximation_np(image: np.ndarray, levels: int) -> np.ndarray:
    # The 2-D transform is separable: rows and columns are independent 1-D passes.
    return _approximation_1d(_approximation_1d(image, -1, levels), -2, levels)


def wavelet_approximation(image: Array, ratio: int) -> Array:
    """Approximation (low-pass) of the toolbox's undecimated B3 wavelet transform, same shape.

    The DC gain is 1: the toolbox's sqrt(2) filter scalings and its division by 4 cancel.
    """
    levels = _levels(ratio)
    if not is_lazy(image):
        return _wavelet_approximation_np(np.asarray(image, dtype=np.float64), levels)
    # Border effects reach 4 pixels per level inward; beyond that the filter is shift-invariant.
    return _map_local(image, _wavelet_approximation_np, depth=4 * levels, levels=levels)


def _half_gradient_lowpass_np(image: np.ndarray, ratio: int) -> np.ndarray:
    if image.ndim == 3:
        return np.stack([_half_gradient_lowpass_np(band, ratio) for band in image])
    sizes = [image.shape]
    level = image
    for step in range(_levels(ratio)):
        # Half-gradient smoothing = mean of the dilation and the erosion (flat 3 x 3 cross; the
        # cross contains its centre, so edge replication equals ignoring outside pixels).
        smooth = 0.5 * (
            ndimage.grey_dilation(level, footprint=_CROSS, mode="nearest")
            + ndimage.grey_erosion(level, footprint=_CROSS, mode="nearest")
        )
        start = 1 if step == 0 else 0  # the toolbox keeps odd pixels first, then even ones
        level = smooth[start::2, start::2]
        sizes.append(level.shape)
    for size in sizes[-2::-1]:
        level = _resize_bilinear(level, size)
    return level


def half_gradient_lowpass(image: Array, ratio: int) -> Array:
    """Coarsest level of the morphological half-gradient pyramid at full size (the MF low-pass).

    ``ceil(log2 ratio)`` reductions by 2, each re-expanded to the previous level's size.
    """
    if not is_lazy(image):
        return _half_gradient_lowpass_np(np.asarray(image, dtype=np.float64), ratio)
    block = 2 ** _levels(ratio)  # chunks must start on the pyramid's sampling phase
    return _map_local(
        image, _half_gradient_lowpass_np, depth=4 * block, ratio=ratio, multiple=block
    )


def _bilinear_matrix(in_len: int, out_len: int) -> np.ndarray:
    """(out_len, in_len) weights of MATLAB ``imresize(..., [out_len ...], 'bilinear')`` enlarging
    one axis (triangle kernel, mirrored borders)."""
    scale = out_len / in_len
    centre = np.arange(1, out_len + 1) / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based input
    indices = np.floor(centre - 1.0)[:, None] + np.arange(4)[None, :]
    weights = np.maximum(0.0, 1.0 - np.abs(centre[:, None] - indices))
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), 4), cols.ravel()), weights.ravel())
    return matrix


def _resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if size[0] < image.shape[0] or size[1] < image.shape[1]:
        raise ValueError("bilinear resize here only enlarges")
    rows = _bilinear_matrix(image.shape[0], size[0])
    cols = _bilinear_matrix(image.shape[1], size[1])
    return rows @ image @ cols.T


def _bicubic_round_trip_np(image: np.ndarray, ratio: int) -> np.ndarray:
    return degrade.imresize_bicubic(degrade.imresize_bicubic(image, 1.0 / ratio), ratio)


def bicubic_round_trip(image: Array, ratio: int) -> Array:
    """MATLAB ``imresize(imresize(image, 1 / ratio), ratio)``, bicubic: same shape, float64."""
    if not is_lazy(image):
        return _bicubic_round_trip_np(np.asarray(image, dtype=np.float64), ratio)
    small = degrade.imresize_shrink_dask(image, ratio)
    # The enlarging cubic reads 2 small pixels each side; 3 of real (or mirrored) data cover it.
    depth = 3
    small = _align_chunks(small, depth, multiple=1)
    axes = (small.ndim - 2, small.ndim - 1)
    # dask's 'reflect' mirrors including the edge sample, as MATLAB's imresize does.
    extended = da.overlap.overlap(
        small, depth=dict.fromkeys(axes, depth), boundary=dict.fromkeys(axes, "reflect")
    )
    trim = depth * ratio

    def enlarge(block: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(
            degrade.imresize_bicubic(block, ratio)[..., trim:-trim, trim:-trim])

    chunks = (*small.chunks[:-2], *(tuple(c * ratio for c in ch) for ch in small.chunks[-2:]))
    return extended.map_blocks(enlarge, chunks=chunks, dtype=np.float64)


def _map_local(image: da.Array, function, depth: int, multiple: int = 1, **kwargs) -> da.Array:
    """``function`` on every chunk plus ``depth`` real pixels of its neighbours (none beyond the
    image edge, where the function's own border rule applies), trimmed back to the chunk."""
    image = _align_chunks(image.astype(np.float64), depth, multiple)
    axes = (image.ndim - 2, image.ndim - 1)
    if image.ndim == 3:
        image = image.rechunk({0: -1})
    # An axis in one chunk needs no overlap (and a small image may be shorter than the depth).
    depths = {axis: depth if image.numblocks[axis] > 1 else 0 for axis in axes}
    return image.map_overlap(function, depth=depths, boundary="none", dtype=np.float64, **kwargs)


def _align_chunks(image: da.Array, depth: int, multiple: int) -> da.Array:
    """Rechunk the spatial axes, where needed, so that every chunk starts at a multiple of
    ``multiple`` and holds at least ``depth`` pixels (unless the axis is shorter)."""
    new_chunks = {}
    for axis in (image.ndim - 2, image.ndim - 1):
        chunks = image.chunks[axis]
        if all(c % multiple == 0 for c in chunks[:-1]) and min(chunks) >= depth:
            continue
        size = max(-(-depth // multiple) * multiple, (max(chunks) // multiple) * multiple)
        sizes = [size] * (image.shape[axis] // size)
        rest = image.shape[axis] - sum(sizes)
        if rest >= depth or not sizes:
            sizes.append(rest)
        elif rest:
            sizes[-1] += rest  # a short tail joins the chunk before it
        new_chunks[axis] = tuple(sizes)
    return image.rechunk(new_chunks) if new_chunks else image
