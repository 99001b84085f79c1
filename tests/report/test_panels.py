"""Panel arrays: same centred crop for every method, clear refusals; colour choice by sensor; one
stretch and one error scale for all methods."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from crossdiff_core.report.panels_data import (
    load_panel_arrays,
    methods_of,
    panel_arrays,
    save_panel_arrays,
)
from crossdiff_core.report.pictures import (
    display_bands,
    render_error_maps,
    render_scene_panel,
    shown_methods,
    spectral_angle_map,
    stretch_limits,
)

BANDS = ("blue", "green", "red", "nir")


def _inputs(seed: int = 0, size: int = 40, ratio: int = 4):
    rng = np.random.default_rng(seed)
    pan = rng.uniform(100, 900, (size, size))
    ms_up = rng.uniform(100, 900, (4, size, size))
    reference = rng.uniform(100, 900, (4, size // ratio, size // ratio))
    fused = {"exp": ms_up + 1, "crossdiff": ms_up + 2}
    fused_rr = {"exp": reference + 1, "crossdiff": reference * 1.1}
    return pan, ms_up, fused, reference, fused_rr


def test_panel_arrays_crop_the_same_centred_window(tmp_path):
    pan, ms_up, fused, reference, fused_rr = _inputs()
    panels = panel_arrays(pan, ms_up, fused, reference, fused_rr, BANDS, "QuickBird", crop=16)
    assert panels["pan"].shape == (16, 16) and panels["ms_up"].shape == (4, 16, 16)
    np.testing.assert_allclose(panels["pan"], pan[12:28, 12:28].astype(np.float32))
    np.testing.assert_allclose(panels["fused_crossdiff"], (ms_up + 2)[:, 12:28, 12:28], rtol=1e-6)
    assert panels["reference_rr"].shape == (4, 10, 10)  # smaller than the crop: kept whole
    assert sorted(methods_of(panels)) == ["crossdiff", "exp"]
    assert sorted(methods_of(panels, reduced=True)) == ["crossdiff", "exp"]
    path = save_panel_arrays(panels, tmp_path / "panels" / "s.npz")
    loaded = load_panel_arrays(path)
    assert str(loaded["sensor"]) == "QuickBird" and list(loaded["band_names"]) == list(BANDS)


def test_panel_arrays_refuse_mismatches():
    pan, ms_up, fused, reference, fused_rr = _inputs()
    with pytest.raises(ValueError, match="ms_up grid"):
        panel_arrays(pan[:-4], ms_up, fused, reference, fused_rr, BANDS, "QuickBird")
    with pytest.raises(ValueError, match="fused_by_method\\['exp'\\]"):
        panel_arrays(pan, ms_up, {"exp": ms_up[:3]}, reference, fused_rr, BANDS, "QuickBird")
    with pytest.raises(ValueError, match="band_names has 3 names"):
        panel_arrays(pan, ms_up, fused, reference, fused_rr, BANDS[:3], "QuickBird")
    with pytest.raises(ValueError, match="method name 'GSA-2'"):
        panel_arrays(pan, ms_up, {"GSA-2": ms_up}, reference, fused_rr, BANDS, "QuickBird")


def test_display_bands_true_or_false_colour():
    assert display_bands("QuickBird", BANDS) == ((2, 1, 0), "true colour (red, green, blue)")
    eight = ("coastal", "blue", "green", "yellow", "red", "rededge", "nir", "nir2")
    assert display_bands("WV3", eight)[0] == (4, 2, 1)
    bands, label = display_bands("generic", ("green", "red", "nir"))
    assert bands == (2, 1, 0) and label.startswith("false colour")


def test_stretch_and_error_scale():
    image = np.arange(4 * 10 * 10, dtype=float).reshape(4, 10, 10)
    low, high = stretch_limits(image, (2, 1, 0))
    np.testing.assert_allclose(low, np.percentile(image[[2, 1, 0]], 2, axis=(1, 2)))
    np.testing.assert_allclose(high, np.percentile(image[[2, 1, 0]], 98, axis=(1, 2)))
    reference = np.ones((2, 3, 3))
    rotated = np.stack([np.ones((3, 3)), np.zeros((3, 3))])
    angles = spectral_angle_map(reference, rotated)
    np.testing.assert_allclose(angles, 45.0)
    assert np.isnan(spectral_angle_map(np.zeros((2, 1, 1)), rotated[:, :1, :1])).all()


FIFTEEN = (
    "exp", "brovey", "ihs", "pca", "gsa", "mtf_glp", "mtf_glp_hpm", "mtf_glp_fs", "bdsd",
    "bdsd_pc", "pracs", "awlp", "mf", "crossdiff_random_encoders", "crossdiff",
)  # fmt: skip


def _png_height(path) -> int:
    with open(path, "rb") as handle:
        header = handle.read(24)
    assert header.startswith(b"\x89PNG")
    return struct.unpack(">I", header[20:24])[0]


def test_panel_of_fifteen_methods_shows_crossdiff_and_the_three_best_classical(tmp_path):
    # Classical methods score higher the later they come; EXP scores highest of all but is the
    # upsampled MS tile already, so it is never among the pictured classical methods.
    scores = {m: {"hqnr": 0.7 + 0.01 * i, "q2n": 0.7 + 0.01 * i} for i, m in enumerate(FIFTEEN)}
    scores["exp"] = {"hqnr": 0.999, "q2n": 0.999}
    expected = ["mf", "awlp", "pracs", "crossdiff_random_encoders", "crossdiff"]
    assert shown_methods(FIFTEEN, scores) == expected
    assert shown_methods(FIFTEEN) == list(FIFTEEN)  # no scores: every method

    rng = np.random.default_rng(4)
    pan, ms_up = rng.uniform(100, 900, (32, 32)), rng.uniform(100, 900, (4, 32, 32))
    reference = rng.uniform(100, 900, (4, 8, 8))
    fused = {m: ms_up + i for i, m in enumerate(FIFTEEN)}
    fused_rr = {m: reference + i for i, m in enumerate(FIFTEEN)}
    panels = panel_arrays(pan, ms_up, fused, reference, fused_rr, BANDS, "QuickBird", crop=32)
    # 2 + 5 tiles fit two rows of four; all 2 + 15 tiles need five.
    few = _png_height(render_scene_panel(panels, tmp_path / "few.png", by_method=scores))
    every = _png_height(render_scene_panel(panels, tmp_path / "all.png"))
    assert few < 0.5 * every
    # Error maps: 5 maps in two rows, all 15 in four.
    few_errors = _png_height(render_error_maps(panels, tmp_path / "e.png", by_method=scores))
    every_errors = _png_height(render_error_maps(panels, tmp_path / "ea.png"))
    assert few_errors < 0.6 * every_errors
