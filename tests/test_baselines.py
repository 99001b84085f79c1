"""Classical baselines: shapes, chunk-wise == in-memory, and the reference toolbox's scores on the
IKONOS anchor crop (../shared/golden/anchors_IKONOS.npz: not copyable into the repository, skipped
without it; protocol in tests/data/golden/anchors_given.json)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from crossdiff_core import metrics
from crossdiff_core.baselines import METHODS, get_method
from crossdiff_core.degrade import wald_degrade
from crossdiff_core.evaluation import cut_borders
from crossdiff_core.synthetic import synthetic_pair
from tests.golden_helpers import anchor_crop

# Our name -> the toolbox's name in anchors_given.json. Brovey has no entry: the toolbox has only
# the haze-corrected BT-H (bt_h, held to the toolbox in test_baselines_lineup.py).
TOOLBOX_NAMES = {"exp": "EXP", "ihs": "IHS", "pca": "PCA", "gsa": "GSA", "mtf_glp": "MTF-GLP",
                 "mtf_glp_hpm": "MTF-GLP-HPM", "mtf_glp_fs": "MTF-GLP-FS"}
# Reproduced to rounding (the methods added later are held to the toolbox in
# test_baselines_lineup.py).
TOLERANCE = dict.fromkeys(TOOLBOX_NAMES, 1e-6)
# Full-resolution scoring costs a second per method on 2 CPU cores: the headline methods here,
# every method and index in benchmarks/baselines_anchors.py.
FULL_RESOLUTION_CHECKED = {"exp", "gsa", "mtf_glp_hpm"}


@pytest.fixture(scope="module")
def small_pair():
    pan, ms = synthetic_pair("QuickBird", ms_shape=(24, 20), seed=1)
    return ms.astype(np.float64), pan.astype(np.float64)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_shape_units_and_chunkwise_equal_in_memory(name, small_pair):
    ms, pan = small_pair
    method = METHODS[name]
    fused = method(ms, pan, 4, "QB")
    assert fused.shape == (4, 96, 80) and fused.dtype == np.float64
    # DN units: band means stay close to the MS band means.
    np.testing.assert_allclose(fused.mean(axis=(1, 2)), ms.mean(axis=(1, 2)), rtol=0.05)
    lazy = method(da.from_array(ms, chunks=(4, 12, 12)), da.from_array(pan, chunks=(48, 40)),
                  4, "QB")
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), fused, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_chunkwise_on_images_smaller_than_the_overlaps(name):
    """MS sides under the MTF kernels' half-width (20 px: BDSD's filters at MS scale) and under
    the interpolator's overlap (12 px): the lazy path still runs, with the in-memory result."""
    pan, ms = synthetic_pair("WorldView-3", ms_shape=(16, 6), seed=2)
    ms, pan = ms.astype(np.float64), pan.astype(np.float64)
    fused = METHODS[name](ms, pan, 4, "WorldView-3")
    lazy = METHODS[name](da.from_array(ms, chunks=(8, 8, 4)), da.from_array(pan, chunks=(32, 16)),
                         4, "WorldView-3")
    np.testing.assert_allclose(lazy.compute(), fused, rtol=1e-9, atol=1e-9 * np.abs(fused).max())


def test_brovey_intensity_is_the_matched_pan(small_pair):
    ms, pan = small_pair
    fused = METHODS["brovey"](ms, pan, 4, "QB")
    intensity = METHODS["exp"](ms, pan, 4, "QB").mean(axis=0)
    matched = (pan - pan.mean()) * intensity.std(ddof=1) / pan.std(ddof=1) + intensity.mean()
    np.testing.assert_allclose(fused.mean(axis=0), matched * intensity / (intensity + 2.0**-52),
                               rtol=1e-12)


@pytest.fixture(scope="module")
def ikonos():
    crop = anchor_crop("IKONOS")
    ms, pan, given = crop["ms"], crop["pan"], crop["toolbox"]
    ms_lr, pan_lr = wald_degrade(ms, pan, 4, "IKONOS")
    return ms, pan, ms_lr, pan_lr, given


@pytest.mark.parametrize("name", sorted(TOOLBOX_NAMES))
def test_lands_on_the_toolbox_scores(name, ikonos):
    ms, pan, ms_lr, pan_lr, given = ikonos
    expected = given[TOOLBOX_NAMES[name]]
    method = get_method(name)
    reduced = method(ms_lr, pan_lr, 4, "IKONOS")
    reference, fused = cut_borders(ms, 21), cut_borders(reduced, 21)
    scores = {
        "RR_Q2n": metrics.q2n(reference, fused),
        "RR_SAM": metrics.sam(reference, fused),
        "RR_ERGAS": metrics.ergas(reference, fused, 4),
    }
    if name in FULL_RESOLUTION_CHECKED:
        full = method(ms, pan, 4, "IKONOS")
        scores["FR_HQNR"] = metrics.hqnr(full, ms, pan, 4, "IKONOS")["hqnr"]
    for key, value in scores.items():
        assert value == pytest.approx(expected[key], abs=TOLERANCE[name]), key


def test_bad_inputs_raise_clear_errors(small_pair):
    ms, pan = small_pair
    with pytest.raises(ValueError, match="unknown baseline"):
        get_method("nope")
    with pytest.raises(ValueError, match="not ratio 4 x ms"):
        METHODS["gsa"](ms, pan[:-4], 4, "QB")
    with pytest.raises(ValueError, match="NaN or inf"):
        METHODS["mtf_glp_hpm"](np.where(ms > 0, np.nan, ms), pan, 4, "QB")
    with pytest.raises(ValueError, match="constant"):
        METHODS["ihs"](ms, np.full_like(pan, 3.0), 4, "QB")


def test_fuse_scene_is_lazy_and_equals_in_memory(tmp_path):
    from crossdiff_core.baselines.scene import fuse_scene
    from crossdiff_core.io.store import open_scene
    from crossdiff_core.synthetic import write_synthetic_store

    scene = open_scene(write_synthetic_store(tmp_path, "QuickBird", ms_shape=(24, 20), seed=3))
    fused = fuse_scene(scene, "gsa")
    assert isinstance(fused.data, da.Array) and fused.dims == ("band", "y", "x")
    assert list(fused["band"].values) == scene.band_names
    expected = METHODS["gsa"](scene.ms.values, scene.pan.values, 4, "QuickBird")
    np.testing.assert_allclose(fused.values, expected, rtol=1e-10, atol=1e-8)
