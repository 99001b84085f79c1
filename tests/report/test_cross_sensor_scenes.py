"""Cross-sensor scene preparation (crop + Wald copy) and the encoder/scene compatibility check."""

from __future__ import annotations

import numpy as np
import pytest
from adapt_helpers import tiny_extractor, write_tiny_pretrained

from crossdiff_core.cross_sensor import (
    encoder_mismatch,
    evaluation_window,
    group_by_sensor,
    prepare_scene,
)
from crossdiff_core.degrade import wald_degrade
from crossdiff_core.io.store import open_scene
from crossdiff_core.synthetic import write_synthetic_store


def test_prepare_scene_writes_crop_and_its_wald_pair(tmp_path):
    store = write_synthetic_store(tmp_path / "zarr", "IKONOS", ms_shape=(40, 36), seed=2)
    prepared = prepare_scene(store, tmp_path / "work", max_pan_size=1024)
    full, reduced = open_scene(prepared.full_store), open_scene(prepared.reduced_store)
    assert full.ms.shape == (4, 32, 32) and full.pan.shape == (128, 128)
    original = open_scene(store)
    np.testing.assert_array_equal(full.ms.values, original.ms.values[:, 4:36, 2:34])
    ms_lr, pan_lr = wald_degrade(
        full.ms.values.astype(float), full.pan.values.astype(float), 4, "IKONOS"
    )
    np.testing.assert_allclose(reduced.ms.values, ms_lr, rtol=1e-6)
    np.testing.assert_allclose(reduced.pan.values, pan_lr, rtol=1e-6)
    assert group_by_sensor([store, prepared.full_store], max_per_sensor=1) == {
        "IKONOS": [str(store)]
    }


def test_evaluation_window_refuses_tiny_scenes():
    assert evaluation_window((100, 70), 4, 256, "s") == (slice(18, 82), slice(3, 67))
    with pytest.raises(ValueError, match="too small for one 32-pixel quality block"):
        evaluation_window((20, 64), 4, 1024, "tiny.zarr")


def test_encoder_mismatch_names_ratio_and_bands(tmp_path):
    stores = {
        s: write_synthetic_store(tmp_path / "zarr", s, ms_shape=(32, 32))
        for s in ("IKONOS", "Landsat-8", "WorldView-3")
    }
    four = tiny_extractor(
        write_tiny_pretrained(tmp_path / "pre4", "IKONOS"), stores["IKONOS"], tmp_path / "enc4"
    )
    eight = tiny_extractor(
        write_tiny_pretrained(tmp_path / "pre8", "WorldView-3"),
        stores["WorldView-3"],
        tmp_path / "enc8",
    )
    assert encoder_mismatch(four, stores["IKONOS"]) is None
    assert encoder_mismatch(four, stores["WorldView-3"]) is None  # its bands are a subset
    assert "ratio 4, the scenes have ratio 2" in encoder_mismatch(four, stores["Landsat-8"])
    assert "coastal" in encoder_mismatch(eight, stores["IKONOS"])
