"""Degradation and resampling against the reference toolbox's arrays (../shared/golden)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from crossdiff_core import degrade
from tests.golden_helpers import golden_arrays, golden_inputs

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def golden(golden_dir):
    return golden_inputs(), golden_arrays(golden_dir)


def test_mtf_kernels_match_toolbox(golden):
    _, arrays = golden
    kernels = degrade.mtf_kernels("QB", 4)
    assert kernels.shape == (4, 41, 41)
    np.testing.assert_allclose(kernels, arrays["h"], rtol=0, atol=TOLERANCE)


def test_assessment_tool_kernels_match(golden):
    from crossdiff_core.metrics import _scarpa_kernels

    _, arrays = golden
    np.testing.assert_allclose(_scarpa_kernels("QB", 4, 4), arrays["h_scarpa"], rtol=0,
                               atol=TOLERANCE)


def test_pan_kernel_is_the_same_recipe_with_the_pan_gain():
    kernel = degrade.pan_mtf_kernel("QuickBird", 4)
    assert kernel.shape == (41, 41)
    np.testing.assert_allclose(kernel, degrade.gaussian_mtf_kernel(0.15, 4), atol=0)
    # A lower Nyquist gain means a wider blur: a lower peak than any QB MS kernel.
    assert kernel[20, 20] < degrade.mtf_kernels("QB", 4)[:, 20, 20].min()


def test_interp23tap_matches_toolbox(golden):
    inputs, arrays = golden
    np.testing.assert_allclose(degrade.interp23tap(inputs["ms"], 4), arrays["msexp"], rtol=0,
                               atol=TOLERANCE)


def test_wald_degradation_matches_toolbox(golden):
    inputs, arrays = golden
    # The golden case degrades gt and pan on the same 256 grid, so each half is checked alone.
    ms_lr = degrade.decimate(degrade.mtf_filter(inputs["gt"], "QB", 4), 4)
    pan_lr = degrade.imresize_bicubic(inputs["pan"], 1 / 4)
    np.testing.assert_allclose(ms_lr, arrays["ms_lr"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(pan_lr, arrays["pan_lr"], rtol=0, atol=TOLERANCE)


def test_wald_degrade_shapes_on_nested_grids(golden):
    inputs, _ = golden
    ms_lr, pan_lr = degrade.wald_degrade(inputs["ms"], inputs["gt"][0], 4, "QB")
    assert ms_lr.shape == (4, 16, 16) and pan_lr.shape == (64, 64)


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_interp23tap_keeps_the_samples_at_the_toolbox_phase(ratio):
    ms = np.random.default_rng(1).uniform(0, 2047, (3, 12, 10))
    up = degrade.interp23tap(ms, ratio)
    assert up.shape == (3, 12 * ratio, 10 * ratio)
    # The 23-tap filter is interpolating: MS pixel j sits on output pixel ratio * j + ratio / 2.
    np.testing.assert_allclose(up[:, ratio // 2::ratio, ratio // 2::ratio], ms, atol=1e-9)


def test_imresize_constant_and_upscale_shapes():
    image = np.full((20, 28), 7.0)
    np.testing.assert_allclose(degrade.imresize_bicubic(image, 0.25), np.full((5, 7), 7.0))
    assert degrade.imresize_bicubic(image, 2).shape == (40, 56)


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_chunkwise_paths_equal_in_memory(ratio):
    rng = np.random.default_rng(2)
    ms = rng.uniform(0, 2047, (4, 48, 40))
    pan = rng.uniform(0, 2047, (48 * ratio, 40 * ratio))
    ms_lazy = da.from_array(ms, chunks=(4, 16, 12))
    pan_lazy = da.from_array(pan, chunks=(24 * ratio, 20 * ratio))
    np.testing.assert_allclose(degrade.interp23tap_dask(ms_lazy, ratio).compute(),
                               degrade.interp23tap(ms, ratio), rtol=0, atol=1e-9)
    ms_lr, pan_lr = degrade.wald_degrade(ms, pan, ratio, "generic")
    lazy_ms_lr, lazy_pan_lr = degrade.wald_degrade_dask(
        da.from_array(ms, chunks=(4, 24, 20)), pan_lazy, ratio, "generic")
    np.testing.assert_allclose(lazy_ms_lr.compute(), ms_lr, rtol=0, atol=1e-9)
    np.testing.assert_allclose(lazy_pan_lr.compute(), pan_lr, rtol=0, atol=1e-9)


def test_bad_inputs_raise_clear_errors():
    ms = np.ones((4, 16, 16))
    with pytest.raises(ValueError, match="ratios 2, 4 and 8"):
        degrade.interp23tap(ms, 3)
    with pytest.raises(ValueError, match="ms must be"):
        degrade.mtf_filter(np.ones((16, 16)), "QB", 4)
    with pytest.raises(ValueError, match="not ratio 4 x ms"):
        degrade.wald_degrade(ms, np.ones((60, 64)), 4, "QB")
    with pytest.raises(ValueError, match="unknown sensor"):
        degrade.mtf_kernels("no-such-sensor", 4)
    with pytest.raises(ValueError, match="multiple of ratio"):
        degrade.decimate(np.ones((4, 10, 12)), 4)
    with pytest.raises(ValueError, match="ratio must be"):
        degrade.mtf_kernels("QB", 0)
