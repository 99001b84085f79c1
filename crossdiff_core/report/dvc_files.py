"""The evaluation as DVC shows it, one scene at a time (declared in dvc.yaml's evaluate stage).

- ``metrics/<scene>/<method>.json`` = {index: value}: ``dvc metrics show`` prints one row per
  method, grouped by scene (one JSON of every scene and method made one row of 90 columns);
- ``plots/<scene>/<index>.csv`` with columns ``method, value`` for each main index of
  ``PLOT_INDICES`` the scene was scored on: ``dvc plots show`` draws one sorted horizontal bar
  chart per scene and index (template ``bar_horizontal_sorted``, x ``value``, y ``method``).

``metrics.json`` ({scene: {method: {index: value}}}) stays what the report, the promotion and the
benchmarks read. Both folders are rebuilt whole (``atomic_folder``), so a scene or method no
longer evaluated leaves no file behind; a value that is not finite is ``null`` in the metrics
and left out of the plots.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path

from crossdiff_core.atomic import atomic_folder
from crossdiff_core.io.names import safe_name

METRICS_DIR = "metrics"
PLOTS_DIR = "plots"
# The indices drawn per scene: Q2n at reduced resolution (Wald protocol), HQNR at full.
PLOT_INDICES = ("q2n", "hqnr")
PLOT_COLUMNS = ("method", "value")

Scores = Mapping[str, Mapping[str, Mapping[str, float]]]


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def grouped_metrics(metrics: Scores) -> dict[str, dict[str, float | None]]:
    """{"<scene>/<method>.json": {index: value}} of {scene: {method: {index: value}}}."""
    return {f"{safe_name(scene, 'scene id')}/{safe_name(method, 'method')}.json":
            {index: _finite(value) for index, value in scores.items()}
            for scene, by_method in metrics.items() for method, scores in by_method.items()}


def plot_tables(metrics: Scores) -> dict[str, list[dict[str, object]]]:
    """{"<scene>/<index>.csv": [{"method", "value"}, ...]} for each index of PLOT_INDICES a
    method of the scene has a finite value of."""
    tables = {}
    for scene, by_method in metrics.items():
        for index in PLOT_INDICES:
            rows = [{"method": method, "value": _finite(scores.get(index))}
                    for method, scores in by_method.items()]
            rows = [row for row in rows if row["value"] is not None]
            if rows:
                tables[f"{safe_name(scene, 'scene id')}/{index}.csv"] = rows
    return tables


def _csv(rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PLOT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_dvc_files(metrics: Scores, out: str | Path) -> dict[str, Path]:
    """Write ``out/metrics/`` and ``out/plots/`` (see the module); returns both folders."""
    out = Path(out)
    files = {METRICS_DIR: {name: json.dumps(scores, indent=2) + "\n"
                           for name, scores in grouped_metrics(metrics).items()},
             PLOTS_DIR: {name: _csv(rows) for name, rows in plot_tables(metrics).items()}}

    def builder(contents: dict[str, str]):
        def build(folder: Path) -> None:
            for name, text in contents.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_text(text)
        return build

    return {f"dvc_{kind}": atomic_folder(out / kind, builder(contents))
            for kind, contents in files.items()}
