"""Prefect tasks of the report stage: one I/O step each over crossdiff_core.report."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.report import build
from crossdiff_core.report.cross_sensor import CrossSensorScore


@task(name="load-evaluation", cache_policy=NO_CACHE)
def load_evaluation(metrics_dir: Path) -> build.Evaluation:
    """Read metrics.json, metrics_long.csv and the panel file list of the evaluate stage."""
    return build.load_evaluation(metrics_dir)


@task(name="render-scene-figures", cache_policy=NO_CACHE)
def render_scene_figures(
    panel_file: Path,
    figures_dir: Path,
    scene_id: str,
    by_method: dict[str, dict[str, float]] | None = None,
) -> dict[str, Path]:
    """Draw one scene's picture panel and reduced-resolution error maps (with the scene's scores:
    CrossDiff, its variants and the best classical methods only)."""
    return build.render_scene_figures(panel_file, figures_dir, scene_id, by_method)


@task(name="render-training-curves", cache_policy=NO_CACHE)
def render_training_curves(
    pretrain_dir: Path | None, adapt_dir: Path | None, figures_dir: Path
) -> dict[str, Path]:
    """Draw the pretraining and adaptation loss curves that exist."""
    return build.render_training_curves(pretrain_dir, adapt_dir, figures_dir)


@task(name="render-cross-sensor", cache_policy=NO_CACHE)
def render_cross_sensor(
    cross_sensor_dir: Path | None, figures_dir: Path
) -> tuple[list[CrossSensorScore], Path] | None:
    """Read the cross-sensor scores (if that flow ran) and redraw their heat map."""
    scores = build.load_cross_sensor(cross_sensor_dir)
    return (scores, build.render_cross_sensor_figure(scores, figures_dir)) if scores else None


@task(name="write-report", cache_policy=NO_CACHE)
def write_report(
    evaluation: build.Evaluation,
    scene_figures: dict[str, dict[str, Path]],
    curve_figures: dict[str, Path],
    out: Path,
    cross_sensor: tuple[list[CrossSensorScore], Path] | None = None,
) -> tuple[Path, Path]:
    """Write report.md and report.html."""
    blocks = build.report_blocks(evaluation, scene_figures, curve_figures, out, cross_sensor)
    return build.write_report(blocks, out)
