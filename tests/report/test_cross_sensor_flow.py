"""The cross-sensor flow on two tiny generated sensors: every pair at both resolutions."""

from __future__ import annotations

import math

import pytest

from crossdiff_core.config import AdaptParams, CrossSensorParams, FreezeParams, PretrainParams
from crossdiff_core.report.cross_sensor import read_scores_csv
from crossdiff_core.synthetic import write_synthetic_store
from flows.cross_sensor import cross_sensor_flow

TINY_PRETRAIN = {
    "pan_patch": 16,
    "pretext": "original",  # matched_scale's 4-px MS patches (ratio 4) are too small for 4 levels
    "batch_size": 2,
    "steps": 2,
    "checkpoint_every": 2,
    "channels": [4, 8, 8, 8],
    "timesteps": 50,
    "sample_steps": 2,
    "progress": False,
    "device": "cpu",
}
TINY_FREEZE = {"calibration_patches": 2, "t_feature": 10}  # patches of pretrain.pan_patch
TINY_ADAPT = {
    "steps": 2,
    "batch_size": 2,
    "pan_patch": 16,
    "head_channels": [4, 4, 8, 8],
    "calibration_patches": 2,
    "device": "cpu",
}


@pytest.mark.slow  # pretrains, freezes and adapts for two sensors at two resolutions (~45 s)
def test_cross_sensor_flow_two_tiny_sensors(tmp_path, prefect_server):
    stores = tmp_path / "zarr"
    for seed, sensor in enumerate(("QuickBird", "IKONOS")):
        write_synthetic_store(stores, sensor=sensor, ms_shape=(32, 32), seed=seed)
    seen = []
    config = CrossSensorParams(scenes=[str(stores)], out=str(tmp_path / "out"),
                               work_dir=str(tmp_path / "work"), max_pan_size=128)
    markdown = cross_sensor_flow(config, PretrainParams(**TINY_PRETRAIN),
                                 FreezeParams(**TINY_FREEZE), AdaptParams(**TINY_ADAPT),
                                 on_artifact=seen.append)
    scores = read_scores_csv(tmp_path / "out" / "cross_sensor.csv")
    pairs = {(s.encoder_sensor, s.target_sensor) for s in scores}
    assert pairs == {(a, b) for a in ("QuickBird", "IKONOS") for b in ("QuickBird", "IKONOS")}
    for score in scores:
        assert 0.0 < score.hqnr <= 1.0 and math.isfinite(score.hqnr)
        assert -1.0 <= score.q2n <= 1.0 and math.isfinite(score.q2n)
    text = markdown.read_text()
    assert "| pretrained on IKONOS |" in text and "Pairs that could not run" not in text
    assert (tmp_path / "out" / "cross_sensor.png").stat().st_size > 5000
    assert len(seen) == 3
    # the reduced-resolution chain only ever saw degraded stores
    reduced_encoders = tmp_path / "work" / "reduced" / "QuickBird" / "encoders"
    assert reduced_encoders.is_dir()
