"""Prefect tasks of the freeze and adapt stages (crossdiff_core.train.adapt)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.config import AdaptParams, FreezeParams
from crossdiff_core.train.adapt import AdaptResult, StepCallback


@task(name="freeze-encoders", cache_policy=NO_CACHE)
def freeze_task(config: FreezeParams, pretrain_dir: Path, scenes: list[str],
                pan_patch: int) -> Path:
    """Write the frozen extractor artifact (config.json + weights.pt) to ``config.out``,
    calibrated on ``pan_patch``-pixel patches of ``scenes``."""
    from crossdiff_core.train.adapt import freeze_pretrained

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
    )


@task(name="adapt-head", cache_policy=NO_CACHE)
def adapt_task(stores: list[str], config: AdaptParams,
               on_step: StepCallback | None = None) -> AdaptResult:
    """Train the fusion head on ``stores`` with the encoders in ``config.encoders``; for the
    ablation (``config.random_encoders``) on random twins of them, or random UNets when None."""
    from crossdiff_core.nets.extractor import load_extractor
    from crossdiff_core.train.adapt import adapt_head

    extractor = load_extractor(config.encoders) if config.encoders is not None else None
    return adapt_head(stores, Path(config.out), extractor, config.run_config(), on_step=on_step)
