"""A fake evaluate-stage output (metrics.json, metrics_long.csv, panels/) and fake loss CSVs,
made by code with fixed seeds, so the report can be tested without running the pipeline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from crossdiff_core.report.panels_data import panel_arrays, save_panel_arrays
from crossdiff_core.report.ranking import FULL_INDICES, REDUCED_INDICES

METHODS = ("exp", "gsa", "mtf_glp_hpm", "crossdiff_random_encoders", "crossdiff")
SCENES = {
    "scene_a": ("QuickBird", ("blue", "green", "red", "nir")),
    "scene_b": ("Landsat-8", ("blue", "green", "red", "nir")),
}


def fake_metrics(seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """Random but plausible values for every scene x method x index (EXP best on HQNR and Q2n)."""
    rng = np.random.default_rng(seed)
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for scene_id in SCENES:
        metrics[scene_id] = {}
        for method in METHODS:
            scores = {}
            for index in REDUCED_INDICES + FULL_INDICES:
                if index in ("sam", "r_sam"):
                    scores[index] = float(rng.uniform(1.0, 6.0))
                elif index in ("ergas", "r_ergas"):
                    scores[index] = float(rng.uniform(1.0, 8.0))
                elif index.startswith("d_"):
                    scores[index] = float(rng.uniform(0.0, 0.2))
                else:
                    scores[index] = float(rng.uniform(0.6, 0.99))
            metrics[scene_id][method] = scores
        # EXP tops HQNR and Q2n everywhere here, so a verdict that counted it as the best
        # classical method would name it (it is excluded: D_lambda 0 by construction).
        metrics[scene_id]["exp"].update(hqnr=0.995, q2n=0.995, d_lambda=0.0)
    return metrics


def _textured(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    waves = np.sin(x / 5.0) + np.cos(y / 7.0) + 0.5 * np.sin((x + y) / 3.0)
    return 500.0 + 150.0 * waves + rng.normal(0, 20, shape)


def write_fake_evaluation(out: Path, seed: int = 0, ms_size: int = 16, ratio: int = 4) -> Path:
    """Write metrics.json, metrics_long.csv and panels/<scene>.npz into ``out``; returns ``out``."""
    rng = np.random.default_rng(seed)
    metrics = fake_metrics(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    with open(out / "metrics_long.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scene", "sensor", "method", "resolution", "index", "value"])
        for scene_id, by_method in metrics.items():
            for method, scores in by_method.items():
                for index, value in scores.items():
                    resolution = "reduced" if index in REDUCED_INDICES else "full"
                    writer.writerow(
                        [scene_id, SCENES[scene_id][0], method, resolution, index, value]
                    )
    for scene_id, (sensor, bands) in SCENES.items():
        size = ms_size * ratio
        pan = _textured(rng, (size, size))
        ms_up = np.stack([pan * (0.5 + 0.2 * b) for b in range(len(bands))])
        reference = ms_up[:, ::ratio, ::ratio]
        fused = {m: ms_up + rng.normal(0, 10 * (i + 1), ms_up.shape) for i, m in enumerate(METHODS)}
        fused_rr = {
            m: reference + rng.normal(0, 10 * (i + 1), reference.shape)
            for i, m in enumerate(METHODS)
        }
        panels = panel_arrays(pan, ms_up, fused, reference, fused_rr, bands, sensor, crop=48)
        save_panel_arrays(panels, out / "panels" / f"{scene_id}.npz")
    return out


def write_fake_losses(pretrain_dir: Path, adapt_dir: Path, steps: int = 40) -> None:
    """Pretraining ``{p2m,m2p}/losses.csv`` and an adaptation ``losses.csv`` with falling losses."""
    rng = np.random.default_rng(1)
    for branch in ("p2m", "m2p"):
        (pretrain_dir / branch).mkdir(parents=True, exist_ok=True)
        with open(pretrain_dir / branch / "losses.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["step", "loss"])
            for step in range(steps):
                writer.writerow([step, 1.0 / (1 + step) + rng.uniform(0, 0.05)])
    adapt_dir.mkdir(parents=True, exist_ok=True)
    with open(adapt_dir / "losses.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss", "spectral_loss", "spatial_loss"])
        for step in range(steps):
            spectral, spatial = 0.5 / (1 + step), 0.3 / (1 + step)
            writer.writerow([step, spectral + spatial, spectral, spatial])
