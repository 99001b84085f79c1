"""Prefect tasks of the cross-sensor experiment: one I/O step each over crossdiff_core."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core import cross_sensor
from crossdiff_core.report.cross_sensor import CrossSensorScore, write_cross_sensor


@task(name="group-scenes-by-sensor", cache_policy=NO_CACHE)
def group_scenes(scenes: list[str], max_per_sensor: int | None) -> dict[str, list[str]]:
    """Find the stores in ``scenes`` and group them by sensor."""
    from crossdiff_core.io.store import find_scene_stores

    return cross_sensor.group_by_sensor(find_scene_stores(scenes), max_per_sensor)


@task(name="prepare-scene", cache_policy=NO_CACHE)
def prepare_scene(store: str, out_dir: Path, max_pan_size: int) -> cross_sensor.PreparedScene:
    """Write the scene's evaluation crop and its Wald-degraded copy."""
    return cross_sensor.prepare_scene(store, out_dir, max_pan_size)


@task(name="check-encoders", cache_policy=NO_CACHE)
def check_encoders(encoders: str, store: str) -> str | None:
    """Why the encoders cannot serve the store's sensor (ratio, bands), or None."""
    return cross_sensor.encoder_mismatch(encoders, store)


@task(name="score-model", cache_policy=NO_CACHE)
def score_model(model_dir: Path, prepared: cross_sensor.PreparedScene, resolution: str) -> float:
    """HQNR (full) or Q2n (reduced) of a saved pansharpener on one prepared scene."""
    return cross_sensor.score_model(model_dir, prepared, resolution)


@task(name="write-cross-sensor", cache_policy=NO_CACHE)
def write_matrix(
    scores: list[CrossSensorScore],
    out: Path,
    sensors: list[str],
    skipped: dict[tuple[str, str], str],
) -> dict[str, Path]:
    """Write the matrix CSV, Markdown and heat map."""
    return write_cross_sensor(scores, out, sensors=sensors, skipped=skipped)
