"""Which value of each quality index is best, and mean ranks of methods across scenes.

``metrics`` everywhere is the evaluate stage's nested mapping ``{scene_id: {method: {index:
value}}}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from scipy.stats import rankdata

REDUCED_INDICES: tuple[str, ...] = ("q2n", "q", "sam", "ergas", "scc")
FULL_INDICES: tuple[str, ...] = (
    "hqnr",
    "qnr",
    "d_lambda",
    "d_lambda_k",
    "d_s",
    "d_rho",
    "r_q2n",
    "r_q",
    "r_sam",
    "r_ergas",
)
HIGHER_IS_BETTER: frozenset[str] = frozenset({"q2n", "q", "scc", "hqnr", "qnr", "r_q2n", "r_q"})
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"sam", "ergas", "d_lambda", "d_lambda_k", "d_s", "d_rho", "r_sam", "r_ergas"}
)
INDEX_LABELS: dict[str, str] = {
    "q2n": "Q2n",
    "q": "Q",
    "sam": "SAM",
    "ergas": "ERGAS",
    "scc": "SCC",
    "hqnr": "HQNR",
    "qnr": "QNR",
    "d_lambda": "D_lambda",
    "d_lambda_k": "D_lambda^K",
    "d_s": "D_s",
    "d_rho": "D_rho",
    "r_q2n": "R-Q2n",
    "r_q": "R-Q",
    "r_sam": "R-SAM",
    "r_ergas": "R-ERGAS",
}

Metrics = Mapping[str, Mapping[str, Mapping[str, float]]]


def higher_is_better(index: str) -> bool:
    """True when larger values of ``index`` mean better quality; ValueError for unknown names."""
    if index in HIGHER_IS_BETTER:
        return True
    if index in LOWER_IS_BETTER:
        return False
    raise ValueError(
        f"unknown quality index {index!r}: expected one of "
        f"{', '.join(REDUCED_INDICES + FULL_INDICES)}"
    )


def index_label(index: str) -> str:
    """Display name with the direction of improvement, e.g. ``Q2n ↑`` or ``SAM ↓``."""
    arrow = "↑" if higher_is_better(index) else "↓"
    return f"{INDEX_LABELS.get(index, index)} {arrow}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def best_methods(values_by_method: Mapping[str, float | None], index: str) -> set[str]:
    """Methods holding the best finite value of ``index`` (several if tied); empty if none."""
    finite = {m: float(v) for m, v in values_by_method.items() if _is_number(v)}
    if not finite:
        return set()
    pick = max if higher_is_better(index) else min
    best = pick(finite.values())
    return {method for method, value in finite.items() if value == best}


def ordered_indices(indices: Iterable[str]) -> list[str]:
    """Known indices in the canonical order (reduced, then full); unknown refused."""
    present = set(indices)
    for index in present:
        higher_is_better(index)
    return [index for index in REDUCED_INDICES + FULL_INDICES if index in present]


def methods_in(metrics: Metrics) -> list[str]:
    """Every method of every scene, in first-seen order."""
    seen: dict[str, None] = {}
    for by_method in metrics.values():
        for method in by_method:
            seen.setdefault(method, None)
    return list(seen)


def indices_in(metrics: Metrics) -> list[str]:
    """Every index present anywhere in ``metrics``, in canonical order."""
    return ordered_indices(
        {
            index
            for by_method in metrics.values()
            for scores in by_method.values()
            for index in scores
        }
    )


def scene_ranks(by_method: Mapping[str, Mapping[str, float]], index: str) -> dict[str, float]:
    """Rank of each method with a finite value on one scene (1 = best; ties share the mean rank)."""
    finite = {m: float(s[index]) for m, s in by_method.items() if _is_number(s.get(index))}
    if not finite:
        return {}
    methods = list(finite)
    values = np.array([finite[m] for m in methods])
    ranks = rankdata(-values if higher_is_better(index) else values, method="average")
    return dict(zip(methods, (float(r) for r in ranks), strict=True))


def mean_ranks(metrics: Metrics) -> dict[str, dict[str, float]]:
    """Mean rank of each method per index over the scenes where it was scored.

    Returns ``{method: {index: mean_rank, ..., "all": mean of all ranks}}``; an index a
    method never got a finite value for is absent from its mapping.
    """
    collected: dict[str, dict[str, list[float]]] = {m: {} for m in methods_in(metrics)}
    for by_method in metrics.values():
        for index in indices_in(metrics):
            for method, rank in scene_ranks(by_method, index).items():
                collected[method].setdefault(index, []).append(rank)
    result: dict[str, dict[str, float]] = {}
    for method, by_index in collected.items():
        result[method] = {index: float(np.mean(r)) for index, r in by_index.items()}
        every = [rank for ranks in by_index.values() for rank in ranks]
        if every:
            result[method]["all"] = float(np.mean(every))
    return result
