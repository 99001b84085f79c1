"""Assemble the evaluation report (``report.md`` + ``report.html`` + ``figures/``) from the evaluate
stage's outputs and the training loss files.

Steps, each usable on its own (the report flow runs them as tasks): ``load_evaluation`` reads
``metrics.json``, ``metrics_long.csv`` and ``panels/``; ``render_scene_figures`` draws one scene's
panel and error maps; ``render_training_curves`` draws the loss curves; ``report_blocks`` lays out
the
document; ``write_report`` writes both renderings atomically. ``build_report`` chains them.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crossdiff_core.atomic import atomic_write
from crossdiff_core.io.names import safe_name
from crossdiff_core.report.classical import top_classical
from crossdiff_core.report.cross_sensor import (
    MATRIX_INDICES,
    CrossSensorScore,
    matrix_table,
    read_scores_csv,
    render_heat_map,
)
from crossdiff_core.report.curves import find_loss_files, render_loss_curves
from crossdiff_core.report.document import (
    Block,
    Bullets,
    Heading,
    Image,
    Paragraph,
    render_html,
    render_markdown,
)
from crossdiff_core.report.findings import goal_summary, scene_findings
from crossdiff_core.report.panels_data import load_panel_arrays
from crossdiff_core.report.pictures import (
    PANEL_CLASSICAL,
    render_error_maps,
    render_scene_panel,
)
from crossdiff_core.report.ranking import HIGHER_IS_BETTER, LOWER_IS_BETTER, Metrics
from crossdiff_core.report.tables import mean_rank_table, scene_tables
from crossdiff_core.sensors import get_sensor

REPORT_TITLE = "CrossDiff evaluation report"
FIGURES_DIR = "figures"


@dataclass
class Evaluation:
    """What the evaluate stage wrote: scores, each scene's sensor, and each scene's panel file."""

    metrics: dict[str, dict[str, dict[str, float]]]
    sensors: dict[str, str] = field(default_factory=dict)
    panel_files: dict[str, Path] = field(default_factory=dict)
    ignored_indices: list[str] = field(default_factory=list)


def _check_metrics(metrics: object, source: Path) -> dict[str, dict[str, dict[str, float]]]:
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(
            f"{source} must hold a non-empty {{scene: {{method: {{index: value}}}}}} "
            "mapping: rerun the evaluate stage"
        )
    for scene_id, by_method in metrics.items():
        if not isinstance(by_method, dict) or not all(
            isinstance(s, dict) for s in by_method.values()
        ):
            raise ValueError(f"{source}: scene {scene_id!r} must map method -> {{index: value}}")
        for method, scores in by_method.items():
            for index, value in scores.items():
                if value is not None and not isinstance(value, int | float):
                    raise ValueError(
                        f"{source}: {scene_id}/{method}/{index} is {value!r}, not a number"
                    )
    return {
        s: {
            m: {i: (math.nan if v is None else float(v)) for i, v in scores.items()}
            for m, scores in by_method.items()
        }
        for s, by_method in metrics.items()
    }


def load_evaluation(metrics_dir: str | Path) -> Evaluation:
    """Read ``metrics.json`` (required), ``metrics_long.csv`` (for sensors) and ``panels/*.npz``."""
    metrics_dir = Path(metrics_dir)
    metrics_file = metrics_dir / "metrics.json"
    if not metrics_file.is_file():
        raise FileNotFoundError(
            f"{metrics_file} not found: run the evaluate stage "
            "(`dvc repro evaluate`) or point --metrics-dir at its output"
        )
    try:
        raw = json.loads(metrics_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{metrics_file} is not valid JSON ({error}): rerun the evaluate stage"
        ) from error
    metrics = _check_metrics(raw, metrics_file)
    # Indices the report does not know (extra diagnostics) are listed, not ranked: their direction
    # of improvement is unknown.
    known = HIGHER_IS_BETTER | LOWER_IS_BETTER
    ignored = sorted(
        {i for by_method in metrics.values() for s in by_method.values() for i in s} - known
    )
    metrics = {
        scene: {m: {i: v for i, v in s.items() if i in known} for m, s in by_method.items()}
        for scene, by_method in metrics.items()
    }
    evaluation = Evaluation(metrics=metrics, ignored_indices=ignored)
    long_file = metrics_dir / "metrics_long.csv"
    if long_file.is_file():
        with open(long_file, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("scene") and row.get("sensor"):
                    evaluation.sensors.setdefault(row["scene"], row["sensor"])
    panels_dir = metrics_dir / "panels"
    for scene_id in evaluation.metrics:
        panel_file = panels_dir / f"{safe_name(scene_id, 'scene id')}.npz"
        if panel_file.is_file():
            evaluation.panel_files[scene_id] = panel_file
    return evaluation


def render_scene_figures(
    panel_file: str | Path,
    figures_dir: str | Path,
    scene_id: str,
    by_method: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Path]:
    """Draw ``<scene>_panel.png`` and (when reduced products exist) ``<scene>_errors.png``.

    ``by_method``, the scene's scores, limits the pictures to CrossDiff, its variants and the
    best classical methods (``pictures.shown_methods``); without it every method is drawn."""
    panels = load_panel_arrays(panel_file)
    figures_dir = Path(figures_dir)
    name = safe_name(scene_id, "scene id")  # the id may come from an input's metadata
    written = {
        "panel": render_scene_panel(
            panels, figures_dir / f"{name}_panel.png", title=scene_id, by_method=by_method
        )
    }
    errors = render_error_maps(
        panels, figures_dir / f"{name}_errors.png", title=scene_id, by_method=by_method
    )
    if errors is not None:
        written["errors"] = errors
    return written


def render_training_curves(
    pretrain_dir: str | Path | None, adapt_dir: str | Path | None, figures_dir: str | Path
) -> dict[str, Path]:
    """``pretrain_losses.png`` from ``<pretrain_dir>/{p2m,m2p}/losses.csv`` and
    ``adapt_losses.png`` from the loss CSVs under ``adapt_dir``; absent inputs are skipped."""
    figures_dir = Path(figures_dir)
    written: dict[str, Path] = {}
    if pretrain_dir is not None:
        branches = [(name, Path(pretrain_dir) / name / "losses.csv") for name in ("p2m", "m2p")]
        # A branch kept as it started (pretrain.finetune_steps: 0) has a header and no rows.
        branches = [(f"pretraining {name.upper()}", p) for name, p in branches
                    if p.is_file() and len(p.read_text().splitlines()) > 1]
        if branches:
            written["pretrain"] = render_loss_curves(
                branches, figures_dir / "pretrain_losses.png", "Pretraining loss (epsilon MSE)"
            )
    if adapt_dir is not None:
        files = find_loss_files(adapt_dir)
        if files:
            labelled = [(str(p.relative_to(adapt_dir)), p) for p in files]
            written["adapt"] = render_loss_curves(
                labelled, figures_dir / "adapt_losses.png", "Adaptation loss (fusion head)"
            )
    return written


def _mtf_note(sensor_name: str) -> str | None:
    try:
        sensor = get_sensor(sensor_name)
    except ValueError:
        return (
            f"Sensor {sensor_name!r} is not registered: MTF gains are the toolbox fallback (0.3)."
        )
    if not sensor.mtf_is_public:
        return (
            f"No public MTF gains exist for {sensor.name}: the MTF filter, the Wald degradation "
            "and the HQNR/R-indices use the toolbox's fallback gain 0.3, so treat those numbers "
            "as approximate."
        )
    return None


def load_cross_sensor(cross_sensor_dir: str | Path | None) -> list[CrossSensorScore]:
    """Scores of ``<cross_sensor_dir>/cross_sensor.csv`` (the cross-sensor flow's output), or an
    empty list when there is none."""
    if cross_sensor_dir is None or not (Path(cross_sensor_dir) / "cross_sensor.csv").is_file():
        return []
    return read_scores_csv(Path(cross_sensor_dir) / "cross_sensor.csv")


def render_cross_sensor_figure(scores: list[CrossSensorScore], figures_dir: str | Path) -> Path:
    """``cross_sensor.png``: the matrix heat map, redrawn beside the report's other figures."""
    return render_heat_map(scores, Path(figures_dir) / "cross_sensor.png")


def report_blocks(
    evaluation: Evaluation,
    scene_figures: Mapping[str, Mapping[str, Path]],
    curve_figures: Mapping[str, Path],
    out: str | Path,
    cross_sensor: tuple[list[CrossSensorScore], Path] | None = None,
) -> list[Block]:
    """The report's content: goal verdicts, per-scene tables and pictures, mean ranks, loss curves.
    Image paths are made relative to ``out``."""
    out = Path(out).resolve()

    def relative(path: Path) -> str:
        return Path(path).resolve().relative_to(out).as_posix()

    blocks = _overview_blocks(evaluation)
    for scene_id in evaluation.metrics:
        blocks += _scene_blocks(evaluation, scene_id, scene_figures.get(scene_id, {}), relative)
    if cross_sensor is not None and cross_sensor[0]:
        scores, heat_map = cross_sensor
        blocks += [
            Heading("Cross-sensor generalisation", 2),
            Paragraph(
                "Rows: sensor whose scenes pretrained the frozen encoders; columns: sensor "
                "the head was adapted to and evaluated on; bold = within-sensor diagonal."
            ),
            Image(relative(heat_map), "cross-sensor heat map"),
        ]
        for index in MATRIX_INDICES:
            blocks.append(matrix_table(scores, index))
    blocks.append(Heading("Training curves", 2))
    if not curve_figures:
        blocks.append(Paragraph("No pretraining or adaptation loss files were found."))
    for key, label in (("pretrain", "Pretraining losses"), ("adapt", "Adaptation losses")):
        if key in curve_figures:
            blocks.append(Image(relative(curve_figures[key]), label))
    return blocks


def _overview_blocks(evaluation: Evaluation) -> list[Block]:
    """What was compared, the quality goal and its verdicts, and the mean ranks."""
    metrics: Metrics = evaluation.metrics
    blocks: list[Block] = [
        Paragraph(
            f"{len(metrics)} scene(s), methods: "
            f"{', '.join(dict.fromkeys(m for s in metrics.values() for m in s))}. "
            "Bold marks the best value of each index in a table (↑ higher is better, "
            "↓ lower is better)."
        ),
    ]
    if evaluation.ignored_indices:
        blocks.append(
            Paragraph(
                "Not shown (unknown direction of improvement): "
                + ", ".join(evaluation.ignored_indices)
                + "."
            )
        )
    blocks += [
        Heading("Quality goal", 2),
        Paragraph(
            "Goal: CrossDiff has a higher HQNR at full resolution and a higher Q2n at reduced "
            "resolution than the best classical method on every scene, and beats the "
            "random-encoder ablation. EXP (the interpolated MS, D_lambda 0 by construction) and "
            "the CrossDiff variants are not classical contenders, as in the reference toolbox."
        ),
        Bullets(tuple(goal_summary(metrics))),
        Heading("Mean ranks across scenes", 2),
        mean_rank_table(metrics),
    ]
    return blocks


def _scene_blocks(
    evaluation: Evaluation,
    scene_id: str,
    figures: Mapping[str, Path],
    relative: Callable[[Path], str],
) -> list[Block]:
    """One scene's section: sensor note, tables, findings and pictures."""
    by_method = evaluation.metrics[scene_id]
    sensor = evaluation.sensors.get(scene_id)
    blocks: list[Block] = [Heading(f"Scene {scene_id}" + (f" ({sensor})" if sensor else ""), 2)]
    if sensor and (note := _mtf_note(sensor)):
        blocks.append(Paragraph(note))
    blocks.extend(scene_tables(evaluation.metrics, scene_id))
    blocks.append(Bullets(tuple(scene_findings(scene_id, by_method))))
    best = top_classical(by_method, count=PANEL_CLASSICAL)
    shown = (
        f" (CrossDiff, its variants and the {len(best)} best classical methods by HQNR and "
        f"Q2n: {', '.join(best)})"
        if best
        else ""
    )
    if "panel" in figures:
        blocks.append(
            Image(relative(figures["panel"]), f"{scene_id}: PAN, MS and fused images{shown}")
        )
    if "errors" in figures:
        blocks.append(
            Image(
                relative(figures["errors"]),
                f"{scene_id}: reduced-resolution error maps{shown}",
            )
        )
    if not figures:
        blocks.append(Paragraph(f"No panel arrays for {scene_id} (panels/{scene_id}.npz)."))
    return blocks


def write_report(
    blocks: list[Block], out: str | Path, title: str = REPORT_TITLE
) -> tuple[Path, Path]:
    """Write ``report.md`` and its twin ``report.html`` into ``out`` atomically."""
    out = Path(out)
    markdown = atomic_write(out / "report.md", render_markdown(title, blocks))
    html_file = atomic_write(out / "report.html", render_html(title, blocks))
    return markdown, html_file


def build_report(
    metrics_dir: str | Path,
    pretrain_dir: str | Path | None,
    adapt_dir: str | Path | None,
    out: str | Path,
    on_artifact: Callable[[Path], None] | None = None,
    cross_sensor_dir: str | Path | None = None,
) -> Path:
    """Build the whole report; returns ``report.md``. ``on_artifact(path)`` is called for
    every file written (figures, then the two documents), e.g. to attach them to a tracking run.
    ``cross_sensor_dir`` (the cross-sensor flow's output) adds the matrix when it exists."""
    out = Path(out)
    evaluation = load_evaluation(metrics_dir)
    figures_dir = out / FIGURES_DIR
    scene_figures = {
        scene_id: render_scene_figures(
            panel_file, figures_dir, scene_id, evaluation.metrics[scene_id]
        )
        for scene_id, panel_file in evaluation.panel_files.items()
    }
    curve_figures = render_training_curves(pretrain_dir, adapt_dir, figures_dir)
    scores = load_cross_sensor(cross_sensor_dir)
    cross_sensor = (scores, render_cross_sensor_figure(scores, figures_dir)) if scores else None
    markdown, html_file = write_report(
        report_blocks(evaluation, scene_figures, curve_figures, out, cross_sensor), out
    )
    if on_artifact is not None:
        for figures in scene_figures.values():
            for path in figures.values():
                on_artifact(path)
        for path in curve_figures.values():
            on_artifact(path)
        if cross_sensor is not None:
            on_artifact(cross_sensor[1])
        on_artifact(markdown)
        on_artifact(html_file)
    return markdown
