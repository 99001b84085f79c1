"""Classical pansharpening baselines, as the reference toolbox implements them.

``METHODS[name](ms, pan, ratio, sensor) -> fused``: ms (B, h, w) and pan (ratio h, ratio w) in DN,
numpy (in memory) or dask (lazy, chunk by chunk, same values); fused (B, ratio h, ratio w)
float64 in DN. Families: interpolation (EXP), component substitution (Brovey, IHS, PCA, GSA),
adaptive component substitution with regression-fitted injection (BDSD, BDSD-PC, PRACS) and
multiresolution analysis (MTF-GLP, MTF-GLP-HPM, MTF-GLP-FS).
"""

from __future__ import annotations

from collections.abc import Callable

from crossdiff_core.baselines.adaptive import bdsd, bdsd_pc, pracs
from crossdiff_core.baselines.component_substitution import brovey, gsa, ihs, pca
from crossdiff_core.baselines.interpolation import exp
from crossdiff_core.baselines.multiresolution import mtf_glp, mtf_glp_fs, mtf_glp_hpm

METHODS: dict[str, Callable] = {
    "exp": exp,
    "brovey": brovey,
    "ihs": ihs,
    "pca": pca,
    "gsa": gsa,
    "bdsd": bdsd,
    "bdsd_pc": bdsd_pc,
    "pracs": pracs,
    "mtf_glp": mtf_glp,
    "mtf_glp_hpm": mtf_glp_hpm,
    "mtf_glp_fs": mtf_glp_fs,
}


def get_method(name: str) -> Callable:
    """The baseline called ``name`` (case-insensitive, '-' or '_'); clear error if unknown."""
    key = name.strip().lower().replace("-", "_")
    if key not in METHODS:
        raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(METHODS)}")
    return METHODS[key]
