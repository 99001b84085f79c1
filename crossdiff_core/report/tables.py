"""Comparison tables: one per scene and resolution with the best value per index in bold, and the
mean ranks of every method across scenes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from crossdiff_core.report.document import Table
from crossdiff_core.report.ranking import (
    FULL_INDICES,
    REDUCED_INDICES,
    Metrics,
    best_methods,
    index_label,
    indices_in,
    mean_ranks,
    methods_in,
)


def format_value(value: object) -> str:
    """Four decimals; ``n/a`` for a missing or non-finite value."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.4f}"
    return "n/a"


def scores_table(
    by_method: Mapping[str, Mapping[str, float]],
    indices: Sequence[str],
    methods: Sequence[str] | None = None,
    caption: str = "",
) -> Table:
    """Rows = methods, columns = ``indices``; best value per index (ties too) in bold."""
    methods = list(methods) if methods is not None else list(by_method)
    rows = []
    for method in methods:
        scores = by_method.get(method, {})
        rows.append((method, *(format_value(scores.get(index)) for index in indices)))
    bold = set()
    for column, index in enumerate(indices, start=1):
        winners = best_methods({m: by_method.get(m, {}).get(index) for m in methods}, index)
        bold |= {(methods.index(m), column) for m in winners}
    return Table(
        header=("method", *(index_label(index) for index in indices)),
        rows=tuple(rows),
        bold=frozenset(bold),
        caption=caption,
    )


def scene_tables(metrics: Metrics, scene_id: str) -> list[Table]:
    """The reduced-resolution and the full-resolution table of one scene (those with any index)."""
    if scene_id not in metrics:
        raise ValueError(f"scene {scene_id!r} is not in the metrics (have {', '.join(metrics)})")
    by_method = metrics[scene_id]
    present = indices_in({scene_id: by_method})
    methods = methods_in(metrics)
    methods = [m for m in methods if m in by_method]
    tables = []
    for label, group in (
        ("Reduced resolution (Wald protocol, reference = original MS)", REDUCED_INDICES),
        ("Full resolution (no reference)", FULL_INDICES),
    ):
        indices = [index for index in group if index in present]
        if indices:
            tables.append(scores_table(by_method, indices, methods, caption=label))
    return tables


def mean_rank_table(metrics: Metrics) -> Table:
    """Mean rank per index over scenes (1 = best); lowest mean rank per column in bold."""
    ranks = mean_ranks(metrics)
    indices = indices_in(metrics)
    methods = methods_in(metrics)
    columns = [*indices, "all"]
    rows = []
    bold = set()
    for column, key in enumerate(columns, start=1):
        finite = {m: ranks[m][key] for m in methods if key in ranks[m]}
        if finite:
            low = min(finite.values())
            bold |= {(methods.index(m), column) for m, r in finite.items() if r == low}
    for method in methods:
        rows.append(
            (
                method,
                *(
                    f"{ranks[method][key]:.2f}" if key in ranks[method] else "n/a"
                    for key in columns
                ),
            )
        )
    header = ("method", *(index_label(i).split(" ")[0] for i in indices), "all indices")
    return Table(
        header=header,
        rows=tuple(rows),
        bold=frozenset(bold),
        caption=f"Mean rank over {len(metrics)} scene(s); 1 = best",
    )
