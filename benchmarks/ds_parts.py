"""Where a head's D_s comes from: per band, the factors of Q(fused_b, PAN) against those of
Q(MSexp_b, PANlp) on the index's 32-px blocks, at full resolution.

D_s (METRICS.md) is the mean over bands of |Q(F_b, PAN) - Q(MSexp_b, PANlp)| with Q averaged
over blocks; Q is correlation x contrast (2 s_f s_p / (s_f^2 + s_p^2)) x luminance. This prints,
per band, the low-scale value of each factor and how far each head's full-resolution value
lies from it (signed, mean over blocks), and each head's D_s, so one can tell a correlation
overshoot (too PAN-like) from an amplitude error (too much or too little detail).

    python benchmarks/ds_parts.py STORE HEAD [HEAD ...]
    python benchmarks/ds_parts.py benchmarks/out/quality_bar/L8/zarr/Landsat-8/anchors_L8.zarr \\
        benchmarks/out/quality_bar/L8/seed0/head benchmarks/out/quality_bar/L8/seed0/ablation/full

STORE is a scene store (for example a quality-bar or ablation workspace's); each HEAD a
pansharpener folder (``adapt``'s output). The whole store is fused at once (crops, not scenes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from crossdiff_core.api import open_scene
from crossdiff_core.degrade import interp23tap
from crossdiff_core.metrics import _blocks  # the index's own block layout
from crossdiff_core.pansharpener import load_pansharpener
from crossdiff_core.train.low_scale import low_scale_twin

BLOCK = 32
FACTORS = ("correlation", "contrast", "luminance", "Q")


def block_factors(bands: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """(4, B) mean over BLOCK-px blocks of each band's correlation, contrast, luminance and Q
    with ``pan`` (N-1 statistics, as the index). bands (B, H, W), pan (H, W)."""
    n_bands = bands.shape[0]
    rows, cols = (pan.shape[0] // BLOCK) * BLOCK, (pan.shape[1] // BLOCK) * BLOCK
    x, p = _blocks(bands[:, :rows, :cols], BLOCK), _blocks(pan[None, :rows, :cols], BLOCK)
    mean_x, mean_p = x.mean(-1), p.mean(-1)
    std_x, std_p = x.std(-1, ddof=1), p.std(-1, ddof=1)
    cov = ((x - mean_x[..., None]) * (p - mean_p[..., None])).sum(-1) / (BLOCK * BLOCK - 1)
    correlation = cov / (std_x * std_p)
    contrast = 2 * std_x * std_p / (std_x**2 + std_p**2)
    luminance = 2 * mean_x * mean_p / (mean_x**2 + mean_p**2)
    factors = np.stack([correlation, contrast, luminance, correlation * contrast * luminance])
    return factors.mean(-1).reshape(4, n_bands)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", type=Path)
    parser.add_argument("heads", type=Path, nargs="+")
    args = parser.parse_args()
    scene = open_scene(args.store)
    ms = np.asarray(scene.ms.values, np.float64)
    pan = np.asarray(scene.pan.values, np.float64)
    ratio = scene.ratio
    pan_low = low_scale_twin(pan, ratio, scene.sensor, "reduced")  # D_s's PANlp
    low = block_factors(interp23tap(ms, ratio), pan_low)
    bands = " ".join(scene.band_names)
    print(f"{args.store}: {BLOCK}-px blocks, bands {bands}")
    print("| image | " + " | ".join(FACTORS) + " | D_s |")
    print("| --- " * (len(FACTORS) + 2) + "|")

    def cells(values: np.ndarray) -> str:
        return " | ".join(" ".join(f"{v:+.3f}" for v in row) for row in values)

    print(f"| low scale (MSexp, PANlp) | {cells(low).replace('+', '')} | |")
    for head in args.heads:
        model = load_pansharpener(head)
        fused = model.fuse(ms, pan).astype(np.float64)
        gap = block_factors(fused, pan) - low
        kind = "random encoders" if model.config.get("random_encoders") else "pretrained"
        print(f"| {head} ({kind}), minus low | {cells(gap)} | {np.abs(gap[3]).mean():.4f} |")


if __name__ == "__main__":
    main()
