"""benchmarks/quality_bar.py without running the chain: seed statistics, the table, both goals'
verdicts (EXP never the bar), the JSON layout, and the crop -> .mat -> store round trip."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
import quality_bar  # noqa: E402

from crossdiff_core.ingest import ingest_source  # noqa: E402

# The toolbox's scores on a crop: EXP has the highest HQNR (D_lambda 0) and must not be the bar.
TOOLBOX = quality_bar.toolbox_scores(
    {
        "EXP": {"RR_Q2n": 0.58, "FR_HQNR": 0.95, "FR_D_lambda_K": 0.05, "FR_D_s": 0.0},
        "GSA": {"RR_Q2n": 0.89, "RR_SAM": 3.1, "FR_HQNR": 0.86},
        "BDSD-PC": {"RR_Q2n": 0.8969, "RR_SAM": 3.0, "FR_HQNR": 0.88, "RR_SCC": 0.9},
        "BDSD": {"FR_HQNR": 0.87},  # its reduced-resolution run failed: no RR values
    }
)


def _run(crossdiff: tuple[float, float], ablation: tuple[float, float]) -> dict:
    return {
        "exp": {"q2n": 0.58, "hqnr": 0.95},
        "gsa": {"q2n": 0.889, "hqnr": 0.861, "sam": 3.1},
        "crossdiff_random_encoders": {"q2n": ablation[0], "hqnr": ablation[1]},
        "crossdiff": {"q2n": crossdiff[0], "hqnr": crossdiff[1]},
    }


RUNS = [_run((0.890, 0.920), (0.880, 0.925)), _run((0.894, 0.924), (0.878, 0.921))]


def test_toolbox_scores_use_our_index_names():
    assert TOOLBOX["BDSD-PC"] == {"q2n": 0.8969, "sam": 3.0, "hqnr": 0.88}  # SCC not shown
    assert TOOLBOX["BDSD"] == {"hqnr": 0.87}


def test_seed_statistics_mean_and_sample_std():
    stats = quality_bar.seed_statistics(RUNS)
    assert list(stats) == ["exp", "gsa", "crossdiff_random_encoders", "crossdiff"]
    assert stats["crossdiff"]["q2n"] == pytest.approx({"mean": 0.892, "std": 0.004 / 2**0.5})
    assert stats["gsa"]["sam"] == {"mean": 3.1, "std": 0.0}
    single = quality_bar.seed_statistics(RUNS[:1])
    assert single["crossdiff"]["hqnr"] == {"mean": 0.92, "std": 0.0}
    # What --out writes: {method: {index: {"mean", "std"}}}, JSON-clean (no NaN).
    loaded = json.loads(json.dumps({"IKONOS": stats}, allow_nan=False))
    assert set(loaded["IKONOS"]["crossdiff"]["hqnr"]) == {"mean", "std"}


def test_verdicts_name_the_toolbox_best_never_exp():
    stats = quality_bar.seed_statistics(RUNS)
    lines, met = quality_bar.verdicts("IKONOS", TOOLBOX, stats)
    text = "\n".join(lines)
    # HQNR: toolbox best without EXP is BDSD-PC 0.88; mean crossdiff 0.922.
    assert "HQNR: crossdiff mean 0.9220 ± 0.0028 beats toolbox best BDSD-PC 0.8800 (+0.0420)" in (
        text
    )
    # Q2n: mean 0.892 against BDSD-PC 0.8969.
    assert "Q2n: crossdiff mean 0.8920 ± 0.0028 does NOT beat toolbox best BDSD-PC 0.8969 " in text
    assert "best EXP" not in text and text.count("EXP") == 1  # only "(EXP excluded)"
    assert "goal 1, beat the toolbox's best classical method (EXP excluded)" in text
    assert met["beats_toolbox"] is False
    # Ablation: Q2n +0.013 >= +0.01, HQNR 0.922 vs 0.923 (-0.0010): not met.
    assert "Q2n: crossdiff mean 0.8920 vs crossdiff_random_encoders 0.8790 (+0.0130" in text
    assert "HQNR: crossdiff mean 0.9220 vs crossdiff_random_encoders 0.9230 (-0.0010" in text
    assert met["beats_ablation"] is False
    assert "the project's own best classical: HQNR gsa 0.8610, Q2n gsa 0.8890" in text


def test_both_goals_met_and_missing_methods():
    winning = [_run((0.91, 0.93), (0.89, 0.93))]
    _, met = quality_bar.verdicts("WV3", TOOLBOX, quality_bar.seed_statistics(winning))
    assert met == {"beats_toolbox": True, "beats_ablation": True}
    no_ablation = [{k: v for k, v in winning[0].items() if k != "crossdiff_random_encoders"}]
    lines, met = quality_bar.verdicts("L8", TOOLBOX, quality_bar.seed_statistics(no_ablation))
    assert met == {"beats_toolbox": True, "beats_ablation": None}
    assert any(line.endswith("CANNOT BE JUDGED") for line in lines)


def test_table_marks_exp_excluded_and_shows_mean_and_std():
    table = quality_bar.scene_table("IKONOS", TOOLBOX, quality_bar.seed_statistics(RUNS), 2)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table if line.startswith("| ")}
    assert "toolbox EXP (excluded)" in rows and "exp (excluded)" in rows
    assert "toolbox BDSD-PC" in rows and "crossdiff" in rows and "gsa" in rows
    cells = rows["crossdiff"].strip(" |").split(" | ")
    assert cells[1] == "0.8920 ± 0.0028"  # Q2n (RR)
    assert cells[4] == "0.9220 ± 0.0028"  # HQNR (FR)
    assert rows["toolbox BDSD"].strip(" |").split(" | ")[1:] == ["-", "-", "-", "0.8700", "-", "-"]


def test_crop_round_trips_through_the_mat_file_and_ingest(tmp_path):
    rng = np.random.default_rng(0)
    crop = {
        "pan": rng.uniform(7.7, 90.0, (64, 64)).astype(np.float32),
        "ms": rng.uniform(0.01, 118.0, (16, 16, 8)).astype(np.float32),
        "ratio": 4,
    }
    mat = tmp_path / "anchors_WV3.mat"
    assert quality_bar.write_mat(mat, crop, "WV3")
    assert not quality_bar.write_mat(mat, crop, "WV3")  # identical: kept (same source hash)
    result = ingest_source(mat, tmp_path / "zarr", chunk_size=64)
    assert result.sensor == "WorldView-3" and result.scene_id == "anchors_WV3"
    assert quality_bar.check_store(tmp_path / "zarr", crop, "WV3") == result.store
    changed = {**crop, "pan": crop["pan"] + np.float32(1)}
    with pytest.raises(SystemExit, match="PAN values differ in 4096 pixels"):
        quality_bar.check_store(tmp_path / "zarr", changed, "WV3")
