"""The golden test case of tests/data/golden (recipe of make_inputs.py there), loaders for its
reference values, and the anchor crops. Arrays are returned in our layout: (band, y, x) and (y, x).

Everything in tests/data/golden is in the repository (provenance in its README.md). The IKONOS and
WorldView-3 anchor crops may not be redistributed: they are read from the shared folder beside the
project (``../shared/golden``, or ``$CROSSDIFF_SHARED/golden``); tests needing them skip without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = PROJECT_ROOT / "tests" / "data" / "golden"
# Real scenes and crops that may not be copied: ../shared beside the project, or CROSSDIFF_SHARED.
SHARED_DIR = Path(os.environ.get("CROSSDIFF_SHARED", PROJECT_ROOT.parent / "shared"))
SHARED_GOLDEN_DIR = SHARED_DIR / "golden"
# Where the anchor crops that are not in the repository come from, and why they are not.
ANCHOR_SOURCES = {
    "IKONOS": "a crop of GRIP-UNINA's imgIK.mat (licence: informational and non-profit use only, "
              "not redistributed here)",
    "WV3": "a crop of the WorldView-3 test pair of CristianICS/gdal-pansharpening (GPL-3.0, kept "
           "out of this MIT repository)",
}


def _box_blur(image: np.ndarray, size: int) -> np.ndarray:
    """size x size moving average with edge padding, same-size output (size odd)."""
    half = size // 2
    padded = np.pad(image, half, mode="edge")
    summed = np.pad(np.cumsum(np.cumsum(padded, axis=0), axis=1), ((1, 0), (1, 0)))
    return (summed[size:, size:] - summed[:-size, size:] - summed[size:, :-size]
            + summed[:-size, :-size]) / float(size * size)


def golden_inputs() -> dict[str, np.ndarray]:
    """gt (4, 256, 256), pan (256, 256), ms (4, 64, 64), fused (4, 256, 256), gt_sam_zero."""
    rng = np.random.RandomState(0)
    size, ratio, bands = 256, 4, 4
    gain = np.array([0.8, 0.9, 1.0, 1.2])
    offset = np.array([200.0, 250.0, 300.0, 350.0])
    coarse = rng.rand(size // 8, size // 8)
    texture = _box_blur(np.kron(coarse, np.ones((8, 8))), 5)
    fine = _box_blur(rng.randn(size, size), 3)
    gt = (offset + 800.0 * gain * texture[:, :, None] + 60.0 * fine[:, :, None]
          + 15.0 * rng.randn(size, size, bands))
    pan = 250.0 + 900.0 * texture + 70.0 * fine + 8.0 * rng.randn(size, size)
    gt = np.clip(np.round(gt), 0, 2047)
    pan = np.clip(np.round(pan), 0, 2047)
    low = size // ratio
    ms = np.round(gt.reshape(low, ratio, low, ratio, bands).mean(axis=(1, 3)))
    ms_up = np.repeat(np.repeat(ms, ratio, axis=0), ratio, axis=1)
    pan_low = np.repeat(np.repeat(pan.reshape(low, ratio, low, ratio).mean(axis=(1, 3)), ratio,
                                  axis=0), ratio, axis=1)
    bias = np.array([6.0, -10.0, 12.0, -5.0])
    fused = (ms_up + 1.6 * (pan - pan_low)[:, :, None] * (gain / gain.mean()) + bias
             + 35.0 * rng.randn(size, size, bands))
    fused = np.clip(np.round(fused), 0, 2047)
    gt_sam_zero = gt.copy()
    gt_sam_zero[:8, :8, :] = 0.0
    cube = {"gt": gt, "ms": ms, "fused": fused, "gt_sam_zero": gt_sam_zero}
    out = {name: np.ascontiguousarray(a.transpose(2, 0, 1)) for name, a in cube.items()}
    out["pan"] = pan
    return out


def golden_results(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "golden_qb4.json").read_text())["results"]


def reference_value(results: dict, key: str):
    """The entry named by the result's own "reference" field (the authority for that value)."""
    entry = results[key]
    return entry[entry["reference"]]


def golden_arrays(golden_dir: Path) -> dict[str, np.ndarray]:
    """msexp (4, 256, 256), ms_lr (4, 64, 64), pan_lr (64, 64), h and h_scarpa (4, 41, 41)."""
    with np.load(golden_dir / "golden_qb4_arrays.npz") as data:
        return {k: (data[k].transpose(2, 0, 1) if data[k].ndim == 3 else data[k])
                for k in data.files}


def anchor_file(scene: str) -> Path:
    """anchors_<scene>.npz: in tests/data/golden (L8), else in the shared folder (IKONOS, WV3);
    skips the calling test, saying where the crop comes from, when neither has it."""
    for folder in (GOLDEN_DIR, SHARED_GOLDEN_DIR):
        path = folder / f"anchors_{scene}.npz"
        if path.is_file():
            return path
    pytest.skip(
        f"anchor crop anchors_{scene}.npz is {ANCHOR_SOURCES.get(scene, 'missing')}: put the "
        f"project's shared folder (golden/anchors_{scene}.npz) beside the project or set "
        f"CROSSDIFF_SHARED (looked in {SHARED_GOLDEN_DIR})"
    )


def anchor_crop(scene: str) -> dict:
    """One anchor crop (IKONOS, WV3 or L8) and the reference toolbox's scores on it:
    ms (B, h, w) and pan (H, W) float64, ratio, and toolbox {method: {index key: value}}."""
    path = anchor_file(scene)
    given = json.loads((GOLDEN_DIR / "anchors_given.json").read_text())
    with np.load(path) as crop:
        ms = crop["ms"].transpose(2, 0, 1).astype(np.float64)
        pan = crop["pan"].astype(np.float64)
    return {"ms": ms, "pan": pan, "ratio": given["crops"][scene]["ratio"],
            "toolbox": given["scenes"][scene]}
