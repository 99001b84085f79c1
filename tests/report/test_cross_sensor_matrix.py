"""Cross-sensor matrix core on fake scores: averaging over scenes, diagonal, files written."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossdiff_core.report.cross_sensor import (
    CrossSensorScore,
    cross_sensor_matrix,
    matrix_table,
    read_scores_csv,
    transfer_gaps,
    write_cross_sensor,
)


def _fake_scores() -> list[CrossSensorScore]:
    rng = np.random.default_rng(7)
    scenes = {"IKONOS": ["ik1", "ik2"], "WorldView-3": ["wv1"], "Landsat-8": ["l1"]}
    scores = []
    for encoder in scenes:
        for target, ids in scenes.items():
            if (encoder, target) == ("Landsat-8", "IKONOS"):
                continue  # a pair that was not run stays empty
            for scene_id in ids:
                scores.append(
                    CrossSensorScore(
                        encoder,
                        target,
                        scene_id,
                        float(rng.uniform(0.7, 0.95)),
                        float(rng.uniform(0.7, 0.95)),
                    )
                )
    return scores


def test_matrix_means_over_scenes_and_keeps_missing_pairs():
    scores = _fake_scores()
    rows, columns, matrix = cross_sensor_matrix(scores, "hqnr")
    assert rows == columns == ["IKONOS", "WorldView-3", "Landsat-8"]
    ik_on_ik = [s.hqnr for s in scores if s.encoder_sensor == s.target_sensor == "IKONOS"]
    assert matrix[0, 0] == pytest.approx(np.mean(ik_on_ik)) and len(ik_on_ik) == 2
    assert math.isnan(matrix[2, 0])
    table = matrix_table(scores, "q2n")
    assert table.bold == frozenset({(0, 1), (1, 2), (2, 3)})
    assert table.rows[2][1] == "n/a"
    gaps = transfer_gaps(scores, "hqnr")
    assert len(gaps) == 5  # 3 x 3 cells - 3 diagonal - 1 missing


def test_write_cross_sensor_files(tmp_path):
    scores = _fake_scores()
    written = write_cross_sensor(scores, tmp_path / "cross")
    assert read_scores_csv(written["csv"]) == scores
    assert written["png"].read_bytes().startswith(b"\x89PNG")
    text = written["markdown"].read_text()
    assert "| pretrained on WorldView-3 |" in text and "**" in text
    assert "![cross-sensor heat map](cross_sensor.png)" in text


def test_matrix_refuses_bad_input():
    with pytest.raises(ValueError, match="no cross-sensor scores"):
        cross_sensor_matrix([], "hqnr")
    with pytest.raises(ValueError, match="'sam' unknown"):
        cross_sensor_matrix(_fake_scores(), "sam")


def test_skipped_pairs_are_stated_and_keep_their_row(tmp_path):
    scores = [CrossSensorScore("IKONOS", "IKONOS", "ik1", 0.9, 0.85)]
    sensors = ["IKONOS", "WorldView-3"]
    skipped = {("IKONOS", "WorldView-3"): "missing bands ['coastal']"}
    written = write_cross_sensor(scores, tmp_path, sensors=sensors, skipped=skipped)
    text = written["markdown"].read_text()
    assert "- IKONOS encoders on WorldView-3: missing bands ['coastal']" in text
    assert "| pretrained on WorldView-3 | n/a | **n/a** |" in text
