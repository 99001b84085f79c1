"""adapt.low_scale_pan: the PAN's low-scale twins and the check that picks one (auto)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from crossdiff_core.degrade import imresize_bicubic, interp23tap
from crossdiff_core.sensors import get_sensor
from crossdiff_core.synthetic import synthetic_pair, write_synthetic_store
from crossdiff_core.train.adapt import adapt_head
from crossdiff_core.train.low_scale import (
    TWINS,
    check_low_scale_pan,
    choose_low_scale_pan,
    low_scale_twin,
    mean_local_correlation,
)
from tests.adapt_helpers import single_torch_thread, tiny_settings

one_torch_thread = pytest.fixture(autouse=True, scope="module")(single_torch_thread)

LANDSAT = get_sensor("Landsat-8")


def _pan(seed: int = 0) -> np.ndarray:
    pan, _ = synthetic_pair("Landsat-8", (64, 64), seed)
    return pan.astype(np.float64)


def test_twins_are_what_their_names_say():
    pan = _pan()
    reduced = low_scale_twin(pan, 2, LANDSAT, "reduced")
    np.testing.assert_allclose(reduced, interp23tap(imresize_bicubic(pan, 0.5)[None], 2)[0])
    blurred = low_scale_twin(pan, 2, LANDSAT, "mtf_blur")
    assert blurred.shape == pan.shape
    # Both are smoother than the PAN, and both keep its mean.
    for twin in (reduced, blurred):
        assert np.abs(np.diff(twin, axis=1)).mean() < np.abs(np.diff(pan, axis=1)).mean()
        assert twin.mean() == pytest.approx(pan.mean(), rel=1e-3)
    with pytest.raises(ValueError, match="low-scale PAN twin 'lowpass'"):
        low_scale_twin(pan, 2, LANDSAT, "lowpass")


def test_the_check_reports_the_twin_with_the_smaller_error_one_scale_down():
    """An MS that is exactly the PAN reduced as the Wald protocol reduces it: one scale down its
    correlation with the reduced PAN is 1 in every window; each twin's error is how far below
    that its estimate falls, and the check picks the smaller."""
    pan = _pan(1)
    ms = np.repeat(imresize_bicubic(pan, 0.5)[None], 4, axis=0)
    check = check_low_scale_pan(ms, pan, 2, LANDSAT)
    np.testing.assert_allclose(check["truth"], 1.0, atol=1e-6)
    chosen = choose_low_scale_pan([(ms, pan)], 2, LANDSAT)
    for twin in TWINS:
        expected = np.abs(check["estimates"][twin] - check["truth"]).mean()
        assert chosen.errors[twin] == pytest.approx(expected)
        assert 0 < chosen.errors[twin] < 0.5
    assert chosen.choice == min(TWINS, key=chosen.errors.get)
    assert f"low-scale PAN: {chosen.choice}" in chosen.describe()
    # The estimate is the mean local correlation of the upsampled low MS with the twin.
    assert check["estimates"]["reduced"].shape == (4,)
    assert np.all(mean_local_correlation(ms, pan[::2, ::2], 2) <= 1 + 1e-9)


def test_several_scenes_pool_their_errors_and_nodata_or_small_scenes_keep_mtf_blur():
    pan = _pan(2)
    ms = np.repeat(imresize_bicubic(pan, 0.5)[None], 4, axis=0)
    one = choose_low_scale_pan([(ms, pan)], 2, LANDSAT)
    two = choose_low_scale_pan([(ms, pan), (ms, pan)], 2, LANDSAT)
    assert two.errors == pytest.approx(one.errors) and two.choice == one.choice
    holed = ms.copy()
    holed[:, 30:34, 30:34] = np.nan
    with_nodata = choose_low_scale_pan([(holed, pan)], 2, LANDSAT)
    assert with_nodata.choice == "mtf_blur"
    assert with_nodata.errors == {twin: None for twin in TWINS}
    assert "no figure (nodata)" in with_nodata.describe()
    small = (ms[:, :4, :4], pan[:8, :8])
    assert check_low_scale_pan(*small, 2, LANDSAT) is None
    too_small = choose_low_scale_pan([small], 2, LANDSAT)
    assert too_small.choice == "mtf_blur" and "too small to check" in too_small.describe()
    # What summary.json keeps is strict JSON in every case (no NaN).
    for check in (with_nodata, too_small):
        json.dumps(asdict(check), allow_nan=False)
    # A small scene beside a large one: only the large one counts.
    assert choose_low_scale_pan([small, (ms, pan)], 2, LANDSAT).errors == pytest.approx(one.errors)


def test_auto_trains_on_the_chosen_twin_and_records_the_check(tmp_path):
    """adapt.low_scale_pan: auto runs the check on the training scenes, trains exactly as the
    twin it chose would (same logged losses), and writes what it measured in summary.json."""
    store = write_synthetic_store(tmp_path / "zarr", "QuickBird", ms_shape=(48, 48), seed=0)
    settings = dict(random_encoders=True, spatial_loss="correlation_match", overshoot_weight=0.5)
    auto = adapt_head([store], tmp_path / "auto", None,
                      tiny_settings(low_scale_pan="auto", **settings))
    assert auto.low_scale is not None and auto.low_scale.choice in TWINS
    chosen = adapt_head([store], tmp_path / "chosen", None,
                        tiny_settings(low_scale_pan=auto.low_scale.choice, **settings))
    assert chosen.low_scale is None
    assert [row["spatial"] for row in auto.losses] == [row["spatial"] for row in chosen.losses]
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["low_scale_pan"]["choice"] == auto.low_scale.choice
    assert set(summary["low_scale_pan"]["errors"]) == set(TWINS)
    other = next(twin for twin in TWINS if twin != auto.low_scale.choice)
    rejected = adapt_head([store], tmp_path / "other", None,
                          tiny_settings(low_scale_pan=other, **settings))
    assert rejected.losses[0]["spatial"] != pytest.approx(auto.losses[0]["spatial"], rel=1e-4)
