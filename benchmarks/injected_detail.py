"""How good is the detail each head injects? Reduced resolution of the development crops, where
the reference exists.

A head's output is the upsampled MS plus a residual: the injected detail. The Wald copy's
reference minus the same upsampled MS is the true detail. Per band this prints:

- amplitude: RMS of the injected detail over RMS of the true detail;
- correlation of the injected with the true detail (how right its structure is);
- best gain: the least-squares factor that, applied to the injected detail, fits the true detail
  best (correlation / amplitude). Below 1 the head injects too much of what it injects, above 1
  too little;
- error: RMS of (fused - reference) over the reference's standard deviation.

Structure and amplitude are separate faults: correlation says whether pretrained features give
the head better detail, best gain whether the loss sets its amount well. The heads are those
``quality_ablation.py`` trained (head seed 0) with the same overrides; the branch heads of its
``--branches`` run are shown when they exist.

    python benchmarks/quality_ablation.py --crops l8_dev --branches
    python benchmarks/injected_detail.py --crops l8_dev
    python benchmarks/injected_detail.py --crops ikonos_dev --heads adapt.gain_weight=1.0 ...
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import quality_ablation

from crossdiff_core.degrade import interp23tap
from crossdiff_core.evaluation import TOOLBOX_BORDER_CUT
from crossdiff_core.pansharpener import load_pansharpener

METHODS = (
    "crossdiff",
    "crossdiff_random_encoders",
    "crossdiff_p2m_pretrained",
    "crossdiff_m2p_pretrained",
)


def detail_statistics(
    fused: np.ndarray, reference: np.ndarray, ms_up: np.ndarray, border: int = 0
) -> dict[str, np.ndarray]:
    """Per band (B,) statistics of the injected detail ``fused - ms_up`` against the true detail
    ``reference - ms_up``; all arrays (B, H, W), ``border`` pixels cut on every side."""
    window = (slice(None), slice(border, -border or None), slice(border, -border or None))
    fused, reference, ms_up = (np.asarray(a, np.float64)[window] for a in (fused, reference, ms_up))
    injected = (fused - ms_up).reshape(len(fused), -1)
    true = (reference - ms_up).reshape(len(fused), -1)
    injected = injected - injected.mean(axis=1, keepdims=True)
    true = true - true.mean(axis=1, keepdims=True)
    injected_rms = np.sqrt((injected**2).mean(axis=1))
    true_rms = np.sqrt((true**2).mean(axis=1))
    covariance = (injected * true).mean(axis=1)
    tiny = np.finfo(np.float64).tiny
    error = (fused - reference).reshape(len(fused), -1)
    return {
        "amplitude": injected_rms / np.maximum(true_rms, tiny),
        "correlation": covariance / np.maximum(injected_rms * true_rms, tiny),
        "best_gain": covariance / np.maximum(injected_rms**2, tiny),
        "error": np.sqrt((error**2).mean(axis=1))
        / np.maximum(reference.reshape(len(fused), -1).std(axis=1), tiny),
    }


def crop_rows(crop: str, work: Path, overrides: list[str]) -> tuple[list, list[str]]:
    full, reference, ms_lr, pan_lr = quality_ablation.wald_arrays(crop, work)
    ms_up = interp23tap(ms_lr, full.ratio)
    rows = []
    for method in METHODS:
        folder = quality_ablation.head_folder(work, crop, overrides, method, 0) / "reduced"
        if not (folder / "config.json").is_file():
            if method in METHODS[:2]:
                raise SystemExit(
                    f"no head in {folder}: run quality_ablation.py --crops {crop} with these "
                    "overrides (--set for each) first"
                )
            continue
        fused = load_pansharpener(folder).fuse(ms_lr, pan_lr)
        rows.append((method, detail_statistics(fused, reference, ms_up, TOOLBOX_BORDER_CUT)))
    return rows, list(full.ms.band.values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--crops", nargs="+", default=["ikonos_dev", "l8_dev"])
    parser.add_argument("--heads", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                        help="the overrides quality_ablation.py trained the heads with")
    parser.add_argument("--work", type=Path, default=quality_ablation.DEFAULT_WORK)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    for crop in args.crops:
        rows, bands = crop_rows(crop, args.work, args.heads)
        print(f"\n{crop} (Wald copy, head seed 0, border {TOOLBOX_BORDER_CUT} px); "
              f"bands {' '.join(bands)}")
        print("| head | amplitude | correlation | best gain | error / std |")
        print("| --- | --- | --- | --- | --- |")
        for method, stats in rows:
            cells = [" ".join(f"{v:.3f}" for v in stats[key])
                     for key in ("amplitude", "correlation", "best_gain", "error")]
            print(f"| {method} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
