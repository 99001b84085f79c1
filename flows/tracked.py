"""One MLflow run per pipeline stage, opened by the stage's ``main()``.

Stage code stays free of mlflow: it receives plain callbacks (``on_step(step, metrics)``) and
returns paths and metrics, which this wrapper logs through tasks/tracking.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flows.params import load_config
from tasks import tracking


@dataclass
class StageTracker:
    stage: str
    run_id: str

    def on_step(self, prefix: str = ""):
        """A ``(step, metrics)`` callback logging per-step metrics (e.g. losses) to this run."""
        return tracking.step_logger(prefix, run_id=self.run_id)

    def log_metrics(self, metrics: dict, prefix: str = "") -> None:
        tracking.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)},
                             prefix)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        tracking.log_artifact(path, artifact_path)


@contextlib.contextmanager
def tracked_stage(stage: str, params: dict, sensor: str | None = None) -> Iterator[StageTracker]:
    """Open the stage's MLflow run (experiment from params.yaml's ``tracking`` section)."""
    experiment = load_config("tracking").experiment
    with tracking.stage_run(stage, params, experiment=experiment, sensor=sensor) as run_id:
        yield StageTracker(stage, run_id)
