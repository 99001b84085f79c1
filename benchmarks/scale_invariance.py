"""Does the band-PAN relation the adaptation loss assumes hold? Checked where the answer is known.

The spatial terms of the adaptation loss (``adapt.spatial_loss: correlation_match`` and
``adapt.gain_weight``) ask each fused band to relate to the PAN, in windows of the PAN scale, as
the upsampled MS relates to the low-passed PAN: same local correlation (windows of 2 x ratio
pixels), same regression gain pooled over windows of ``adapt.gain_window`` pixels. On the Wald copy
of a development crop the reference exists, so this prints, per band, the reference's own values
(truth), the low-scale estimates the loss uses as targets, and, with ``--heads``, the values of
heads that ``benchmarks/quality_ablation.py`` trained on that copy (the ``reduced/`` model of
CrossDiff and of the random-encoder ablation, head seed 0):

    python benchmarks/scale_invariance.py --crops ikonos_dev l8_dev
    python benchmarks/quality_ablation.py --crops ikonos_dev \
        --set adapt.spatial_loss=correlation_match
    python benchmarks/scale_invariance.py --crops ikonos_dev \
        --heads adapt.spatial_loss=correlation_match

``--heads`` takes the same overrides, in the same order, as the quality_ablation run (no
overrides: the default variant). Where truth and estimate agree, matching the estimate moves
the image toward the reference; where they do not (measured on l8_dev), it moves it away.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import quality_ablation
import torch

from crossdiff_core.degrade import interp23tap, pan_mtf_kernel
from crossdiff_core.pansharpener import load_pansharpener
from crossdiff_core.train.losses import local_correlation, mtf_blur, regression_gain


def _tensor(array: np.ndarray) -> torch.Tensor:
    """(1, B, H, W) float32, each band less its mean: both statistics ignore a shift, and DN
    in the hundreds would lose the small local variances to float32 rounding."""
    array = np.asarray(array, np.float64)
    centred = array - array.mean(axis=(-2, -1), keepdims=True)
    return torch.from_numpy(np.ascontiguousarray(centred, dtype=np.float32))[None]


def relation(bands: np.ndarray, pan: torch.Tensor, window: int, gain_window: int):
    """(mean local correlation per band, pooled regression gain per band) of bands with pan."""
    tensor = _tensor(bands)
    rho = local_correlation(tensor, pan, window)[0].mean(dim=(-2, -1))
    return rho.numpy(), regression_gain(tensor, pan, gain_window)[0].numpy()


def crop_rows(crop: str, work: Path, gain_window: int | None, heads: list[str] | None):
    full, reference, ms_lr, pan_lr = quality_ablation.wald_arrays(crop, work)
    ratio = full.ratio
    window, gain_window = 2 * ratio, gain_window or 2 * ratio
    pan = _tensor(pan_lr[None])
    kernel = torch.from_numpy(pan_mtf_kernel(full.sensor, ratio)).float()[None]
    pan_low = mtf_blur(pan, kernel)
    ms_up = interp23tap(ms_lr, ratio)
    rows = [("reference (truth)", *relation(reference, pan, window, gain_window))]
    estimate = relation(ms_up, pan_low, window, gain_window)
    rows.append(("low-scale estimate (the loss's target)", *estimate))
    for method in ("crossdiff", "crossdiff_random_encoders") if heads is not None else ():
        folder = quality_ablation.head_folder(work, crop, heads, method, 0) / "reduced"
        if not (folder / "config.json").is_file():
            raise SystemExit(f"no head in {folder}: run quality_ablation.py with these overrides")
        fused = load_pansharpener(folder).fuse(ms_lr, pan_lr)
        rows.append((method, *relation(fused, pan, window, gain_window)))
    return rows, window, gain_window, list(full.ms.band.values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--crops", nargs="+", default=["ikonos_dev", "l8_dev"])
    parser.add_argument("--gain-window", type=int, help="PAN pixels (default: 2 x ratio)")
    parser.add_argument("--heads", nargs="*", metavar="SECTION.KEY=VALUE",
                        help="also the heads quality_ablation.py trained with these overrides")
    parser.add_argument("--work", type=Path, default=quality_ablation.DEFAULT_WORK)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    for crop in args.crops:
        rows, window, gain_window, bands = crop_rows(crop, args.work, args.gain_window, args.heads)
        print(f"\n{crop} (Wald copy): local correlation with the PAN in {window}-px windows | "
              f"regression gain on the PAN pooled over {gain_window}-px windows; bands {bands}")
        print("| image | correlation per band | gain per band |")
        print("| --- | --- | --- |")
        for name, rho, gain in rows:
            print(f"| {name} | {' '.join(f'{v:.3f}' for v in rho)} | "
                  f"{' '.join(f'{v:.3f}' for v in gain)} |", flush=True)


if __name__ == "__main__":
    main()
