"""Prefect tasks of the freeze and adapt stages (crossdiff_core.train.adapt)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.train.adapt import AdaptConfig, AdaptResult, StepCallback


@task(name="freeze-encoders", cache_policy=NO_CACHE)
def freeze_task(
    pretrain_dir: Path,
    scenes: list[str],
    out: Path,
    t_feature: int,
    noise_free: bool,
    pan_patch: int,
    calibration_patches: int,
    seed: int,
    decoder_features: bool = False,
) -> Path:
    """Write the frozen extractor artifact (config.json + weights.pt) to ``out``."""
    from crossdiff_core.train.adapt import freeze_pretrained

    return freeze_pretrained(
        pretrain_dir,
        scenes,
        out,
        t_feature=t_feature,
        noise_free=noise_free,
        pan_patch=pan_patch,
        calibration_patches=calibration_patches,
        seed=seed,
        decoder_features=decoder_features,
    )


@task(name="adapt-head", cache_policy=NO_CACHE)
def adapt_task(
    scenes: list[str],
    out: Path,
    encoders: Path | None,
    config: AdaptConfig,
    on_step: StepCallback | None = None,
) -> AdaptResult:
    """Train the fusion head on the encoders in ``encoders``; for the ablation
    (``config.random_encoders``) on random twins of them, or random UNets when None."""
    from crossdiff_core.nets.extractor import load_extractor
    from crossdiff_core.train.adapt import adapt_head

    extractor = load_extractor(encoders) if encoders is not None else None
    return adapt_head(scenes, out, extractor, config, on_step=on_step)
