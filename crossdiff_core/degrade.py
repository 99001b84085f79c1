"""Sensor MTF filters, Wald-protocol degradation and the resamplers of the pansharpening toolbox.

Everything here reproduces the reference MATLAB toolbox numerically (held to it by
``tests/test_degrade.py``): Gaussian MTF kernels windowed by ``fwind1`` with a Kaiser window,
``imfilter`` with replicate borders, MATLAB ``imresize`` (bicubic, antialiased) and the 23-tap
``interp23tap`` upsampler. Numpy arrays are ``(band, y, x)`` for MS-like data and ``(y, x)`` for
PAN. The ``*_dask`` variants compute the same result chunk by chunk on dask arrays (exact: the
overlaps cover each filter's support).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from scipy import ndimage, signal

from crossdiff_core.sensors import Sensor, get_sensor

MTF_KERNEL_SIZE = 41
KAISER_BETA = 0.5  # MATLAB's kaiser(N) default
# Half of the toolbox's 23-tap interpolator (centre tap first; a half-band filter).
_CDF23_HALF = 2.0 * np.array([
    0.5, 0.305334091185, 0.0, -0.072698593239, 0.0, 0.021809577942, 0.0, -0.005192756653, 0.0,
    0.000807762146, 0.0, -0.000060081482,
])
CDF23 = np.concatenate([_CDF23_HALF[:0:-1], _CDF23_HALF])
# MS pixels of overlap covering interp23tap's support over all x2 stages (11/2 + 11/4 + ...).
_INTERP_DEPTH = 12


def _resolve(sensor: str | Sensor, ratio: int, n_bands: int | None) -> Sensor:
    """Registry entry for ``sensor``; ``generic``/``none`` gets the toolbox fallback gains."""
    _check_ratio(ratio)
    if isinstance(sensor, Sensor):
        return sensor
    if sensor.strip().lower() in ("generic", "none", ""):
        return get_sensor(sensor, ratio=ratio, n_bands=n_bands if n_bands is not None else 1)
    return get_sensor(sensor, n_bands=n_bands)


def _check_ratio(ratio: int) -> None:
    if isinstance(ratio, bool) or int(ratio) != ratio or ratio < 2:
        raise ValueError(f"ratio must be an integer >= 2, got {ratio!r}")


def gaussian_mtf_kernel(gain_nyquist: float, ratio: int, size: int = MTF_KERNEL_SIZE,
                        width_taps: int | None = None) -> np.ndarray:
    """One (size, size) FIR filter whose frequency response is a Gaussian with ``gain_nyquist``
    at the MS Nyquist frequency, designed as the toolbox does (``fwind1``, rotated Kaiser window).

    The kernel is not normalised (its sum is slightly below 1 and it has tiny negative lobes),
    exactly as the toolbox uses it. ``width_taps`` (default size - 1) is the tap count in the
    Gaussian width formula: the toolbox's MTF uses size - 1, its ``LPfilterGauss`` uses size.
    """
    _check_ratio(ratio)
    if not 0.0 < gain_nyquist < 1.0:
        raise ValueError(f"MTF gain at Nyquist must lie in (0, 1), got {gain_nyquist!r}")
    if size < 3 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and >= 3, got {size!r}")
    fcut = 1.0 / ratio
    taps = size - 1 if width_taps is None else width_taps
    alpha = np.sqrt((taps * fcut / 2.0) ** 2 / (-2.0 * np.log(gain_nyquist)))
    grid = np.arange(size) - (size - 1) / 2.0
    gx, gy = np.meshgrid(grid, grid)
    # Desired frequency response: a Gaussian with peak 1 sampled on the frequency grid.
    response = np.exp(-(gx**2 + gy**2) / (2.0 * alpha**2))
    # fsamp2: impulse response from the frequency samples (centred, rotated as MATLAB does).
    impulse = np.rot90(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(response))).real, 2)
    # fwind1 with one 1-D window: rotate it into a circular 2-D window, zero outside radius 1.
    window_1d = np.kaiser(size, KAISER_BETA)
    t = np.linspace(-1.0, 1.0, size)
    radius = np.hypot(*np.meshgrid(t, t))
    window = np.interp(radius.ravel(), t, window_1d).reshape(size, size)
    window[radius > 1.0] = 0.0
    return impulse * window


def lowpass_gauss_kernel(ratio: int, gain_nyquist: float = 0.3,
                         size: int = MTF_KERNEL_SIZE) -> np.ndarray:
    """The toolbox's sensor-independent Gaussian low-pass (``LPfilterGauss``): (size, size).

    Used by the baselines to match PAN contrast to the MS and to bring the PAN to MS scale.
    """
    return gaussian_mtf_kernel(gain_nyquist, ratio, size, width_taps=size)


def mtf_kernels(sensor: str | Sensor, ratio: int, n_bands: int | None = None,
                size: int = MTF_KERNEL_SIZE) -> np.ndarray:
    """MS MTF kernels of a sensor, one per band: (B, size, size).

    ``n_bands`` selects a band subset where the registry allows it (4-band products of 8-band
    sensors) and is required for ``generic``.
    """
    spec = _resolve(sensor, ratio, n_bands)
    return np.stack([gaussian_mtf_kernel(g, ratio, size) for g in spec.mtf_gains_ms])


def pan_mtf_kernel(sensor: str | Sensor, ratio: int, size: int = MTF_KERNEL_SIZE) -> np.ndarray:
    """PAN MTF kernel of a sensor: (size, size)."""
    spec = _resolve(sensor, ratio, None)
    return gaussian_mtf_kernel(spec.mtf_gain_pan, ratio, size)


def _check_ms(ms: np.ndarray, name: str = "ms") -> np.ndarray:
    ms = np.asarray(ms)
    if ms.ndim != 3:
        raise ValueError(f"{name} must be (band, y, x), got shape {ms.shape}")
    if not np.issubdtype(ms.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {ms.dtype}")
    return ms


def filter_bands(ms: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Correlate each band with its own kernel, replicate borders (MATLAB imfilter 'replicate').

    ms: (B, y, x); kernels: (B, k, k) or (k, k) shared. Returns float64 (B, y, x).
    """
    ms = _check_ms(ms).astype(np.float64, copy=False)
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim == 2:
        kernels = np.broadcast_to(kernels, (ms.shape[0], *kernels.shape))
    if kernels.shape[0] != ms.shape[0]:
        raise ValueError(f"{kernels.shape[0]} kernels for {ms.shape[0]} bands")
    half = kernels.shape[-1] // 2
    # fwind1 kernels are not separable: a 2-D correlation per band, done by FFT on the
    # edge-replicated image (replicate borders), which is exact to rounding and far faster.
    padded = np.pad(ms, ((0, 0), (half, half), (half, half)), mode="edge")
    return signal.fftconvolve(padded, kernels[:, ::-1, ::-1], mode="valid", axes=(1, 2))


