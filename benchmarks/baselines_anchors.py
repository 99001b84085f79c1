"""Every baseline on the three anchors crops (IKONOS, WorldView-3, Landsat-8) with the toolbox's
protocol, beside the reference toolbox's own scores (../shared/golden/anchors_given.json).

Run: ``python benchmarks/baselines_anchors.py [--scenes IKONOS,WV3,L8] [--methods exp,gsa]``.
Reduced resolution: Wald protocol, original MS as reference, 21-pixel border cut (the toolbox's
``RR_*``); full resolution: QNR, HQNR, D_rho and the R-indices (``FR_*``). Each row prints ours,
the toolbox's and the difference ("-" where the toolbox has no value); a closing table gives, per
method and index, the largest |ours - toolbox| over the scenes. The tool's D_rho averages its map
in single precision, which alone moves it by up to ~2e-4 (WV3); our metric sums in double.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from crossdiff_core.baselines import METHODS
from crossdiff_core.evaluation import TOOLBOX_BORDER_CUT, evaluate_method

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"
SENSORS = {"IKONOS": "IKONOS", "WV3": "WorldView-3", "L8": "Landsat-8"}
# brovey (the plain Brovey transform) has no toolbox entry: the toolbox's BT-H is bt_h.
TOOLBOX_NAMES = {"exp": "EXP", "bt_h": "BT-H", "ihs": "IHS", "gs": "GS",
                 "pca": "PCA", "gsa": "GSA", "mtf_glp": "MTF-GLP", "mtf_glp_hpm": "MTF-GLP-HPM",
                 "mtf_glp_hpm_r": "MTF-GLP-HPM-R", "awlp": "AWLP", "mf": "MF",
                 "mtf_glp_fs": "MTF-GLP-FS", "bdsd": "BDSD", "bdsd_pc": "BDSD-PC",
                 "pracs": "PRACS"}
INDICES = [
    ("reduced", "q2n", "RR_Q2n"), ("reduced", "q", "RR_Q_avg"), ("reduced", "sam", "RR_SAM"),
    ("reduced", "ergas", "RR_ERGAS"), ("reduced", "scc", "RR_SCC"),
    ("full", "hqnr", "FR_HQNR"), ("full", "d_lambda_k", "FR_D_lambda_K"), ("full", "d_s", "FR_D_s"),
    ("full", "qnr", "FR_QNR"), ("full", "d_lambda", "FR_D_lambda"), ("full", "d_rho", "FR_D_rho"),
    ("full", "r_q2n", "FR_R_Q2n"), ("full", "r_q", "FR_R_Q"), ("full", "r_sam", "FR_R_SAM"),
    ("full", "r_ergas", "FR_R_ERGAS"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default="IKONOS,WV3,L8")
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    given = json.loads((GOLDEN / "anchors_given.json").read_text())
    worst: dict[str, dict[str, float]] = {}  # method -> index -> largest |ours - toolbox|
    for scene in args.scenes.split(","):
        crop = np.load(GOLDEN / f"anchors_{scene}.npz")
        ms = crop["ms"].transpose(2, 0, 1).astype(np.float64)
        pan = crop["pan"].astype(np.float64)
        ratio = given["crops"][scene]["ratio"]
        sensor = SENSORS[scene]
        print(f"\n## {scene} ({sensor}, ratio {ratio}, MS {ms.shape[1]} x {ms.shape[2]})")
        print(f"{'method':12s} {'index':11s} {'ours':>10s} {'toolbox':>10s} {'diff':>10s}")
        for name in args.methods.split(","):
            method = METHODS[name]
            start = time.perf_counter()
            scores = evaluate_method(
                lambda m, p, method=method, ratio=ratio, sensor=sensor: method(m, p, ratio, sensor),
                ms, pan, ratio, sensor, border_cut=TOOLBOX_BORDER_CUT)
            seconds = time.perf_counter() - start
            theirs = given["scenes"][scene].get(TOOLBOX_NAMES.get(name), {})
            for resolution, index, key in INDICES:
                ours = scores[resolution][index]
                if key in theirs:
                    diff = ours - theirs[key]
                    print(f"{name:12s} {index:11s} {ours:10.4f} {theirs[key]:10.4f} {diff:10.1e}")
                    gaps = worst.setdefault(name, {})
                    gaps[index] = max(gaps.get(index, 0.0), abs(diff))
                else:
                    print(f"{name:12s} {index:11s} {ours:10.4f} {'-':>10s} {'-':>10s}")
            print(f"{name:12s} ({seconds:.1f} s for both resolutions)")
    print_largest_gaps(worst)


def print_largest_gaps(worst: dict[str, dict[str, float]]) -> None:
    """One row per method: the largest |ours - toolbox| over scenes of each index, and overall."""
    indices = [index for _, index, _ in INDICES]
    print("\nlargest |ours - toolbox| over scenes, per index ('-': no toolbox value):")
    print(f"{'method':14s}" + "".join(f"{index:>11s}" for index in indices) + f"{'all':>11s}")
    for name, gaps in worst.items():
        cells = "".join(f"{gaps[i]:11.1e}" if i in gaps else f"{'-':>11s}" for i in indices)
        print(f"{name:14s}{cells}{max(gaps.values()):11.1e}")


if __name__ == "__main__":
    main()
