"""Report stage: tables, pictures, error maps and loss curves from the evaluate stage's output.

``python -m flows.report`` reads the ``report`` section of params.yaml (DVC stage ``report``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prefect import flow

from crossdiff_core.report.build import FIGURES_DIR
from flows.params import load_params
from tasks import report as report_tasks


@flow(name="report")
def report_flow(
    metrics_dir: Path,
    pretrain_dir: Path | None,
    adapt_dir: Path | None,
    out: Path,
    on_artifact: Callable[[Path], None] | None = None,
    cross_sensor_dir: Path | None = None,
) -> Path:
    """Write ``<out>/report.md``, ``report.html`` and ``figures/*.png``; returns report.md.

    ``on_artifact(path)`` is called for each file written (figures first, then both documents).
    ``cross_sensor_dir``: the cross-sensor flow's output; its matrix is added when it exists.
    """
    out = Path(out)
    figures_dir = out / FIGURES_DIR
    evaluation = report_tasks.load_evaluation(Path(metrics_dir))
    scene_figures = {
        scene_id: report_tasks.render_scene_figures(
            panel_file, figures_dir, scene_id, evaluation.metrics[scene_id]
        )
        for scene_id, panel_file in evaluation.panel_files.items()
    }
    curve_figures = report_tasks.render_training_curves(
        Path(pretrain_dir) if pretrain_dir else None,
        Path(adapt_dir) if adapt_dir else None,
        figures_dir,
    )
    cross_sensor = report_tasks.render_cross_sensor(
        Path(cross_sensor_dir) if cross_sensor_dir else None, figures_dir
    )
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


def main() -> None:
    from flows.tracked import tracked_stage

    params = load_params("report")
    out = Path(params.get("out", "reports/report"))

    def attach(path: Path) -> None:
        # Keep the report's folder layout so its relative figure links work in MLflow too.
        tracker.log_artifact(path, str(Path("report") / Path(path).parent.relative_to(out)))

    with tracked_stage("report", params) as tracker:
        _report_from_params(params, on_artifact=attach)


def _report_from_params(params: dict, on_artifact: Callable[[Path], None] | None) -> Path:
    return report_flow(
        metrics_dir=Path(params.get("metrics_dir", "reports")),
        pretrain_dir=Path(params["pretrain_dir"]) if params.get("pretrain_dir") else None,
        adapt_dir=Path(params["adapt_dir"]) if params.get("adapt_dir") else None,
        out=Path(params.get("out", "reports/report")),
        cross_sensor_dir=Path(params["cross_sensor_dir"])
        if params.get("cross_sensor_dir")
        else None,
        on_artifact=on_artifact,
    )


if __name__ == "__main__":
    main()
