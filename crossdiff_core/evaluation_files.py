"""Writing evaluation results: metrics.json, a long-form CSV and a Markdown table per scene.

Layout under ``out`` (what the report stage reads): ``metrics.json`` = {scene: {method: {index:
value}}}, ``metrics_long.csv`` with columns scene, sensor, method, resolution, index, value,
``tables/<scene>.md`` and ``panels/<scene>.npz`` (picture crops), and for DVC, one scene at a
time, ``metrics/<scene>/<method>.json`` and ``plots/<scene>/<index>.csv``
(``crossdiff_core.report.dvc_files``). Every file is written to a temporary name and renamed when
complete.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from crossdiff_core.atomic import atomic_write
from crossdiff_core.evaluation import FULL_INDICES, REDUCED_INDICES, SceneEvaluation
from crossdiff_core.io.names import safe_name
from crossdiff_core.report.dvc_files import write_dvc_files
from crossdiff_core.report.findings import CROSSDIFF, scene_findings
from crossdiff_core.report.panels_data import panel_arrays, save_panel_arrays

LONG_COLUMNS = ("scene", "sensor", "method", "resolution", "index", "value")


def metrics_mapping(results: Sequence[SceneEvaluation]) -> dict[str, dict[str, dict[str, float]]]:
    return {r.scene_id: {m: dict(s) for m, s in r.scores.items()} for r in results}


def long_rows(results: Sequence[SceneEvaluation]) -> list[dict[str, object]]:
    rows = []
    for result in results:
        for method, scores in result.scores.items():
            for index, value in scores.items():
                resolution = "reduced" if index in REDUCED_INDICES else "full"
                rows.append({"scene": result.scene_id, "sensor": result.sensor, "method": method,
                             "resolution": resolution, "index": index, "value": value})
    return rows


def markdown_table(result: SceneEvaluation) -> str:
    """Two Markdown tables (reduced, full resolution), one row per method, and when CrossDiff was
    scored the quality-goal verdicts (vs the best classical method, named, and the ablation)."""
    lines = [f"# {result.scene_id} ({result.sensor}, ratio {result.ratio})", ""]
    for title, indices in (("Reduced resolution (Wald protocol)", REDUCED_INDICES),
                           ("Full resolution", FULL_INDICES)):
        lines += [f"## {title}", "", "| method | " + " | ".join(indices) + " |",
                  "| --- |" + " ---: |" * len(indices)]
        for method, scores in result.scores.items():
            cells = " | ".join(f"{scores[i]:.4f}" if i in scores else "" for i in indices)
            lines.append(f"| {method} | {cells} |")
        lines.append("")
    if CROSSDIFF in result.scores:
        lines += ["## Quality goal (best classical: EXP and the CrossDiff variants excluded)", ""]
        lines += [f"- {sentence}" for sentence in scene_findings(result.scene_id, result.scores)]
        lines.append("")
    return "\n".join(lines)


def write_evaluation(results: Sequence[SceneEvaluation], out: str | Path,
                     panel_crop: int = 256) -> dict[str, Path]:
    """Write every output file; returns their paths by kind."""
    out = Path(out)
    written = {"metrics": atomic_write(
        out / "metrics.json", json.dumps(metrics_mapping(results), indent=2) + "\n")}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LONG_COLUMNS)
    writer.writeheader()
    writer.writerows(long_rows(results))
    written["long_csv"] = atomic_write(out / "metrics_long.csv", buffer.getvalue())
    written.update(write_dvc_files(metrics_mapping(results), out))
    for result in results:
        name = safe_name(result.scene_id, "scene id")  # the id may come from an input's metadata
        written[f"table:{result.scene_id}"] = atomic_write(
            out / "tables" / f"{name}.md", markdown_table(result))
        panels = panel_arrays(result.pan, result.ms_up, result.fused_full, result.ms,
                              result.fused_reduced, result.band_names, result.sensor,
                              crop=panel_crop)
        written[f"panel:{result.scene_id}"] = save_panel_arrays(
            panels, out / "panels" / f"{name}.npz")
    return written
