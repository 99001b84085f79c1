"""EXP: the MS upsampled with the toolbox's 23-tap interpolator (no PAN detail at all)."""

from __future__ import annotations

from crossdiff_core.baselines._arrays import Array, check_inputs, upsample
from crossdiff_core.sensors import Sensor


def exp(ms: Array, pan: Array, ratio: int, sensor: str | Sensor) -> Array:
    """ms (B, h, w), pan (ratio h, ratio w) -> interp23tap(ms) (B, ratio h, ratio w) float64."""
    ms, pan = check_inputs(ms, pan, ratio)
    return upsample(ms, ratio)
