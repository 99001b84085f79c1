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

A third column, the detail gain, is the amplitude of the injected detail as the classical
detail-injection methods see it: the least-squares gain of each band's high-pass (the band less
its MS-MTF blur) on the PAN's high-pass (the PAN less its PAN-MTF blur), over the whole crop.
The two estimate rows differ in the PAN's low-scale twin (``adapt.low_scale_pan``): its MTF blur
on the PAN grid, or the PAN reduced to the MS grid and brought back by interp23tap, the path the
upsampled MS took; last, the twin ``low_scale_pan: auto`` picks for the crop and for its Wald
copy (the check one scale further down, crossdiff_core.train.low_scale). The row "matched
scale" is the one estimate of it that needs no reference: the same gain of the
MS on the PAN reduced to the MS grid, one scale down.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import quality_ablation
import torch

from crossdiff_core.degrade import interp23tap, mtf_kernels, pan_mtf_kernel, wald_degrade
from crossdiff_core.pansharpener import load_pansharpener
from crossdiff_core.train.losses import local_correlation, mtf_blur, regression_gain
from crossdiff_core.train.low_scale import choose_low_scale_pan, low_scale_twin


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


def detail_gain(bands: np.ndarray, pan: np.ndarray, sensor, ratio: int) -> np.ndarray:
    """Least-squares gain per band of the bands' high-pass on the PAN's high-pass (whole image);
    bands (B, H, W) and pan (H, W) on one grid, high-pass = image less its sensor-MTF blur."""
    band_kernels = torch.from_numpy(mtf_kernels(sensor, ratio, bands.shape[0])).float()
    pan_kernel = torch.from_numpy(pan_mtf_kernel(sensor, ratio)).float()[None]
    band_tensor, pan_tensor = _tensor(bands), _tensor(pan[None])
    band_detail = (band_tensor - mtf_blur(band_tensor, band_kernels))[0].double()
    pan_detail = (pan_tensor - mtf_blur(pan_tensor, pan_kernel))[0, 0].double()
    band_detail = band_detail - band_detail.mean(dim=(-2, -1), keepdim=True)
    pan_detail = pan_detail - pan_detail.mean()
    return ((band_detail * pan_detail).sum(dim=(-2, -1)) / (pan_detail**2).sum()).numpy()


def crop_rows(crop: str, work: Path, gain_window: int | None, heads: list[str] | None):
    """[(image, correlation per band, gain per band, detail gain per band or None)], ..."""
    full, reference, ms_lr, pan_lr = quality_ablation.wald_arrays(crop, work)
    ratio, sensor = full.ratio, full.sensor
    window, gain_window = 2 * ratio, gain_window or 2 * ratio
    pan = _tensor(pan_lr[None])
    kernel = torch.from_numpy(pan_mtf_kernel(sensor, ratio)).float()[None]
    pan_low = mtf_blur(pan, kernel)
    ms_up = interp23tap(ms_lr, ratio)
    rows = [("reference (truth)", *relation(reference, pan, window, gain_window),
             detail_gain(reference, pan_lr, sensor, ratio))]
    estimate = relation(ms_up, pan_low, window, gain_window)
    rows.append(("low-scale estimate, PAN MTF blur (`low_scale_pan: mtf_blur`)", *estimate, None))
    _, pan_reduced = wald_degrade(ms_lr, pan_lr, ratio, sensor)
    pan_twin = _tensor(low_scale_twin(pan_lr, ratio, sensor, "reduced"))
    rows.append(("low-scale estimate, PAN reduced and brought back (`low_scale_pan: reduced`)",
                 *relation(ms_up, pan_twin, window, gain_window), None))
    rows.append(("matched scale: the MS on the PAN reduced to its grid", None, None,
                 detail_gain(ms_lr, pan_reduced, sensor, ratio)))
    for method in ("crossdiff", "crossdiff_random_encoders") if heads is not None else ():
        folder = quality_ablation.head_folder(work, crop, heads, method, 0) / "reduced"
        if not (folder / "config.json").is_file():
            raise SystemExit(f"no head in {folder}: run quality_ablation.py with these overrides")
        fused = load_pansharpener(folder).fuse(ms_lr, pan_lr)
        rows.append((method, *relation(fused, pan, window, gain_window),
                     detail_gain(fused, pan_lr, sensor, ratio)))
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
        print("| image | correlation per band | gain per band | detail gain per band |")
        print("| --- | --- | --- | --- |")
        for name, *values in rows:
            cells = [" ".join(f"{v:.3f}" for v in column) if column is not None else "-"
                     for column in values]
            print(f"| {name} | {' | '.join(cells)} |", flush=True)
        full, _, ms_lr, pan_lr = quality_ablation.wald_arrays(crop, args.work)
        for level, pair in (("full crop", (full.ms, full.pan)), ("Wald copy", (ms_lr, pan_lr))):
            check = choose_low_scale_pan([pair], full.ratio, full.sensor)
            print(f"`low_scale_pan: auto` on the {level}: {check.describe()}")


if __name__ == "__main__":
    main()
