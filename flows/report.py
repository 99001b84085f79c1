"""Report stage: tables, pictures, error maps and loss curves from the evaluate stage's output.

``python -m flows.report`` reads the ``report`` section of params.yaml (DVC stage ``report``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prefect import flow

from crossdiff_core.config import ReportParams, section_values
from crossdiff_core.report.build import FIGURES_DIR
from flows.params import stage_config
from tasks import report as report_tasks


@flow(name="report")
def report_flow(
    config: ReportParams,
    on_artifact: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``<config.out>/report.md``, ``report.html`` and ``figures/*.png``; returns report.md.

    ``on_artifact(path)`` is called for each file written (figures first, then both documents).
    The loss curves and the cross-sensor matrix are added when their folders exist.
    """
    out = Path(config.out)
    figures_dir = out / FIGURES_DIR
    evaluation = report_tasks.load_evaluation(Path(config.metrics_dir))
    scene_figures = {
        scene_id: report_tasks.render_scene_figures(
            panel_file, figures_dir, scene_id, evaluation.metrics[scene_id]
        )
        for scene_id, panel_file in evaluation.panel_files.items()
    }
    curve_figures = report_tasks.render_training_curves(
        _folder(config.pretrain_dir), _folder(config.adapt_dir), figures_dir
    )
    cross_sensor = report_tasks.render_cross_sensor(_folder(config.cross_sensor_dir), figures_dir)
    markdown, html_file = report_tasks.write_report(
        evaluation, scene_figures, curve_figures, out, cross_sensor
    )
    if on_artifact is not None:
        for path in [
            *(p for f in scene_figures.values() for p in f.values()),
            *curve_figures.values(),
            *([cross_sensor[1]] if cross_sensor else []),
            markdown,
            html_file,
        ]:
            on_artifact(path)
    return markdown


def _folder(path: str | None) -> Path | None:
    return Path(path) if path else None


def main() -> None:
    from flows.tracked import tracked_stage

    config = stage_config("report")["report"]
    out = Path(config.out)

    def attach(path: Path) -> None:
        # Keep the report's folder layout so its relative figure links work in MLflow too.
        tracker.log_artifact(path, str(Path("report") / Path(path).parent.relative_to(out)))

    with tracked_stage("report", section_values(config)) as tracker:
        report_flow(config, on_artifact=attach)


if __name__ == "__main__":
    main()
