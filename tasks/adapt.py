"""Prefect task of the adapt stage (crossdiff_core.train.adapt); freezing is tasks/freeze.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.config import AdaptParams, FreezeParams
from crossdiff_core.train.adapt import AdaptResult, StepCallback


def with_encoders(config: AdaptParams, freeze: FreezeParams) -> AdaptParams:
    """``config`` with its encoders resolved: ``adapt.encoders``, or else ``freeze.out``."""
    return config if config.encoders else replace(config, encoders=freeze.out)


@task(name="adapt-head", cache_policy=NO_CACHE)
def adapt_task(stores: list[str], config: AdaptParams,
               on_step: StepCallback | None = None) -> AdaptResult:
    """Train the fusion head on ``stores`` with the encoders in ``config.encoders``; for the
    ablation (``config.random_encoders``) on random twins of them, or random UNets when None."""
    from crossdiff_core.nets.extractor import load_extractor
    from crossdiff_core.train.adapt import adapt_head

    extractor = load_extractor(config.encoders) if config.encoders is not None else None
    result = adapt_head(stores, Path(config.out), extractor, config.run_config(), on_step=on_step)
    if result.low_scale is not None:
        get_run_logger().info("%s: %s", config.out, result.low_scale.describe())
    return result