def mtf_filter(ms: np.ndarray, sensor: str | Sensor, ratio: int) -> np.ndarray:
    """Low-pass each band with the sensor's MS MTF kernel, replicate borders.

    ms: (B, y, x) -> (B, y, x) float64.
    """
    ms = _check_ms(ms)
    return filter_bands(ms, mtf_kernels(sensor, ratio, n_bands=ms.shape[0]))


def decimate(image: np.ndarray, ratio: int) -> np.ndarray:
    """Keep every ratio-th sample starting at ratio // 2 (MATLAB imresize 'nearest', 1/ratio).

    image: (..., y, x) with y and x multiples of ratio -> (..., y / ratio, x / ratio).
    """
    _check_ratio(ratio)
    if image.shape[-1] % ratio or image.shape[-2] % ratio:
        raise ValueError(f"image size {image.shape[-2:]} is not a multiple of ratio {ratio}")
    offset = ratio // 2
    return image[..., offset::ratio, offset::ratio]


def _upsample_x2(ms: np.ndarray, phase: int) -> np.ndarray:
    """One interp23tap stage: zeros inserted at ``phase``, 23-tap filter, circular borders."""
    bands, rows, cols = ms.shape
    up = np.zeros((bands, 2 * rows, 2 * cols))
    up[:, phase::2, phase::2] = ms
    up = ndimage.correlate1d(up, CDF23, axis=1, mode="wrap")
    return ndimage.correlate1d(up, CDF23, axis=2, mode="wrap")


