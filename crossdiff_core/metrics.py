"""Pansharpening quality indices, computed exactly as the reference MATLAB code computes them.

Reduced resolution (a reference exists): :func:`sam`, :func:`ergas`, :func:`q_index`, :func:`q2n`,
:func:`scc`. Full resolution (no reference): :func:`qnr`, :func:`hqnr`, :func:`d_rho` and the
Scarpa/Ciotola consistency indices :func:`full_resolution_consistency`. Each index's docstring
gives its definition; ``tests/test_metrics.py`` holds every index to the reference code's values
(``tests/data/golden``).

MS-like arrays are numpy ``(band, y, x)`` in DN units, PAN is ``(y, x)``. Every index is vectorised
(no Python loop over pixels or blocks). Bad input raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from crossdiff_core.degrade import (
    filter_bands,
    imresize_bicubic,
    interp23tap,
    mtf_filter,
    mtf_kernels,
)
from crossdiff_core.sensors import Sensor

UINT16_MAX = 65535


# --- input checks ---------------------------------------------------------------------------------

def _as_image(array, name: str, ndim: int, nonnegative: bool = False) -> np.ndarray:
    what = "(band, y, x)" if ndim == 3 else "(y, x)"
    try:
        image = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array {what}: {err}") from err
    if image.ndim != ndim:
        raise ValueError(f"{name} must be {what}, got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if not np.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or inf: mask or fill them before scoring")
    if nonnegative and (image < 0).any():
        raise ValueError(f"{name} has negative values ({image.min():g}); DN are expected "
                         "(non-negative): undo any offset or normalisation first")
    return image


def _pair(reference, fused) -> tuple[np.ndarray, np.ndarray]:
    reference = _as_image(reference, "reference", 3, nonnegative=True)
    fused = _as_image(fused, "fused", 3)
    if reference.shape != fused.shape:
        raise ValueError(f"reference {reference.shape} and fused {fused.shape} differ in shape")
    return reference, fused


def _check_ratio(ratio: int) -> int:
    if isinstance(ratio, bool) or int(ratio) != ratio or ratio < 1:
        raise ValueError(f"ratio must be a positive integer, got {ratio!r}")
    return int(ratio)


def _check_block(shape: tuple[int, ...], block_size: int, name: str) -> None:
    if isinstance(block_size, bool) or int(block_size) != block_size or block_size < 2:
        raise ValueError(f"block_size must be an integer >= 2, got {block_size!r}")
    if min(shape[-2:]) < block_size:
        raise ValueError(f"{name} is {shape[-2]} x {shape[-1]} pixels, smaller than one "
                         f"{block_size} x {block_size} block: use a larger crop or block_size")


def _full_resolution_inputs(fused, ms, pan, ratio: int) -> tuple[np.ndarray, ...]:
    ratio = _check_ratio(ratio)
    fused = _as_image(fused, "fused", 3)
    ms = _as_image(ms, "ms", 3, nonnegative=True)
    pan = _as_image(pan, "pan", 2, nonnegative=True)
    if fused.shape[0] != ms.shape[0]:
        raise ValueError(f"fused has {fused.shape[0]} bands but ms has {ms.shape[0]}")
    if pan.shape != (ms.shape[1] * ratio, ms.shape[2] * ratio):
        raise ValueError(f"pan shape {pan.shape} is not ratio {ratio} x ms shape {ms.shape[1:]}: "
                         "the grids must nest (crop the PAN or the MS)")
    if fused.shape[1:] != pan.shape:
        raise ValueError(f"fused {fused.shape[1:]} and pan {pan.shape} differ in size")
    return fused, ms, pan, ratio


# --- reduced resolution ---------------------------------------------------------------------------

def sam(reference: np.ndarray, fused: np.ndarray) -> float:
    """Spectral angle mapper in degrees: mean angle between pixel vectors (B, y, x).

    Pixels where either vector has zero norm are left out of both the sum and the count.
    """
    reference, fused = _pair(reference, fused)
    dot = np.einsum("byx,byx->yx", reference, fused)
    norms = np.sqrt(np.einsum("byx,byx->yx", reference, reference)
                    * np.einsum("byx,byx->yx", fused, fused))
    valid = norms > 0
    if not valid.any():
        raise ValueError("every pixel of reference or fused is zero: SAM is undefined")
    cosine = np.clip(dot[valid] / norms[valid], -1.0, 1.0)  # acos of 1 + rounding -> real part
    return float(np.degrees(np.arccos(cosine).mean()))


def ergas(reference: np.ndarray, fused: np.ndarray, ratio: int) -> float:
    """ERGAS = (100 / ratio) sqrt(mean_b RMSE_b^2 / mu_b^2), mu_b the reference band mean."""
    ratio = _check_ratio(ratio)
    reference, fused = _pair(reference, fused)
    band_means = reference.mean(axis=(1, 2))
    if (band_means == 0).any():
        raise ValueError("a reference band has zero mean: ERGAS is undefined")
    mse = ((reference - fused) ** 2).mean(axis=(1, 2))
    return float(100.0 / ratio * np.sqrt(np.mean(mse / band_means**2)))


def _box_sum_valid(image: np.ndarray, size: int) -> np.ndarray:
    """Sums over every full size x size window of the last two axes ('valid').

    A running sum per axis (scipy's moving average, times the window size): linear in the
    image size whatever the window, and exact to rounding.
    """
    for axis in (image.ndim - 2, image.ndim - 1):
        length = image.shape[axis]
        moving = ndimage.uniform_filter1d(image, size, axis=axis, mode="constant") * size
        # The window of output i starts size // 2 samples before i: full windows start there.
        index = [slice(None)] * image.ndim
        index[axis] = slice(size // 2, size // 2 + length - size + 1)
        image = moving[tuple(index)]
    return image


def _uiqi_from_sums(n: int, sum_x, sum_y, sum_xx, sum_yy, sum_xy) -> np.ndarray:
    """Wang-Bovik Q from window sums, with the reference code's rules for flat windows."""
    product_of_sums = sum_x * sum_y
    squares_of_sums = sum_x**2 + sum_y**2
    numerator = 4.0 * (n * sum_xy - product_of_sums) * product_of_sums
    variance_term = n * (sum_xx + sum_yy) - squares_of_sums
    denominator = variance_term * squares_of_sums
    quality = np.ones_like(denominator)
    flat = (variance_term == 0) & (squares_of_sums != 0)
    quality[flat] = 2.0 * product_of_sums[flat] / squares_of_sums[flat]
    regular = denominator != 0
    quality[regular] = numerator[regular] / denominator[regular]
    return quality


def q_index(reference: np.ndarray, fused: np.ndarray, block_size: int = 32) -> float:
    """Q (UIQI) on a sliding block_size window, full windows only, averaged over map and bands."""
    reference, fused = _pair(reference, fused)
    _check_block(reference.shape, block_size, "reference")
    sums = [_box_sum_valid(a, block_size) for a in
            (reference, fused, reference**2, fused**2, reference * fused)]
    return float(_uiqi_from_sums(block_size**2, *sums).mean(axis=(1, 2)).mean())


def _to_uint16_dn(image: np.ndarray) -> np.ndarray:
    """MATLAB uint16(): round half away from zero and saturate to [0, 65535]."""
    return np.floor(np.clip(image, 0.0, UINT16_MAX) + 0.5)


def _conjugate(onion: np.ndarray) -> np.ndarray:
    return np.concatenate([onion[:1], -onion[1:]])


def _onion_multiply(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cayley-Dickson product of hypercomplex numbers stored along axis 0 (2^k components),
    written as the reference code recurses (sign conventions included)."""
    n = left.shape[0]
    if n == 1:
        return left * right
    half = n // 2
    a, b = left[:half], _conjugate(left[half:])
    c, d = right[:half], _conjugate(right[half:])
    if n == 2:
        return np.concatenate([a * c - d * b, a * d + c * b])
    first = _onion_multiply(a, c) - _onion_multiply(d, _conjugate(b))
    second = _onion_multiply(_conjugate(a), d) + _onion_multiply(c, b)
    return np.concatenate([first, second])


def _onion_quality(reference: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Hypercomplex Q of every block: (C, n_blocks, S, S) pairs -> (C, n_blocks) components."""
    size = reference.shape[-1] * reference.shape[-2]
    unbiased = size / (size - 1.0)
    fused = _conjugate(fused)
    mean = reference.mean(axis=(-2, -1), keepdims=True)
    std = reference.std(axis=(-2, -1), ddof=1, keepdims=True)
    std = np.where(std == 0, np.finfo(np.float64).eps, std)
    reference = (reference - mean) / std + 1.0
    # Fused blocks take the reference block's statistics; a zero-mean reference block is only
    # shifted (the reference code skips the division there).
    scale = np.where(mean == 0, 1.0, std)
    sign = np.ones((fused.shape[0], 1, 1, 1))
    sign[1:] = -1.0  # components 2.. are conjugated: normalise the original, then conjugate again
    fused = sign * ((sign * fused - mean) / scale + 1.0)

    mean_ref = reference.mean(axis=(-2, -1))
    mean_fus = fused.mean(axis=(-2, -1))
    norm_mean_ref = np.sqrt((mean_ref**2).sum(axis=0))
    norm_mean_fus = np.sqrt((mean_fus**2).sum(axis=0))
    power_ref = unbiased * (reference**2).sum(axis=0).mean(axis=(-2, -1))
    power_fus = unbiased * (fused**2).sum(axis=0).mean(axis=(-2, -1))
    spread = power_ref + power_fus - unbiased * (norm_mean_ref**2 + norm_mean_fus**2)
    mean_bias = 2.0 * norm_mean_ref * norm_mean_fus / (norm_mean_ref**2 + norm_mean_fus**2)

    covariance = (unbiased * _onion_multiply(reference, fused).mean(axis=(-2, -1))
                  - unbiased * _onion_multiply(mean_ref, mean_fus))
    safe_spread = np.where(spread == 0, 1.0, spread)
    quality = 2.0 * covariance * mean_bias / safe_spread
    # Flat block pairs: the reference code returns the mean bias in the last component only.
    flat_value = np.zeros_like(quality)
    flat_value[-1] = mean_bias
    return np.where(spread == 0, flat_value, quality)


def q2n(reference: np.ndarray, fused: np.ndarray, block_size: int = 32, shift: int = 32) -> float:
    """Q2n (Q4, Q8, ...): hypercomplex UIQI on block_size blocks every ``shift`` pixels.

    Both images are cast to uint16 DN first (as the reference code does: negative fused values
    become 0); sizes that are not a multiple of the blocks are mirror-padded ('symmetric'); bands
    are zero-padded to a power of two.
    """
    reference, fused = _pair(reference, fused)
    _check_block(reference.shape, block_size, "reference")
    if isinstance(shift, bool) or int(shift) != shift or not 1 <= shift <= block_size:
        raise ValueError(f"shift must be an integer in [1, block_size], got {shift!r}")
    return _q2n(reference, fused, block_size, shift)


def _q2n(reference: np.ndarray, fused: np.ndarray, block_size: int, shift: int) -> float:
    """Q2n on checked float64 arrays (derived references such as interp23tap(MS) may ring slightly
    below zero; the uint16 cast clips them as the reference code does)."""
    rows, cols = reference.shape[1:]
    steps_y, steps_x = -(-rows // shift), -(-cols // shift)
    pad_y = (steps_y - 1) * shift + block_size - rows
    pad_x = (steps_x - 1) * shift + block_size - cols
    padding = ((0, 0), (0, max(pad_y, 0)), (0, max(pad_x, 0)))
    reference = _to_uint16_dn(np.pad(reference, padding, mode="symmetric"))
    fused = _to_uint16_dn(np.pad(fused, padding, mode="symmetric"))
    n_bands = reference.shape[0]
    n_components = 1 << int(np.ceil(np.log2(n_bands)))
    if n_components > n_bands:
        extra = ((0, n_components - n_bands), (0, 0), (0, 0))
        reference, fused = np.pad(reference, extra), np.pad(fused, extra)

    def blocks(image: np.ndarray) -> np.ndarray:
        windows = np.lib.stride_tricks.sliding_window_view(image, (block_size, block_size),
                                                           axis=(1, 2))
        windows = windows[:, ::shift, ::shift][:, :steps_y, :steps_x]
        return windows.reshape(image.shape[0], -1, block_size, block_size)

    quality = _onion_quality(blocks(reference), blocks(fused))
    return float(np.sqrt((quality**2).sum(axis=0)).mean())


def _sobel_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of each band's interior (borders dropped, then zero-padded)."""
    interior = image[:, 1:-1, 1:-1]
    # The 3 x 3 Sobel kernels are separable (a derivative and a [1, 2, 1] smoothing); zero
    # padding as MATLAB's imfilter default. The sign is irrelevant to the magnitude.
    derivative, smoothing = np.array([-1.0, 0.0, 1.0]), np.array([1.0, 2.0, 1.0])

    def along(data: np.ndarray, across: np.ndarray, down: np.ndarray) -> np.ndarray:
        data = ndimage.correlate1d(data, down, axis=1, mode="constant")
        return ndimage.correlate1d(data, across, axis=2, mode="constant")

    return np.hypot(along(interior, smoothing, derivative), along(interior, derivative, smoothing))


def scc(reference: np.ndarray, fused: np.ndarray) -> float:
    """Spatial correlation coefficient: global correlation of Sobel magnitudes, no mean removal."""
    reference, fused = _pair(reference, fused)
    if min(reference.shape[1:]) < 3:
        raise ValueError(f"reference is {reference.shape[1:]}: SCC needs at least 3 x 3 pixels")
    grad_ref, grad_fus = _sobel_magnitude(reference), _sobel_magnitude(fused)
    energy = np.sqrt((grad_fus**2).sum() * (grad_ref**2).sum())
    if energy == 0:
        raise ValueError("reference or fused has no spatial detail at all: SCC is undefined")
    return float((grad_fus * grad_ref).sum() / energy)


# --- full resolution ------------------------------------------------------------------------------

def _blocks(image: np.ndarray, block_size: int) -> np.ndarray:
    """Distinct blocks as rows: (..., y, x) -> (..., n_blocks, block_size^2)."""
    rows, cols = image.shape[-2:]
    if rows % block_size or cols % block_size:
        raise ValueError(f"image size {rows} x {cols} is not a multiple of block_size "
                         f"{block_size}: crop it to a multiple (the reference code requires it)")
    shape = (*image.shape[:-2], rows // block_size, block_size, cols // block_size, block_size)
    return np.moveaxis(image.reshape(shape), -3, -2).reshape(
        *image.shape[:-2], -1, block_size * block_size)


def _pairwise_block_uiqi(bands: np.ndarray, block_size: int) -> np.ndarray:
    """Mean block Q (N-1 covariance) of every band pair: (B, y, x) -> (B, B), one matrix product
    per block instead of one pass per pair."""
    blocks = np.ascontiguousarray(np.moveaxis(_blocks(bands, block_size), 0, 1))  # (n, B, N)
    sums = blocks.sum(axis=-1)  # (n, B)
    products = np.matmul(blocks, np.swapaxes(blocks, 1, 2))  # (n, B, B)
    squares = np.diagonal(products, axis1=1, axis2=2)  # (n, B)
    quality = _uiqi_from_sums(blocks.shape[-1], sums[:, :, None], sums[:, None, :],
                              squares[:, :, None], squares[:, None, :], products)
    return quality.mean(axis=0)


def _block_uiqi_with(bands: np.ndarray, other: np.ndarray, block_size: int) -> np.ndarray:
    """Mean block Q of each band with one image: (B, y, x), (y, x) -> (B,)."""
    band_blocks, other_blocks = _blocks(bands, block_size), _blocks(other, block_size)
    sums = (band_blocks.sum(-1), np.broadcast_to(other_blocks.sum(-1), band_blocks.shape[:-1]),
            (band_blocks**2).sum(-1),
            np.broadcast_to((other_blocks**2).sum(-1), band_blocks.shape[:-1]),
            np.einsum("bnp,np->bn", band_blocks, other_blocks))
    # The sums form gives the same Q as the N-1 covariance form (the N-1 factors cancel).
    return _uiqi_from_sums(band_blocks.shape[-1], *sums).mean(axis=-1)


def _d_lambda(fused: np.ndarray, ms_expanded: np.ndarray, block_size: int) -> float:
    n_bands = fused.shape[0]
    if n_bands < 2:
        raise ValueError("D_lambda needs at least two bands")
    first, second = np.triu_indices(n_bands, k=1)
    q_fused = _pairwise_block_uiqi(fused, block_size)[first, second]
    q_ms = _pairwise_block_uiqi(ms_expanded, block_size)[first, second]
    return float(np.abs(q_fused - q_ms).mean())


def _d_s(fused: np.ndarray, ms_expanded: np.ndarray, pan: np.ndarray, ratio: int,
         block_size: int) -> float:
    pan_low = interp23tap(imresize_bicubic(pan, 1.0 / ratio)[None], ratio)[0]
    q_high = _block_uiqi_with(fused, pan, block_size)
    q_low = _block_uiqi_with(ms_expanded, pan_low, block_size)
    return float(np.abs(q_high - q_low).mean())


def qnr(fused: np.ndarray, ms: np.ndarray, pan: np.ndarray, ratio: int,
        block_size: int = 32) -> dict[str, float]:
    """QNR with the toolbox 1.0 options (S = block_size, p = q = alpha = beta = 1).

    fused (B, H, W), ms (B, H / ratio, W / ratio), pan (H, W); H and W multiples of block_size.
    Returns ``{"d_lambda", "d_s", "qnr"}``.
    """
    fused, ms, pan, ratio = _full_resolution_inputs(fused, ms, pan, ratio)
    _check_block(fused.shape, block_size, "fused")
    ms_expanded = interp23tap(ms, ratio)
    d_lambda = _d_lambda(fused, ms_expanded, block_size)
    d_s = _d_s(fused, ms_expanded, pan, ratio, block_size)
    return {"d_lambda": d_lambda, "d_s": d_s, "qnr": (1.0 - d_lambda) * (1.0 - d_s)}


def hqnr(fused: np.ndarray, ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | Sensor,
         block_size: int = 32) -> dict[str, float]:
    """Hybrid QNR: (1 - D_lambda^K)(1 - D_s), D_lambda^K = 1 - Q2n(MSexp, MTF(fused)) at PAN scale.

    Shapes as :func:`qnr`. Returns ``{"d_lambda_k", "d_s", "hqnr"}``.
    """
    fused, ms, pan, ratio = _full_resolution_inputs(fused, ms, pan, ratio)
    _check_block(fused.shape, block_size, "fused")
    ms_expanded = interp23tap(ms, ratio)
    d_lambda_k = 1.0 - _q2n(ms_expanded, mtf_filter(fused, sensor, ratio), block_size,
                            block_size)
    d_s = _d_s(fused, ms_expanded, pan, ratio, block_size)
    return {"d_lambda_k": d_lambda_k, "d_s": d_s, "hqnr": (1.0 - d_lambda_k) * (1.0 - d_s)}


def _box_mean_same(image: np.ndarray, half_width: int) -> np.ndarray:
    """Mean over the 2w x 2w window ending w pixels after each pixel, zero outside the image."""
    padded = np.pad(image, [(0, 0)] * (image.ndim - 2) + [(half_width, half_width)] * 2)
    return _box_sum_valid(padded, 2 * half_width)[..., 1:, 1:] / (2 * half_width) ** 2


def local_correlation(first: np.ndarray, second: np.ndarray, half_width: int) -> np.ndarray:
    """Correlation coefficient of two images over 2w x 2w windows (zero padding at the borders).

    first, second: (..., y, x) broadcastable -> (..., y, x); flat windows give 0.
    """
    tiny = 1e-20
    first = first - _box_mean_same(first, half_width)
    second = second - _box_mean_same(second, half_width)
    cross = _box_mean_same(first * second, half_width)
    var_first = np.maximum(_box_mean_same(first**2, half_width), tiny)
    var_second = np.maximum(_box_mean_same(second**2, half_width), tiny)
    return cross / (np.sqrt(var_first * var_second) + tiny)


def d_rho(fused: np.ndarray, pan: np.ndarray, ratio: int) -> float:
    """D_rho: mean of 1 - clip(rho) where rho is the local correlation of each fused band with the
    PAN over 2w x 2w windows, w = ceil(ratio / 2). fused (B, H, W), pan (H, W)."""
    ratio = _check_ratio(ratio)
    fused = _as_image(fused, "fused", 3)
    pan = _as_image(pan, "pan", 2, nonnegative=True)
    if fused.shape[1:] != pan.shape:
        raise ValueError(f"fused {fused.shape[1:]} and pan {pan.shape} differ in size")
    half_width = int(np.ceil(ratio / 2))
    if min(pan.shape) < 2 * half_width:
        raise ValueError(f"pan {pan.shape} is smaller than one {2 * half_width}-pixel window")
    rho = local_correlation(fused, pan[None], half_width)
    return float((1.0 - np.clip(rho, -1.0, 1.0)).mean())


def _scarpa_kernels(sensor: str | Sensor, ratio: int, n_bands: int) -> np.ndarray:
    """The assessment tool's MTF kernels: the toolbox ones with negatives clipped, sum 1."""
    kernels = np.clip(mtf_kernels(sensor, ratio, n_bands=n_bands), 0.0, None)
    return kernels / kernels.sum(axis=(1, 2), keepdims=True)


def decimation_phases(ms: np.ndarray, pan: np.ndarray, ratio: int,
                      kernels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band, the (row, col) decimation phase at which the MTF-filtered PAN best correlates with
    the MS band: ms (B, h, w), pan (ratio h, ratio w) -> two int arrays (B,)."""
    pan_low = filter_bands(np.broadcast_to(pan, (ms.shape[0], *pan.shape)), kernels)
    phases = np.stack([pan_low[:, r::ratio, c::ratio] for r in range(ratio)
                       for c in range(ratio)])  # (ratio^2, B, h, w)
    # Mean local correlation over 2w x 2w windows, w = ceil(ratio / 2), as the assessment tool does.
    half_width = int(np.ceil(ratio / 2))
    score = local_correlation(ms[None], phases, half_width).mean(axis=(-2, -1))
    best = np.argmax(score, axis=0)  # first maximum, row-major over (row, col) phases
    return best // ratio, best % ratio


def full_resolution_consistency(fused: np.ndarray, ms: np.ndarray, pan: np.ndarray, ratio: int,
                                sensor: str | Sensor, block_size: int = 32) -> dict[str, float]:
    """Scarpa/Ciotola spectral consistency: MTF-filter the fused image, decimate each band at its
    best phase, and score it against the MS at MS scale.

    fused (B, H, W), ms (B, H / ratio, W / ratio), pan (H, W).
    Returns ``{"r_q2n", "r_q", "r_sam", "r_ergas"}``.
    """
    fused, ms, pan, ratio = _full_resolution_inputs(fused, ms, pan, ratio)
    _check_block(ms.shape, block_size, "ms")
    kernels = _scarpa_kernels(sensor, ratio, ms.shape[0])
    rows, cols = decimation_phases(ms, pan, ratio, kernels)
    filtered = filter_bands(fused, kernels)
    band = np.arange(ms.shape[0])[:, None, None]
    y = rows[:, None, None] + ratio * np.arange(ms.shape[1])[None, :, None]
    x = cols[:, None, None] + ratio * np.arange(ms.shape[2])[None, None, :]
    fused_low = filtered[band, y, x]
    return {
        "r_q2n": q2n(ms, fused_low, block_size, block_size),
        "r_q": q_index(ms, fused_low, block_size),
        "r_sam": sam(ms, fused_low),
        "r_ergas": ergas(ms, fused_low, ratio),
    }
