"""benchmarks/scale_invariance.py's detail gain on images whose answer is known by construction."""

from __future__ import annotations

import sys

import numpy as np
from conftest import PROJECT_ROOT

from crossdiff_core.sensors import get_sensor

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from scale_invariance import detail_gain  # noqa: E402


def _pan(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(500.0, 40.0, (64, 64))


def test_bands_made_of_the_pan_give_back_their_gains():
    sensor = get_sensor("IKONOS", ratio=4, n_bands=4)
    pan = _pan()
    gains = np.array([0.4, 0.8, 1.0, 1.5])
    # Different offsets per band: the gain ignores them.
    bands = gains[:, None, None] * pan + np.array([10.0, 200.0, -30.0, 5.0])[:, None, None]
    # The band and PAN MTFs differ, so the high-passes are not exactly proportional; a band
    # that is gain x PAN still gives back close to its gain.
    np.testing.assert_allclose(detail_gain(bands, pan, sensor, 4), gains, rtol=0.03)


def test_smooth_bands_and_unrelated_detail_give_no_gain():
    sensor = get_sensor("IKONOS", ratio=4, n_bands=4)
    pan = _pan()
    rows = np.linspace(0.0, 1.0, 64)[:, None] * np.ones((1, 64))
    smooth = np.stack([100 * rows + k for k in range(4)])  # a ramp: no high-pass at all
    unrelated = smooth + np.random.default_rng(5).normal(0.0, 20.0, smooth.shape)
    assert np.all(np.abs(detail_gain(smooth, pan, sensor, 4)) < 0.02)
    assert np.all(np.abs(detail_gain(unrelated, pan, sensor, 4)) < 0.1)
