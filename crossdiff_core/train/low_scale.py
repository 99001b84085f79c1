"""The PAN's low-scale twin that the adaptation's spatial targets pair with the upsampled MS.

The spatial terms of the adaptation loss (``crossdiff_core.train.losses``) ask each fused band to
relate to the PAN, in windows of 2 x ratio pixels, as the upsampled MS relates to a low-scale
twin of the PAN. Two twins are offered (``adapt.low_scale_pan``):

- ``mtf_blur``: the PAN blurred by its sensor MTF on its own grid;
- ``reduced``: the PAN reduced to the MS grid (bicubic, as the Wald protocol reduces it) and
  brought back by interp23tap, the path the upsampled MS took (the PANlp of QNR's D_s).

Neither is right everywhere. Measured on the Wald copies of the development crops, where the
reference exists, the blurred twin predicts the reference's band-PAN correlation within 0.02 on
``ikonos_dev`` and misses it by 0.17 on ``l8_dev`` (far too high, so the head injects too much
PAN detail); the reduced twin misses by 0.04 and 0.05. ``auto`` therefore asks the scene: one
scale further down, where the MS itself is the reference, which twin predicts the MS's
correlation with the reduced PAN better (:func:`choose_low_scale_pan`). On both development crops
that check picks the twin that is better at the scale above, at full resolution and on the Wald
copies alike (``benchmarks/scale_invariance.py`` prints the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from crossdiff_core.degrade import (
    imresize_bicubic,
    interp23tap,
    pan_mtf_kernel,
    wald_degrade,
)
from crossdiff_core.sensors import Sensor
from crossdiff_core.train.losses import local_correlation, mtf_blur

TWINS = ("mtf_blur", "reduced")
# The check reads a centred crop of at most this many PAN pixels a side: the statistic is a mean
# over windows, stable long before a whole scene.
CHECK_MAX_PAN = 1024


def low_scale_twin(pan: np.ndarray, ratio: int, sensor: Sensor, twin: str) -> np.ndarray:
    """The PAN's low-scale twin (``TWINS``), pan (H, W) -> (H, W) float64, H and W multiples of
    ratio; circular or symmetric borders as its filters have them (whole images only)."""
    pan = np.asarray(pan, np.float64)
    if twin == "mtf_blur":
        kernel = torch.from_numpy(pan_mtf_kernel(sensor, ratio))[None]
        return mtf_blur(torch.from_numpy(pan)[None, None], kernel)[0, 0].numpy()
    if twin == "reduced":
        return interp23tap(imresize_bicubic(pan, 1.0 / ratio)[None], ratio)[0]
    raise ValueError(f"low-scale PAN twin {twin!r}: use one of {TWINS}")


def _centred(array: np.ndarray) -> torch.Tensor:
    """(1, B, H, W) float64, each band less its mean (the correlation ignores a shift)."""
    array = np.asarray(array, np.float64)
    array = array.reshape((-1, *array.shape[-2:]))
    return torch.from_numpy(array - array.mean(axis=(-2, -1), keepdims=True))[None]


def mean_local_correlation(bands: np.ndarray, pan: np.ndarray, ratio: int) -> np.ndarray:
    """Per band, the mean over windows of 2 x ratio pixels of its correlation with ``pan``:
    bands (B, H, W), pan (H, W) -> (B,)."""
    rho = local_correlation(_centred(bands), _centred(pan), 2 * ratio)
    return rho[0].mean(dim=(-2, -1)).numpy()


@dataclass(frozen=True)
class LowScaleCheck:
    """What :func:`choose_low_scale_pan` measured: ``truth`` (B,) the MS's mean local correlation
    with the PAN reduced to its grid, ``estimates`` {twin: (B,)} what each twin predicted from
    one scale further down, ``errors`` {twin: mean absolute error over bands, None where there is
    no figure (nodata in the crop); empty when no scene was large enough}, ``choice``. Every
    field is plain JSON (``summary.json`` keeps it: no NaN)."""

    choice: str
    errors: dict[str, float | None]
    truth: list[float]
    estimates: dict[str, list[float]]

    def describe(self) -> str:
        if not self.truth:
            return (f"low-scale PAN: {self.choice} (the scenes are too small to check one scale "
                    "down: under 4 x ratio MS pixels a side)")
        errors = ", ".join(f"{twin} {'no figure (nodata)' if error is None else f'{error:.3f}'}"
                           for twin, error in self.errors.items())
        return (f"low-scale PAN: {self.choice} (band-PAN correlation one scale down missed by "
                f"{errors})")


def _crop(ms: np.ndarray, pan: np.ndarray, ratio: int) -> tuple[np.ndarray, np.ndarray]:
    """A centred crop of at most ``CHECK_MAX_PAN`` PAN pixels whose MS sides divide by ratio."""
    def span(ms_len: int) -> slice:
        keep = min(ms_len, CHECK_MAX_PAN // ratio)
        keep -= keep % ratio
        start = (ms_len - keep) // 2
        return slice(start, start + keep)

    rows, cols = span(ms.shape[-2]), span(ms.shape[-1])
    pan_rows = slice(rows.start * ratio, rows.stop * ratio)
    pan_cols = slice(cols.start * ratio, cols.stop * ratio)
    return ms[:, rows, cols], pan[pan_rows, pan_cols]


def check_low_scale_pan(
    ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: Sensor
) -> dict | None:
    """One scene's check: {"truth": (B,), "estimates": {twin: (B,)}} one scale down, or None
    for an MS under 4 x ratio pixels a side (too small to reduce once more and still hold a
    window of 2 x ratio pixels)."""
    ms, pan = _crop(ms, pan, ratio)  # before reading: lazy arrays read only the crop
    if min(ms.shape[-2:]) < 4 * ratio:
        return None
    ms, pan = np.asarray(ms, np.float64), np.asarray(pan, np.float64)
    ms_low, pan_low = wald_degrade(ms, pan, ratio, sensor)
    ms_low_up = interp23tap(ms_low, ratio)
    return {
        "truth": mean_local_correlation(ms, pan_low, ratio),
        "estimates": {
            twin: mean_local_correlation(ms_low_up, low_scale_twin(pan_low, ratio, sensor, twin),
                                         ratio)
            for twin in TWINS
        },
    }


def choose_low_scale_pan(
    scenes: list[tuple[np.ndarray, np.ndarray]], ratio: int, sensor: Sensor
) -> LowScaleCheck:
    """The twin that predicts the band-PAN correlation better one scale down, over ``scenes``
    [(ms (B, h, w), pan (h * ratio, w * ratio))]: each scene is Wald-reduced once more, its MS is
    the reference there, and a twin's error is the mean absolute difference, over bands and
    scenes, between its estimate and the MS's own correlation with the reduced PAN. A tie, no
    figure at all (nodata in the crop) or no scene large enough to check keeps ``mtf_blur``."""
    checks = [check_low_scale_pan(ms, pan, ratio, sensor) for ms, pan in scenes]
    checks = [check for check in checks if check is not None]
    if not checks:
        return LowScaleCheck("mtf_blur", {}, [], {})
    truth = np.mean([check["truth"] for check in checks], axis=0)
    estimates = {twin: np.mean([check["estimates"][twin] for check in checks], axis=0)
                 for twin in TWINS}
    errors = {
        twin: _finite_or_none(np.mean([np.abs(check["estimates"][twin] - check["truth"]).mean()
                                       for check in checks]))
        for twin in TWINS
    }
    # A crop with nodata gives no figure (None): such a twin is never chosen, and mtf_blur stays.
    choice = min(TWINS, key=lambda twin: (
        np.inf if errors[twin] is None else errors[twin], TWINS.index(twin)))
    return LowScaleCheck(
        choice, errors, [_finite_or_none(v) for v in truth],
        {twin: [_finite_or_none(v) for v in values] for twin, values in estimates.items()},
    )


def _finite_or_none(value: float) -> float | None:
    """A figure for JSON: NaN (nodata in the crop) becomes None."""
    value = float(value)
    return value if np.isfinite(value) else None
