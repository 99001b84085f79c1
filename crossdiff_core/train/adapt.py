"""Adaptation: train the fusion head on the target scenes, encoders frozen.

The default loss is unsupervised at full resolution (``crossdiff_core.train.losses``): nothing in
it needs a reference image, so the head learns on the very scenes it will pansharpen (or on
scenes of another sensor: encoders are matched to the scene's bands by canonical name).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from crossdiff_core.atomic import atomic_write
from crossdiff_core.degrade import interp23tap, mtf_kernels, pan_mtf_kernel, wald_degrade
from crossdiff_core.device import pick_device
from crossdiff_core.nets.extractor import FrozenExtractor, random_extractor, random_twin
from crossdiff_core.nets.fusion import FusionHead
from crossdiff_core.pansharpener import Pansharpener, save_pansharpener
from crossdiff_core.scaling import Normalisation
from crossdiff_core.train.config import AdaptConfig
from crossdiff_core.train.losses import AdaptationLoss, mtf_blur, supervised_reduced
from crossdiff_core.train.low_scale import LowScaleCheck, choose_low_scale_pan
from crossdiff_core.train.patches import PatchDataset, calibration_batches, patch_batch

StepCallback = Callable[[int, dict], None]


def _reduced_inputs(batch: dict[str, torch.Tensor], ratio: int, sensor) -> dict[str, torch.Tensor]:
    """Wald-degraded copies of a batch for the comparison mode (the original MS is the target)."""
    ms_lr, pan_lr, ms_lr_up = [], [], []
    for ms, pan in zip(batch["ms"].numpy(), batch["pan"].numpy(), strict=True):
        # Shift to positive values: the degradation works on DN-like images.
        low_ms, low_pan = wald_degrade(
            ms.astype(np.float64) + 1, pan[0].astype(np.float64) + 1, ratio, sensor
        )
        ms_lr.append(low_ms - 1)
        pan_lr.append(low_pan[None] - 1)
        ms_lr_up.append(interp23tap(low_ms, ratio) - 1)
    as_tensor = lambda arrays: torch.from_numpy(np.stack(arrays)).float()  # noqa: E731
    return {
        "ms": as_tensor(ms_lr),
        "pan": as_tensor(pan_lr),
        "ms_up": as_tensor(ms_lr_up),
        "reference": batch["ms"],
    }


@dataclass
class AdaptResult:
    out: Path
    losses: list[dict]
    seconds: float
    low_scale: LowScaleCheck | None = None  # what adapt.low_scale_pan: auto measured and chose


def build_pansharpener(
    dataset: PatchDataset,
    extractor: FrozenExtractor | None,
    config: AdaptConfig,
    normalisation: Normalisation,
    sensor_name: str,
    band_names: list[str],
) -> Pansharpener:
    """The untrained pansharpener for ``dataset``: given encoders, or random ones (ablation).

    With ``config.random_encoders`` the encoders are random frozen twins of ``extractor`` (same
    layouts, timestep and feature reading, random weights) or, when no extractor is given, random
    UNets of ``config.random_channels``.
    """
    if config.random_encoders:
        if extractor is not None:
            extractor = random_twin(extractor, seed=config.seed)
        else:
            extractor = random_extractor(
                band_names, dataset.ratio, config.random_channels, seed=config.seed
            )
        extractor.calibrate(calibration_batches(dataset, config.calibration_patches))
    elif extractor is None:
        raise ValueError(
            "adaptation needs frozen encoders (run `crossdiff freeze`) unless "
            "random_encoders is set"
        )
    head = FusionHead(
        len(band_names), extractor.feature_channels, config.head_channels,
        input_skip=config.input_skip,
    )
    return Pansharpener(
        extractor,
        head,
        {
            "sensor": sensor_name,
            "ratio": dataset.ratio,
            "band_names": band_names,
            "normalisation": normalisation.to_dict(),
            "random_encoders": not extractor.config["pretrained"],
            "encoders_sensor": extractor.config.get("sensor"),
            "adapt": asdict(config),
        },
    )


def adapt_head(
    scenes: list[str | Path],
    out: str | Path,
    extractor: FrozenExtractor | None,
    config: AdaptConfig,
    on_step: StepCallback | None = None,
) -> AdaptResult:
    """Train a fusion head on ``scenes`` (store paths) and save the pansharpener in ``out``.

    ``extractor`` stays frozen; pass None with ``config.random_encoders`` for the ablation.
    Writes ``out``/config.json + state dicts, ``losses.csv`` and ``summary.json``.
    """
    torch.manual_seed(config.seed)
    device = pick_device(config.device, what="adapt.device")
    dataset = PatchDataset([str(s) for s in scenes], config.pan_patch, seed=config.seed,
                           normalisation=config.normalisation,
                           pan_low=config.low_scale_pan == "reduced")
    first = _one_sensor(dataset)
    sensor = first.sensor
    low_scale = None
    if config.low_scale_pan == "auto" and config.mode == "unsupervised":
        low_scale = choose_low_scale_pan(
            [(scene.ms, scene.pan) for scene in dataset._open()], dataset.ratio, sensor
        )
        dataset.pan_low = low_scale.choice == "reduced"
    model = build_pansharpener(
        dataset, extractor, config, dataset.normalisation, sensor.name, first.band_names
    )
    model.to(device)
    frozen = model.extractor
    loss_fn = AdaptationLoss(
        kernels=torch.from_numpy(mtf_kernels(sensor, dataset.ratio, dataset.n_bands))
        .float()
        .to(device),
        ratio=dataset.ratio,
        spectral_weight=config.spectral_weight,
        spatial_weight=config.spatial_weight,
        spatial_loss=config.spatial_loss,
        gain_weight=config.gain_weight,
        gain_window=config.gain_window,
        overshoot_weight=config.overshoot_weight,
        correlation_boost=config.correlation_boost,
        coarse_correlation_weight=config.coarse_correlation_weight,
        coarse_correlation_window=config.coarse_correlation_window,
    )
    pan_kernel = torch.from_numpy(pan_mtf_kernel(sensor, dataset.ratio)).float()[None].to(device)
    optimiser = torch.optim.AdamW(model.head.parameters(), lr=config.lr)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.steps)
        if config.lr_schedule == "cosine" else None
    )
    losses: list[dict] = []
    started = time.perf_counter()
    model.head.train()
    for step in range(1, config.steps + 1):
        batch = patch_batch(dataset, (step - 1) * config.batch_size, config.batch_size)
        if config.mode == "supervised_reduced":
            batch = _reduced_inputs(batch, dataset.ratio, sensor)
        batch = {key: value.to(device) for key, value in batch.items()}
        terms = _loss_terms(model, batch, config.mode, loss_fn, pan_kernel)
        optimiser.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimiser.step()
        if scheduler is not None:
            scheduler.step()
        record = {"step": step, **{key: float(value.detach()) for key, value in terms.items()}}
        losses.append(record)
        if on_step is not None:
            on_step(step, {key: value for key, value in record.items() if key != "step"})
    model.eval()
    if any(p.requires_grad for p in frozen.parameters()):
        raise RuntimeError("the frozen extractor gained gradients during adaptation")
    seconds = time.perf_counter() - started
    out = Path(out)
    save_pansharpener(model.cpu(), out)
    _write_losses(out / "losses.csv", losses)
    # No timing in the model folder: the same run gives the same bytes (its DVC hash); the
    # seconds are returned (AdaptResult.seconds) and logged instead.
    summary = {
        "steps": config.steps,
        "low_scale_pan": asdict(low_scale) if low_scale else config.low_scale_pan,
        "final": losses[-1],
        "scenes": dataset.names,
        "device": str(device),
    }
    atomic_write(out / "summary.json", json.dumps(summary, indent=2))
    return AdaptResult(out, losses, seconds, low_scale)


def _one_sensor(dataset: PatchDataset):
    """The first scene of ``dataset``; ValueError when the scenes mix sensors or DN scales."""
    first = dataset._open()[0]
    scale_maxes = {scene.scale_max for scene in dataset._open()}
    sensors = {scene.attrs["sensor"] for scene in dataset._open()}
    if len(sensors) > 1 or len(scale_maxes) > 1:
        raise ValueError(
            f"adapt one model per sensor: scenes {dataset.names} mix sensors "
            f"{sorted(sensors)} / scale_max {sorted(scale_maxes)}"
        )
    return first


def _loss_terms(
    model: Pansharpener,
    batch: dict[str, torch.Tensor],
    mode: str,
    loss_fn: AdaptationLoss,
    pan_kernel: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """{"loss", "spectral", "spatial"} of the model's output on one batch."""
    fused = model(batch["ms_up"], batch["pan"])
    if mode == "supervised_reduced":
        loss = supervised_reduced(fused, batch["reference"])
        return {"loss": loss, "spectral": loss.detach(), "spatial": torch.zeros(())}
    # The PAN's low-scale twin: read beside the batch (adapt.low_scale_pan: reduced) or blurred.
    pan_low = batch["pan_low"] if "pan_low" in batch else mtf_blur(batch["pan"], pan_kernel)
    return loss_fn(fused, batch["ms"], batch["pan"], batch["ms_up"], pan_low)


def _write_losses(path: Path, losses: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(losses[0]))
    writer.writeheader()
    writer.writerows(losses)
    atomic_write(path, buffer.getvalue())
