"""Prefect tasks of the evaluate stage: score one scene store, write the result files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.config import EvaluateParams
from crossdiff_core.evaluation import Method, PerResolution, SceneEvaluation, evaluate_scene
from crossdiff_core.evaluation_files import write_evaluation
from crossdiff_core.io.store import open_scene
from tasks.retry import io_retries


@task(name="score-scene", cache_policy=NO_CACHE)
def score_scene_task(store: str | Path, methods: Mapping[str, Method | PerResolution],
                     config: EvaluateParams) -> SceneEvaluation:
    """Read a centred crop of one scene store and score every method on it (writes nothing)."""
    return evaluate_scene(open_scene(store), methods, max_pan_size=config.max_pan_size,
                          block_size=config.block_size, border_cut=config.border_cut)


@task(name="write-evaluation", cache_policy=NO_CACHE, **io_retries(3))
def write_evaluation_task(results: Sequence[SceneEvaluation],
                          config: EvaluateParams) -> dict[str, Path]:
    """Write metrics.json, metrics_long.csv, tables/*.md and panels/*.npz under ``config.out``."""
    return write_evaluation(results, config.out, panel_crop=config.panel_crop)