def interp23tap(ms: np.ndarray, ratio: int) -> np.ndarray:
    """Upsample by ratio (2, 4 or 8) with the toolbox's 23-tap interpolator, circular borders.

    ms: (B, y, x) -> (B, y * ratio, x * ratio) float64. MS pixel j lands on output pixel
    ratio * j + ratio / 2 (the toolbox phase).
    """
    ms = _check_ms(ms).astype(np.float64, copy=False)
    if ratio not in (2, 4, 8):
        raise ValueError(f"interp23tap supports ratios 2, 4 and 8, got {ratio!r}")
    for stage in range(int(np.log2(ratio))):
        # The first stage puts samples on odd positions, later ones on even: the toolbox's phase.
        ms = _upsample_x2(ms, 1 if stage == 0 else 0)
    return ms


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1.0) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def _resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """Dense (out_len, in_len) weights of MATLAB imresize bicubic along one axis (antialiased when
    shrinking, symmetric border handling)."""
    width = 4.0
    if scale < 1:
        def kernel(x):
            return scale * _cubic(scale * x)
        width /= scale
    else:
        kernel = _cubic
    out_pos = np.arange(1, out_len + 1, dtype=np.float64)
    centre = out_pos / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based input coordinate
    left = np.floor(centre - width / 2.0)
    taps = int(np.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(centre[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    # Out-of-range taps read the mirrored image including the edge sample.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps), cols.ravel()), weights.ravel())
    return matrix


def imresize_bicubic(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(image, scale)`` (bicubic, antialiased when shrinking) on the last two axes.

    image: (y, x) or (B, y, x) -> (..., ceil(y * scale), ceil(x * scale)) float64.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (y, x) or (band, y, x), got shape {image.shape}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    rows, cols = image.shape[-2:]
    out_rows, out_cols = int(np.ceil(rows * scale)), int(np.ceil(cols * scale))
    row_matrix = _resize_matrix(rows, out_rows, scale)
    col_matrix = _resize_matrix(cols, out_cols, scale)
    # MATLAB resizes rows first; the order only changes rounding.
    return np.matmul(np.matmul(row_matrix, image), col_matrix.T)


def wald_degrade(ms: np.ndarray, pan: np.ndarray, ratio: int,
                 sensor: str | Sensor) -> tuple[np.ndarray, np.ndarray]:
    """Wald-protocol pair: MS MTF-filtered and decimated, PAN bicubic-resized by 1 / ratio.

    ms: (B, h, w), pan: (ratio * h, ratio * w) -> (ms_lr (B, h / ratio, w / ratio),
    pan_lr (h, w)), both float64, as the toolbox's ``resize_images``.
    """
    ms = _check_ms(ms)
    pan = np.asarray(pan)
    if pan.ndim != 2:
        raise ValueError(f"pan must be (y, x), got shape {pan.shape}")
    if pan.shape != (ms.shape[1] * ratio, ms.shape[2] * ratio):
        raise ValueError(f"pan shape {pan.shape} is not ratio {ratio} x ms shape {ms.shape[1:]}")
    ms_lr = decimate(mtf_filter(ms, sensor, ratio), ratio)
    pan_lr = imresize_bicubic(pan, 1.0 / ratio)
    return ms_lr, pan_lr


# --- chunk-wise variants for whole scenes -------------------------------------------------------

def _spatial_depth(arr: da.Array, depth: int) -> dict[int, int]:
    return {arr.ndim - 2: depth, arr.ndim - 1: depth}


def _require_chunk_multiple(arr: da.Array, multiple: int) -> da.Array:
    """Rechunk the spatial axes so every chunk but the last is a multiple of ``multiple``."""
    chunks = []
    for axis_chunks in arr.chunks[-2:]:
        if all(c % multiple == 0 for c in axis_chunks[:-1]):
            chunks.append(axis_chunks)
        else:
            size = max(multiple, (max(axis_chunks) // multiple) * multiple)
            chunks.append(size)
    if len(arr.chunks) == 3:
        return arr.rechunk({1: chunks[0], 2: chunks[1]})
    return arr.rechunk({0: chunks[0], 1: chunks[1]})


def _min_chunk(arr: da.Array, depth: int) -> da.Array:
    """Ensure chunks are at least ``depth`` deep (map_overlap needs it)."""
    if min(min(c) for c in arr.chunks[-2:]) >= depth:
        return arr
    size = max(depth, 256)
    return arr.rechunk({arr.ndim - 2: size, arr.ndim - 1: size})


def mtf_filter_dask(ms: da.Array, sensor: str | Sensor, ratio: int) -> da.Array:
    """:func:`mtf_filter` chunk by chunk: ms (B, y, x) dask -> same shape float64 dask."""
    if ms.ndim != 3:
        raise ValueError(f"ms must be (band, y, x), got shape {ms.shape}")
    kernels = mtf_kernels(sensor, ratio, n_bands=ms.shape[0])
    depth = kernels.shape[-1] // 2
    ms = _min_chunk(ms.rechunk({0: -1}), depth).astype(np.float64)
    return ms.map_overlap(filter_bands, kernels=kernels, depth=_spatial_depth(ms, depth),
                          boundary="nearest", dtype=np.float64)


def interp23tap_dask(ms: da.Array, ratio: int) -> da.Array:
    """:func:`interp23tap` chunk by chunk: (B, y, x) -> (B, y * ratio, x * ratio) float64."""
    if ms.ndim != 3:
        raise ValueError(f"ms must be (band, y, x), got shape {ms.shape}")
    if ratio not in (2, 4, 8):
        raise ValueError(f"interp23tap supports ratios 2, 4 and 8, got {ratio!r}")
    ms = _min_chunk(ms.rechunk({0: -1}), _INTERP_DEPTH).astype(np.float64)
    # 'periodic' reproduces the circular border at the scene edges; inside, overlaps are real data.
    # An axis in one chunk needs no overlap (interp23tap's own borders are circular), and a small
    # image may be shorter than the overlap, which dask refuses.
    depth = {axis: _INTERP_DEPTH if ms.numblocks[axis] > 1 else 0 for axis in (1, 2)}
    extended = da.overlap.overlap(ms, depth=depth, boundary={1: "periodic", 2: "periodic"})
    rows, cols = (slice(depth[axis] * ratio, -depth[axis] * ratio or None) for axis in (1, 2))

    def upsample_block(block: np.ndarray) -> np.ndarray:
        # A copy: a view would keep the whole extended block alive as long as the chunk.
        return np.ascontiguousarray(interp23tap(block, ratio)[:, rows, cols])

    out_chunks = (ms.chunks[0], tuple(c * ratio for c in ms.chunks[1]),
                  tuple(c * ratio for c in ms.chunks[2]))
    return extended.map_blocks(upsample_block, chunks=out_chunks, dtype=np.float64)


def _shrink_block(block: np.ndarray, ratio: int, trim: int) -> np.ndarray:
    out = imresize_bicubic(block, 1.0 / ratio)
    return np.ascontiguousarray(out[..., trim:-trim, trim:-trim])


def imresize_shrink_dask(image: da.Array, ratio: int) -> da.Array:
    """:func:`imresize_bicubic` by 1 / ratio chunk by chunk on the last two axes of a dask array."""
    _check_ratio(ratio)
    if image.shape[-1] % ratio or image.shape[-2] % ratio:
        raise ValueError(f"image size {image.shape[-2:]} is not a multiple of ratio {ratio}")
    trim_lr = 3  # low-resolution pixels: the antialiased cubic spans 2 of them each side
    depth = trim_lr * ratio
    image = _min_chunk(_require_chunk_multiple(image, ratio), depth).astype(np.float64)
    image = _require_chunk_multiple(image, ratio)
    # dask's 'reflect' mirrors including the edge sample, as MATLAB's imresize does.
    extended = da.overlap.overlap(image, depth=_spatial_depth(image, depth),
                                  boundary={image.ndim - 2: "reflect", image.ndim - 1: "reflect"})
    lead = image.chunks[:-2]
    out_chunks = (*lead, *(tuple(c // ratio for c in ch) for ch in image.chunks[-2:]))
    return extended.map_blocks(_shrink_block, ratio=ratio, trim=trim_lr, chunks=out_chunks,
                               dtype=np.float64)


def decimate_dask(image: da.Array, ratio: int) -> da.Array:
    """:func:`decimate` chunk by chunk (chunks are first aligned to multiples of ratio)."""
    _check_ratio(ratio)
    if image.shape[-1] % ratio or image.shape[-2] % ratio:
        raise ValueError(f"image size {image.shape[-2:]} is not a multiple of ratio {ratio}")
    image = _require_chunk_multiple(image, ratio)
    lead = image.chunks[:-2]
    out_chunks = (*lead, *(tuple(c // ratio for c in ch) for ch in image.chunks[-2:]))
    return image.map_blocks(_decimate_block, ratio=ratio, chunks=out_chunks, dtype=image.dtype)


def _decimate_block(block: np.ndarray, ratio: int) -> np.ndarray:
    # A copy: the strided view would keep the whole full-resolution block alive.
    return np.ascontiguousarray(decimate(block, ratio))


def wald_degrade_dask(ms: da.Array, pan: da.Array, ratio: int,
                      sensor: str | Sensor) -> tuple[da.Array, da.Array]:
    """:func:`wald_degrade` chunk by chunk on dask arrays (lazy; same values as the numpy path)."""
    if ms.ndim != 3 or pan.ndim != 2:
        raise ValueError(f"need ms (band, y, x) and pan (y, x), got {ms.shape} and {pan.shape}")
    if pan.shape != (ms.shape[1] * ratio, ms.shape[2] * ratio):
        raise ValueError(f"pan shape {pan.shape} is not ratio {ratio} x ms shape {ms.shape[1:]}")
    ms_lr = decimate_dask(mtf_filter_dask(ms, sensor, ratio), ratio)
    return ms_lr, imresize_shrink_dask(pan, ratio)

