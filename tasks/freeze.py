"""Prefect task of the freeze stage (crossdiff_core.train.freeze)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.config import FreezeParams
from crossdiff_core.train.freeze import freeze_pretrained


@task(name="freeze-encoders", cache_policy=NO_CACHE)
def freeze_task(config: FreezeParams, pretrain_dir: Path, scenes: list[str],
                pan_patch: int) -> Path:
    """Write the frozen extractor artifact (config.json + weights.pt) to ``config.out``,
    calibrated on ``pan_patch``-pixel patches of ``scenes``."""
    return freeze_pretrained(
        Path(pretrain_dir),
        scenes,
        Path(config.out),
        t_feature=config.t_feature,
        noise_free=config.noise_free,
        pan_patch=pan_patch,
        calibration_patches=config.calibration_patches,
        seed=config.seed,
        decoder_features=config.decoder_features,
        standardise_features=config.standardise_features,
    )
