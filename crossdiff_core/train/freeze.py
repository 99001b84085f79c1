"""Freezing: both pretrained UNets (P2M, M2P) into one frozen feature-extractor artifact.

The encoders are read at timestep ``t_feature``; their GroupNorm statistics are fixed on patches
of the pretraining scenes (``calibration_batches``), so the frozen features do not depend on the
batch they are computed in. Adaptation (``crossdiff_core.train.adapt``) loads the artifact.
"""

from __future__ import annotations

from pathlib import Path

from crossdiff_core.nets.extractor import extractor_from_pretrained, save_extractor
from crossdiff_core.nets.unet import read_unet_config
from crossdiff_core.scaling import Normalisation
from crossdiff_core.train.patches import PatchDataset, calibration_batches


def freeze_pretrained(
    pretrain_dir: str | Path,
    scenes: list[str | Path],
    out: str | Path,
    t_feature: int = 50,
    noise_free: bool = True,
    pan_patch: int = 64,
    calibration_patches: int = 32,
    seed: int = 0,
    decoder_features: bool = False,
    standardise_features: bool = False,
) -> Path:
    """Freeze ``<pretrain_dir>/p2m`` and ``/m2p`` into one extractor artifact at ``out``.

    GroupNorm statistics are calibrated on ``calibration_patches`` patches of ``pan_patch``
    pixels (the pretraining patch size) from ``scenes``; with ``standardise_features`` the
    per-channel feature statistics too.
    """
    pretrain_dir = Path(pretrain_dir)
    extractor = extractor_from_pretrained(
        pretrain_dir / "p2m", pretrain_dir / "m2p", t_feature=t_feature, noise_free=noise_free,
        decoder_features=decoder_features, standardise_features=standardise_features,
    )
    recorded = (read_unet_config(pretrain_dir / "p2m").get("extra") or {}).get("normalisation")
    # UNets pretrained before normalisations were recorded used the bit-depth scaling.
    normalisation = Normalisation.from_dict(recorded) if recorded else "bit_depth"
    dataset = PatchDataset([str(s) for s in scenes], pan_patch, seed=seed,
                           normalisation=normalisation)
    scene_bands = dataset._open()[0].band_names
    if scene_bands != extractor.bands:
        raise ValueError(
            f"calibration scenes have bands {scene_bands}, the encoders "
            f"{extractor.bands}: calibrate on the pretraining scenes"
        )
    extractor.calibrate(calibration_batches(dataset, calibration_patches))
    return save_extractor(extractor, out)
