"""Which evaluated methods are classical contenders, the best of them, and how to name them.

CrossDiff's quality goal is to beat the best *classical* method. Two kinds of method are left out
of that comparison: EXP, which only interpolates the MS (its D_lambda is 0 by construction, so it
tops the spectral indices without fusing anything; the reference toolbox leaves it out of its
rankings too), and the methods under test (``crossdiff`` and every ``crossdiff_*`` variant such as
the random-encoder ablation). Every other method is a classical contender.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from crossdiff_core.report.ranking import higher_is_better

CROSSDIFF_PREFIX = "crossdiff"
# Interpolation only: shown in tables for reference, never "best classical".
NOT_CONTENDERS: frozenset[str] = frozenset({"exp"})
# The reference toolbox's classical methods (golden/anchors_given.json), by their toolbox names.
TOOLBOX_METHODS: tuple[str, ...] = (
    "EXP",
    "BT-H",
    "GS",
    "GSA",
    "PCA",
    "IHS",
    "BDSD",
    "BDSD-PC",
    "PRACS",
    "MTF-GLP",
    "MTF-GLP-HPM",
    "MTF-GLP-HPM-R",
    "MTF-GLP-FS",
    "AWLP",
    "MF",
)
# Project names whose toolbox name is not simply the upper-cased name with '-' for '_'.
_TOOLBOX_ALIASES = {"mf_hg": "MF"}


def _key(method: str) -> str:
    return method.strip().lower().replace("-", "_")


def is_crossdiff(method: str) -> bool:
    """True for CrossDiff and its variants (``crossdiff``, ``crossdiff_random_encoders``, ...)."""
    return _key(method).startswith(CROSSDIFF_PREFIX)


def is_classical(method: str) -> bool:
    """True for a classical contender: neither EXP nor a CrossDiff method."""
    return not is_crossdiff(method) and _key(method) not in NOT_CONTENDERS


def classical_methods(methods: Iterable[str]) -> list[str]:
    """The classical contenders among ``methods``, in their order."""
    return [m for m in methods if is_classical(m)]


def toolbox_name(method: str) -> str | None:
    """The reference toolbox's name of the same method (``bdsd_pc`` -> ``BDSD-PC``), or None
    when the toolbox has no such method (``brovey`` is the plain Brovey transform, not BT-H)."""
    key = _key(method)
    name = _TOOLBOX_ALIASES.get(key, key.upper().replace("_", "-"))
    return name if name in TOOLBOX_METHODS else None


def method_label(method: str) -> str:
    """``GSA-equivalent `gsa``` for a method the toolbox also has, else ```brovey```."""
    equivalent = toolbox_name(method)
    return f"{equivalent}-equivalent `{method}`" if equivalent else f"`{method}`"


def _finite(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def best_classical(
    by_method: Mapping[str, Mapping[str, float]], index: str
) -> tuple[str, float] | None:
    """The classical contender with the best finite ``index`` value on one scene and that value
    (first in order on ties), or None when no contender has one."""
    values = {
        method: value
        for method, scores in by_method.items()
        if is_classical(method) and (value := _finite(scores.get(index))) is not None
    }
    if not values:
        return None
    pick = max if higher_is_better(index) else min
    best = pick(values.values())
    return next((method, value) for method, value in values.items() if value == best)


def top_classical(
    by_method: Mapping[str, Mapping[str, float]],
    indices: Sequence[str] = ("hqnr", "q2n"),
    count: int = 3,
) -> list[str]:
    """The ``count`` best classical contenders of one scene by their mean rank over ``indices``
    (1 = best on an index; a missing value ranks last), best first."""
    contenders = classical_methods(by_method)
    if not contenders or count < 1:
        return []
    total = {method: 0.0 for method in contenders}
    for index in indices:
        sign = -1.0 if higher_is_better(index) else 1.0
        ordered = sorted(
            contenders,
            key=lambda m: (
                (v := _finite(by_method[m].get(index))) is None,
                sign * v if v is not None else 0.0,
            ),
        )
        for rank, method in enumerate(ordered, start=1):
            total[method] += rank
    return sorted(contenders, key=lambda m: total[m])[:count]
