"""Prefect task of the reduced stage: an evaluation crop and its Wald pair
(crossdiff_core.evaluation_crops)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.evaluation_crops import PreparedScene, prepare_scene


@task(name="wald-pair", cache_policy=NO_CACHE)
def wald_pair_task(store: str, out_dir: Path, max_pan_size: int) -> PreparedScene:
    """Write the scene's centred evaluation crop (``<out_dir>/full``) and its Wald-degraded copy
    (``<out_dir>/reduced``), the only pair the reduced-resolution chain sees."""
    return prepare_scene(store, out_dir, max_pan_size)
