"""Multiresolution-analysis baselines of the MTF-GLP family (generalised Laplacian pyramid with
MTF-matched filters): MTF-GLP (additive), MTF-GLP-HPM (high-pass modulation), MTF-GLP-HPM-R
(high-pass modulation with a regression-fitted offset) and MTF-GLP-FS (full-scale regression of
the injection gains).

The PAN low-pass is the PAN filtered by each band's MTF kernel, decimated and re-expanded with
interp23tap, as the reference toolbox does. Statistics are global reductions computed once; the
fusion rules are pixel-wise (numpy in memory, dask chunk by chunk).

Every function: ms (B, h, w), pan (ratio h, ratio w) in DN, numpy or dask -> fused
(B, ratio h, ratio w) float64 in DN.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from crossdiff_core import degrade
from crossdiff_core.baselines._arrays import (
    Array,
    band_mean,
    block_reduce,
    check_inputs,
    filter_stack,
    is_lazy,
    materialise,
    mtf_lowpass_pan,
    upsample,
)
from crossdiff_core.sensors import Sensor

_EPS = np.finfo(np.float64).eps


def _equalisation(pan: Array, ms_up: Array, ratio: int) -> tuple[np.ndarray, np.ndarray]:
    """Per band, the affine map (scale, offset) giving the PAN each band's mean and the band's
    standard deviation relative to the low-passed PAN's: pan_eq_b = scale_b * pan + offset_b."""
    pan_low = filter_stack(pan[None], degrade.lowpass_gauss_kernel(ratio)[None])[0]
    band_means, band_stds, pan_mean, pan_low_std = materialise(
        band_mean(ms_up)[:, 0, 0], ms_up.std(axis=(1, 2), ddof=1), pan.mean(),
        pan_low.std(ddof=1))
    if pan_low_std == 0:
        raise ValueError("pan is constant: there is no detail to inject")
    scale = band_stds / pan_low_std
    return scale, band_means - scale * pan_mean


def _kernel_sums(sensor: str | Sensor, ratio: int, n_bands: int) -> np.ndarray:
    """The MTF kernels' sums (slightly below 1): how they scale a constant."""
    return degrade.mtf_kernels(sensor, ratio, n_bands=n_bands).sum(axis=(1, 2))


def mtf_glp(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """MTF-GLP: upsampled MS plus the equalised PAN's detail (PAN - MTF low-pass), gain 1."""
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    scale, offset = _equalisation(pan, ms_up, ratio)
    pan_low = mtf_lowpass_pan(pan, ratio, sensor, ms.shape[0], ms_up)
    # Detail of the equalised PAN: its offset cancels in PAN - low-pass except for the kernel sum.
    offset_residual = offset * (1.0 - _kernel_sums(sensor, ratio, ms.shape[0]))
    detail = scale[:, None, None] * (pan[None] - pan_low) + offset_residual[:, None, None]
    return ms_up + detail


def mtf_glp_hpm(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """MTF-GLP-HPM: upsampled MS times equalised PAN / its MTF low-pass (high-pass modulation)."""
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    scale, offset = _equalisation(pan, ms_up, ratio)
    pan_low = mtf_lowpass_pan(pan, ratio, sensor, ms.shape[0], ms_up)
    sums = _kernel_sums(sensor, ratio, ms.shape[0])
    pan_eq = scale[:, None, None] * pan[None] + offset[:, None, None]
    # Low-pass of the equalised PAN: the filter is linear and scales a constant by its sum.
    pan_eq_low = scale[:, None, None] * pan_low + (offset * sums)[:, None, None]
    return ms_up * (pan_eq / (pan_eq_low + _EPS))


def mtf_glp_fs(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """MTF-GLP-FS: detail PAN - low-pass injected with full-scale regression gains
    cov(MS_b, PAN) / cov(low-pass_b, PAN)."""
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    pan_low = mtf_lowpass_pan(pan, ratio, sensor, ms.shape[0], ms_up)
    if is_lazy(ms_up):
        # Two passes over the scene, row of chunks by row of chunks (bounded memory).
        sums = block_reduce(_block_band_sums, [pan, ms_up, pan_low])
        means = sums / (pan.shape[0] * pan.shape[1])
        pan_mean = means[0]
        up_means, low_means = means[1:].reshape(2, -1, 1, 1)
        cov_ms, cov_low = block_reduce(
            partial(_block_covariances, pan_mean, up_means, low_means), [pan, ms_up, pan_low])
    else:
        pan_mean, up_means, low_means = materialise(
            pan.mean(), band_mean(ms_up), band_mean(pan_low))
        pan_centred = (pan - pan_mean)[None]
        cov_ms, cov_low = materialise(((ms_up - up_means) * pan_centred).sum(axis=(1, 2)),
                                      ((pan_low - low_means) * pan_centred).sum(axis=(1, 2)))
    if (cov_low == 0).any():
        raise ValueError("the low-passed PAN does not vary: MTF-GLP-FS gains are undefined")
    gains = cov_ms / cov_low
    return ms_up + gains[:, None, None] * (pan[None] - pan_low)


def _block_band_sums(*blocks: np.ndarray) -> np.ndarray:
    """Sums over the block of each band of each image (k_i, y, x), one after the other."""
    return np.concatenate([block.sum(axis=(1, 2)) for block in blocks])


def _block_covariances(pan_mean: float, up_means: np.ndarray, low_means: np.ndarray,
                       pan: np.ndarray, ms_up: np.ndarray, pan_low: np.ndarray) -> np.ndarray:
    """Sums over the block of (MS_b - mean) (PAN - mean) and (low-pass_b - mean) (PAN - mean)."""
    pan_centred = pan - pan_mean
    return np.stack([((ms_up - up_means) * pan_centred).sum(axis=(1, 2)),
                     ((pan_low - low_means) * pan_centred).sum(axis=(1, 2))])


def mtf_glp_hpm_r(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """MTF-GLP-HPM-R [Vivone18]: upsampled MS times (PAN + c_b) / (MTF low-pass_b + c_b), with
    c_b = mean(MS_b) / g_b - mean(PAN) and g_b the regression slope cov(MS_b, low-pass_b) /
    var(low-pass_b) (global version).

    As the toolbox's MTF_GLP_HPM_R, to rounding; the PAN low-pass is the one MTF-GLP uses.
    """
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    pan_low = mtf_lowpass_pan(pan, ratio, sensor, ms.shape[0], ms_up)
    up_means, low_means, pan_mean = materialise(band_mean(ms_up), band_mean(pan_low), pan.mean())
    centred_low = pan_low - low_means
    covariances, low_powers = materialise(((ms_up - up_means) * centred_low).sum(axis=(1, 2)),
                                          (centred_low**2).sum(axis=(1, 2)))
    if (covariances == 0).any():
        raise ValueError("an MS band does not correlate with the low-passed PAN: "
                         "MTF-GLP-HPM-R offsets are undefined")
    slopes = covariances / low_powers  # N - 1 factors cancel
    offsets = (up_means[:, 0, 0] / slopes - pan_mean)[:, None, None]
    return ms_up * ((pan[None] + offsets) / (pan_low + offsets + _EPS))
