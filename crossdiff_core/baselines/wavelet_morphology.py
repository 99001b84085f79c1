"""Multiresolution baselines outside the GLP family: AWLP (additive wavelet luminance proportional)
and MF (morphological filters, half-gradient pyramid), as the reference toolbox implements them.

Both equalise the PAN to each band (mean and standard deviation estimated once over the whole
image) and take its detail from a low-pass that is affine-equivariant (weights summing to 1, or
dilation and erosion), so the low-pass is computed once on the PAN and mapped to each band. The
fusion rules are pixel-wise: numpy input runs in memory, dask input chunk by chunk, same values.

Every function: ms (B, h, w), pan (ratio h, ratio w) in DN, numpy or dask -> fused
(B, ratio h, ratio w) float64 in DN.
"""

from __future__ import annotations

import numpy as np

from crossdiff_core.baselines._arrays import Array, band_mean, check_inputs, materialise, upsample
from crossdiff_core.baselines._lowpass import (
    bicubic_round_trip,
    half_gradient_lowpass,
    wavelet_approximation,
)
from crossdiff_core.sensors import Sensor

_EPS = np.finfo(np.float64).eps


def awlp(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """AWLP [Otazu05]: each band plus the equalised PAN's wavelet detail (PAN minus the
    approximation of its undecimated B3 wavelet transform) times band / mean of the bands.

    The equalisation gives the PAN each band's mean and the band's standard deviation relative
    to that of the PAN's bicubic down-and-up resampling, as the toolbox does. Differs from the
    toolbox only in rounding: the PAN's detail is computed once and scaled per band instead of
    transforming each equalised copy (the same numbers, B times less filtering).
    """
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    resampled = bicubic_round_trip(pan, ratio)
    up_stds, resampled_std = materialise(ms_up.std(axis=(1, 2), ddof=1), resampled.std(ddof=1))
    if resampled_std == 0:
        raise ValueError("pan is constant: there is no detail to inject")
    # Detail of the equalised PAN = scale x detail of the PAN: the equalisation's offset passes
    # the unit-gain low-pass unchanged and cancels (the toolbox filters each equalised copy).
    scales = (up_stds / resampled_std)[:, None, None]
    detail = pan - wavelet_approximation(pan, ratio)
    intensity = ms_up.mean(axis=0)
    return ms_up + scales * detail[None] * (ms_up / (intensity + _EPS)[None])


def mf(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """MF [Restaino16]: upsampled MS times equalised PAN / its morphological low-pass (the coarsest
    level of a half-gradient pyramid, 3 x 3 cross, ceil(log2 ratio) reductions by 2, re-expanded
    with bilinear interpolation).

    The toolbox's ``Pyr_Dec`` records each level's size as (rows, rows); on non-square images with
    ratio >= 4 it then stretches the intermediate levels. Here every level keeps its (rows, cols):
    identical on square images (the toolbox's test crops), the intended geometry on the others.
    The pyramid is built once on the PAN and mapped to each band's equalisation (rounding only).
    """
    ms, pan = check_inputs(ms, pan, ratio)
    ms_up = upsample(ms, ratio)
    up_means, up_stds, pan_mean, pan_std = materialise(
        band_mean(ms_up), ms_up.std(axis=(1, 2), ddof=1), pan.mean(), pan.std(ddof=1)
    )
    if pan_std == 0:
        raise ValueError("pan is constant: there is no detail to inject")
    # Dilation, erosion and bilinear weights commute with the increasing affine equalisation.
    scales = up_stds[:, None, None] / pan_std
    offsets = up_means - scales * pan_mean
    pan_eq = scales * pan[None] + offsets
    pan_eq_low = scales * half_gradient_lowpass(pan, ratio)[None] + offsets
    return ms_up * (pan_eq / (pan_eq_low + _EPS))
