"""Component-substitution baselines: Brovey, BT-H (Brovey with haze correction), IHS, PCA, GS
(Gram-Schmidt) and GSA (Gram-Schmidt adaptive).

Each one replaces an intensity component of the upsampled MS by the histogram-matched PAN, as the
reference toolbox does. Global statistics (means, standard deviations, regressions) are estimated
once over the whole image; the fusion rule is then pixel-wise, so numpy input runs in memory and
dask input runs chunk by chunk with the same result.

Every function: ms (B, h, w), pan (ratio h, ratio w) in DN, numpy or dask -> fused
(B, ratio h, ratio w) float64 in DN.
"""

from __future__ import annotations

import numpy as np

from crossdiff_core import degrade
from crossdiff_core.baselines._arrays import (
    Array,
    band_mean,
    check_inputs,
    decimate,
    filter_stack,
    materialise,
    upsample,
)
from crossdiff_core.baselines._lowpass import wavelet_approximation
from crossdiff_core.baselines._percentile import band_percentile
from crossdiff_core.sensors import Sensor

# MATLAB's eps: keeps the Brovey ratio finite on black pixels, as the toolbox does.
_EPS = np.finfo(np.float64).eps
# BT-H haze of a 4-band (blue, green, red, NIR) product: these fractions of each band's 1st
# percentile, as the toolbox sets them [Lolli17]; other band counts take each band's minimum.
_HAZE_FRACTIONS_4_BANDS = np.array([0.95, 0.45, 0.40, 0.05])
_HAZE_PERCENT = 1.0


def _matched_pan(pan: Array, target: Array) -> Array:
    """PAN with the mean and standard deviation (N - 1) of ``target`` (y, x)."""
    pan_mean, pan_std, target_mean, target_std = materialise(
        pan.mean(), pan.std(ddof=1), target.mean(), target.std(ddof=1))
    if pan_std == 0:
        raise ValueError("pan is constant: there is no detail to inject")
    return (pan - pan_mean) * (target_std / pan_std) + target_mean


