"""Tiny models for the adaptation and inference tests (fixed seeds, built by code)."""

from __future__ import annotations

from pathlib import Path

import torch

from crossdiff_core.nets.extractor import FrozenExtractor, extractor_from_pretrained, save_extractor
from crossdiff_core.nets.fusion import FusionHead
from crossdiff_core.nets.unet import ConditionalUNet, save_unet
from crossdiff_core.pansharpener import Pansharpener
from crossdiff_core.sensors import get_sensor
from crossdiff_core.train.adapt import AdaptConfig, calibration_batches
from crossdiff_core.train.patches import PatchDataset

TINY_CHANNELS = (4, 8, 8, 8)


def single_torch_thread():
    """Fixture body: run tiny models on one intra-op thread, then restore the setting.

    Tiny tensors gain nothing from a second thread, and on a shared machine every small op would
    wait for that thread to be scheduled: the tests ran several times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
TINY_HEAD = [4, 4, 8, 8]


def tiny_settings(**overrides) -> AdaptConfig:
    settings = {
        "steps": 3,
        "batch_size": 2,
        "pan_patch": 64,
        "lr": 3e-3,
        "head_channels": TINY_HEAD,
        "random_channels": list(TINY_CHANNELS),
        "calibration_patches": 4,
        "device": "cpu",
    }
    return AdaptConfig(**{**settings, **overrides})


def write_tiny_pretrained(folder: Path, sensor: str, seed: int = 0) -> Path:
    """``folder``/p2m and /m2p as the pretraining stage writes them (random weights)."""
    spec = get_sensor(sensor)
    bands = len(spec.bands)
    extra = {
        "band_names": list(spec.bands),
        "ratio": spec.ratio,
        "sensor": spec.name,
        "schedule": "cosine",
        "timesteps": 1000,
    }
    for offset, (name, shape) in enumerate({"p2m": (bands, 1), "m2p": (1, bands)}.items()):
        torch.manual_seed(seed + offset)
        save_unet(ConditionalUNet(*shape, TINY_CHANNELS), folder / name, extra)
    return folder


def tiny_extractor(pretrained: Path, store: Path, out: Path, noise_free: bool = True,
                   decoder_features: bool = False) -> Path:
    """Freeze ``pretrained`` into ``out``, statistics calibrated on ``store``."""
    extractor = extractor_from_pretrained(
        pretrained / "p2m", pretrained / "m2p", noise_free=noise_free,
        decoder_features=decoder_features,
    )
    extractor.calibrate(calibration_batches(PatchDataset([str(store)], 64, seed=0), 4))
    return save_extractor(extractor, out)


def scrambled_pansharpener(
    extractor: FrozenExtractor, sensor: str, seed: int = 0, std: float = 0.05
) -> Pansharpener:
    """A pansharpener whose head has large random weights: residuals of tens of DN, so tiling
    errors cannot hide behind a near-zero residual."""
    spec = get_sensor(sensor)
    head = FusionHead(len(spec.bands), extractor.feature_channels, TINY_HEAD)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return Pansharpener(
        extractor,
        head,
        {
            "sensor": spec.name,
            "ratio": spec.ratio,
            "band_names": list(spec.bands),
            "scale_max": float(spec.max_dn),
        },
    ).eval()
