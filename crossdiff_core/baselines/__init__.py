"""Classical pansharpening baselines, as the reference toolbox implements them.

``METHODS[name](ms, pan, ratio, sensor) -> fused``: ms (B, h, w) and pan (ratio h, ratio w) in DN,
numpy (in memory) or dask (lazy, chunk by chunk, same values); fused (B, ratio h, ratio w)
float64 in DN. Families: interpolation (EXP), component substitution (Brovey, BT-H, IHS, PCA, GS,
GSA), adaptive component substitution with regression-fitted injection (BDSD, BDSD-PC, PRACS) and
multiresolution analysis (MTF-GLP, MTF-GLP-HPM, MTF-GLP-HPM-R, MTF-GLP-FS, AWLP, MF).
"""

from __future__ import annotations

from collections.abc import Callable

from crossdiff_core.baselines.adaptive import bdsd, bdsd_pc, pracs
from crossdiff_core.baselines.component_substitution import brovey, bt_h, gs, gsa, ihs, pca
from crossdiff_core.baselines.interpolation import exp
from crossdiff_core.baselines.multiresolution import mtf_glp, mtf_glp_fs, mtf_glp_hpm, mtf_glp_hpm_r
from crossdiff_core.baselines.wavelet_morphology import awlp, mf

METHODS: dict[str, Callable] = {
    "exp": exp,
    "brovey": brovey,
    "bt_h": bt_h,
    "ihs": ihs,
    "pca": pca,
    "gs": gs,
    "gsa": gsa,
    "bdsd": bdsd,
    "bdsd_pc": bdsd_pc,
    "pracs": pracs,
    "mtf_glp": mtf_glp,
    "mtf_glp_hpm": mtf_glp_hpm,
    "mtf_glp_hpm_r": mtf_glp_hpm_r,
    "mtf_glp_fs": mtf_glp_fs,
    "awlp": awlp,
    "mf": mf,
}


def get_method(name: str) -> Callable:
    """The baseline called ``name`` (case-insensitive, '-' or '_'); clear error if unknown."""
    key = name.strip().lower().replace("-", "_")
    if key not in METHODS:
        raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(METHODS)}")
    return METHODS[key]
