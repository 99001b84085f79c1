"""benchmarks/injected_detail.py's statistics on images whose answer is known by construction."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from injected_detail import detail_statistics  # noqa: E402


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ms_up = rng.normal(100.0, 5.0, (3, 64, 64))
    true_detail = rng.normal(0.0, [[[1.0]], [[2.0]], [[3.0]]], (3, 64, 64))
    return ms_up, ms_up + true_detail


def test_scaled_true_detail_has_correlation_one_and_the_inverse_gain():
    ms_up, reference = _scene()
    fused = ms_up + 1.5 * (reference - ms_up)
    stats = detail_statistics(fused, reference, ms_up)
    np.testing.assert_allclose(stats["amplitude"], 1.5, rtol=1e-9)
    np.testing.assert_allclose(stats["correlation"], 1.0, rtol=1e-9)
    np.testing.assert_allclose(stats["best_gain"], 1 / 1.5, rtol=1e-9)


def test_unrelated_detail_has_no_correlation_and_no_gain():
    ms_up, reference = _scene()
    noise = np.random.default_rng(1).normal(0.0, 2.0, reference.shape)
    stats = detail_statistics(ms_up + noise, reference, ms_up)
    assert np.all(np.abs(stats["correlation"]) < 0.05)
    assert np.all(np.abs(stats["best_gain"]) < 0.1)
    # Adding unrelated detail is worse than adding none: the error exceeds the true detail's.
    plain = detail_statistics(ms_up, reference, ms_up)
    assert np.all(stats["error"] > plain["error"])


def test_half_the_right_detail_plus_noise():
    ms_up, reference = _scene()
    true = reference - ms_up
    spread = true.std(axis=(1, 2))[:, None, None]
    noise = np.random.default_rng(2).normal(0.0, 1.0, true.shape) * spread
    stats = detail_statistics(ms_up + 0.5 * true + 0.5 * noise, reference, ms_up, border=4)
    # injected = 0.5 (true + noise): amplitude 0.5 * sqrt(2), correlation 1 / sqrt(2), gain 1.
    np.testing.assert_allclose(stats["amplitude"], 0.5 * np.sqrt(2), rtol=0.05)
    np.testing.assert_allclose(stats["correlation"], 1 / np.sqrt(2), rtol=0.05)
    np.testing.assert_allclose(stats["best_gain"], 1.0, rtol=0.05)


def test_border_is_cut():
    ms_up, reference = _scene()
    fused = reference.copy()
    fused[:, :2, :] += 1000.0  # garbage only in the border
    assert detail_statistics(fused, reference, ms_up, border=2)["error"] == pytest.approx(0.0)
    assert np.all(detail_statistics(fused, reference, ms_up)["error"] > 1.0)