def brovey(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """Brovey transform: each band scaled by matched PAN / intensity, intensity = band mean."""
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    intensity = ms_up.mean(axis=0)
    return ms_up * (_matched_pan(pan, intensity) / (intensity + _EPS))[None]


def ihs(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """Generalised IHS: matched PAN minus the band-mean intensity added to every band."""
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    intensity = ms_up.mean(axis=0)
    return ms_up + (_matched_pan(pan, intensity) - intensity)[None]


def pca(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """PCA substitution: the first principal component is replaced by the matched PAN."""
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    n_bands = ms_up.shape[0]
    (means,) = materialise(band_mean(ms_up))
    centred = ms_up - means
    (scatter,) = materialise(_gram(centred, centred))
    eigenvalues, eigenvectors = np.linalg.eigh(scatter)
    eigenvectors = eigenvectors[:, np.argsort(eigenvalues)[::-1]]
    # MATLAB's pca sign convention: the largest-magnitude loading of each component is positive.
    largest = np.abs(eigenvectors).argmax(axis=0)
    eigenvectors = eigenvectors * np.sign(eigenvectors[largest, np.arange(n_bands)])
    loadings = eigenvectors[:, 0]
    first_component = np.tensordot(loadings, centred, axes=1)
    detail = _matched_pan(pan, first_component) - first_component
    return ms_up + loadings[:, None, None] * detail[None]


def _gram(first: Array, second: Array) -> Array:
    """Sums of products over pixels: first (B, y, x), second (C, y, x) -> (B, C)."""
    return (first[:, None] * second[None]).sum(axis=(-2, -1))


def gsa(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """Gram-Schmidt adaptive: intensity = regression of the low-resolution PAN on the MS bands,
    detail injected with gains cov(intensity, band) / var(intensity).

    As the toolbox (PAN at MS scale by its LPfilterPlusDec, wavelet approximation then
    decimation), except that the regression solves the normal equations rather than a QR least
    squares: sums reduce chunk by chunk, and the difference is rounding.
    """
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    up_means, lr_means, pan_mean = materialise(band_mean(ms_up), band_mean(ms), pan.mean())
    centred_up = ms_up - up_means
    centred_lr = ms - lr_means
    pan_centred = pan - pan_mean
    # The PAN at MS scale as the toolbox's LPfilterPlusDec: wavelet approximation, then decimation.
    pan_lr = decimate(wavelet_approximation(pan_centred, ratio), ratio)
    # Least squares of pan_lr on [bands, 1] through the normal equations (sums reduce chunk-wise).
    design = _append_ones(centred_lr)
    normal, target = materialise(_gram(design, design), _gram(design, pan_lr[None])[:, 0])
    weights = np.linalg.solve(normal, target)
    intensity = np.tensordot(weights[:-1], centred_up, axes=1) + weights[-1]
    (intensity_mean,) = materialise(intensity.mean())
    intensity = intensity - intensity_mean
    return _inject_gram_schmidt(ms_up, centred_up, intensity, pan_centred)


def gs(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """Gram-Schmidt: intensity = band mean of the upsampled MS, replaced by the PAN matched to its
    mean and standard deviation; detail injected with gains cov(intensity, band) / var(intensity).

    As the toolbox's GS, to rounding.
    """
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    (up_means,) = materialise(band_mean(ms_up))
    centred_up = ms_up - up_means
    intensity = centred_up.mean(axis=0)  # the band-mean intensity minus its mean
    return _inject_gram_schmidt(ms_up, centred_up, intensity, _matched_pan(pan, intensity))


def _inject_gram_schmidt(ms_up: Array, centred_up: Array, intensity: Array,
                         substitute: Array) -> Array:
    """ms_up + gains (substitute - intensity), gains = cov(band, intensity) / var(intensity);
    intensity has zero mean."""
    covariances, intensity_power = materialise(
        _gram(centred_up, intensity[None])[:, 0], (intensity**2).sum())
    if intensity_power == 0:
        raise ValueError("the intensity is constant: the MS bands carry no signal")
    gains = covariances / intensity_power  # N - 1 factors cancel in cov / var
    # The toolbox re-imposes the band means at the end; the injected detail has zero mean, so the
    # upsampled band means are already in place.
    return ms_up + gains[:, None, None] * (substitute - intensity)[None]


def bt_h(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """BT-H, Brovey with haze correction [Lolli17]: the haze-free bands scaled by matched PAN /
    intensity, intensity = regression of the low-passed PAN on the bands, applied to them minus
    their haze; the haze is added back.

    The haze is the toolbox's: a fraction of each band's 1st percentile (MATLAB ``prctile``) for
    4 bands, the band minimum otherwise. Percentile, regression and PAN statistics are taken over
    the whole image once, exactly also on dask input (the percentile by histogram narrowing, not
    by sorting the scene); the fusion is pixel-wise. As the toolbox except that the regression
    solves the normal equations (chunk-wise sums) rather than a QR least squares: rounding only.
    """
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    haze = _haze(ms_up)[:, None, None]
    pan_low = filter_stack(pan[None], degrade.lowpass_gauss_kernel(ratio)[None])[0]
    normal, target, low_mean, low_std = materialise(
        _gram(ms_up, ms_up), _gram(ms_up, pan_low[None])[:, 0], pan_low.mean(),
        pan_low.std(ddof=1))
    if low_std == 0:
        raise ValueError("pan is constant: there is no detail to inject")
    # Least squares without intercept through the normal equations (sums reduce chunk-wise).
    weights = np.linalg.solve(normal, target)
    hazeless = ms_up - haze
    intensity = np.tensordot(weights, hazeless, axes=1)
    intensity_mean, intensity_std = materialise(intensity.mean(), intensity.std(ddof=1))
    matched = (pan - low_mean) * (intensity_std / low_std) + intensity_mean
    return np.maximum(hazeless, 0.0) * (matched / (intensity + _EPS))[None] + haze


def _haze(ms_up: Array) -> np.ndarray:
    """Per-band haze (B,) of the upsampled MS, as the toolbox's BroveyRegHazeMin."""
    if ms_up.shape[0] == len(_HAZE_FRACTIONS_4_BANDS):
        return _HAZE_FRACTIONS_4_BANDS * band_percentile(ms_up, _HAZE_PERCENT)
    (minima,) = materialise(ms_up.min(axis=(1, 2)))
    return minima


def _append_ones(bands: Array) -> Array:
    ones = bands[:1] * 0 + 1
    if isinstance(bands, np.ndarray):
        return np.concatenate([bands, ones])
    import dask.array as da

    return da.concatenate([bands, ones])
