"""After pretraining: sample the branch on the held-aside tile and compare with the real image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from crossdiff_core.atomic import atomic_write
from crossdiff_core.diffusion import GaussianDiffusion
from crossdiff_core.nets.unet import ConditionalUNet
from crossdiff_core.train.config import PretrainConfig
from crossdiff_core.train.patches import PatchDataset, branch_inputs

DIAGNOSTICS_FILE = "diagnostics.json"
QUICKLOOK_FILE = "quicklook.png"
DENOISE_CHECK_STEPS = (50, 250, 500, 750)


def _display(image: np.ndarray, rgb: tuple[int, int, int] | None) -> np.ndarray:
    """(C, H, W) model-range image -> (H, W, 3) or (H, W) in [0, 1], stretched 2-98 %."""
    picked = image[list(rgb)] if rgb is not None and image.shape[0] >= 3 else image[:1]
    low, high = np.percentile(picked, [2, 98])
    scaled = np.clip((picked - low) / max(high - low, 1e-6), 0, 1)
    return np.moveaxis(scaled, 0, -1) if scaled.shape[0] == 3 else scaled[0]


def _rgb_indices(band_names: list[str]) -> tuple[int, int, int] | None:
    if all(name in band_names for name in ("red", "green", "blue")):
        return tuple(band_names.index(name) for name in ("red", "green", "blue"))  # type: ignore[return-value]
    return (0, 1, 2) if len(band_names) >= 3 else None


def _save_quicklook(path: Path, panels: list[tuple[str, np.ndarray]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2))
    for axis, (title, image) in zip(axes, panels, strict=True):
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    try:
        atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=100))
    finally:
        plt.close(figure)


@torch.no_grad()
def write_diagnostics(
    model: ConditionalUNet,
    diffusion: GaussianDiffusion,
    config: PretrainConfig,
    dataset: PatchDataset,
    folder: Path,
    final_loss: float,
    steps: int,
    recent_loss: float | None = None,
) -> dict:
    """DDIM-sample the held-aside tile (P2M: PAN -> MS, M2P: MS -> PAN), write quicklook.png and
    diagnostics.json (RMSE / MAE in the model range [-1, 1], PSNR over that range of 2, and the MAE
    of one-step x0 estimates from the real image noised at t in DENOISE_CHECK_STEPS) and return
    the diagnostics dict. ``recent_loss`` is the mean loss of the last tenth of the steps (a single
    step's loss is noisy: it depends on the timesteps drawn).
    """
    # On scenes too small to spare a held-out patch the tile is a training patch, and says so.
    sample = dataset.held_out_sample()
    target, condition = branch_inputs(config.branch, sample)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    generated = diffusion.ddim_sample(
        model, condition[None].to(device), (1, *target.shape), steps=config.sample_steps,
        generator=torch.Generator().manual_seed(config.seed), guidance_scale=config.guidance_scale,
    )[0].float().cpu()
    # One-step x0 estimates from the real image noised at a few t: what the frozen encoders see
    # (t_feature ~ 50), and a check that does not depend on a long sampling trajectory.
    one_step = {}
    noise_generator = torch.Generator().manual_seed(config.seed + 2)
    for step in DENOISE_CHECK_STEPS:
        if step >= diffusion.num_timesteps:
            continue
        t = torch.tensor([step], device=device)
        noise = torch.randn((1, *target.shape), generator=noise_generator).to(device)
        x_t = diffusion.q_sample(target[None].to(device), t, noise)
        x0 = diffusion.predict_x0(x_t, t, model(x_t, t, condition[None].to(device)))
        one_step[str(step)] = float((x0.clamp(-1, 1).cpu()[0] - target).abs().mean())
    model.train(was_training)
    error = generated - target
    rmse = float(error.pow(2).mean().sqrt())
    box = dataset.held_out_box or dataset.box_for(0)[0]
    diagnostics = {
        "branch": config.branch,
        "steps": steps,
        "final_loss": final_loss,
        "recent_loss": recent_loss,
        "ddim_steps": config.sample_steps,
        "guidance_scale": config.guidance_scale,
        "tile": {"scene": dataset.names[box.scene], "ms_row": box.row, "ms_col": box.col,
                 "pan_size": config.pan_patch, "pretext": dataset.pretext,
                 "held_out": dataset.held_out_box is not None},
        "rmse": rmse,
        "mae": float(error.abs().mean()),
        "psnr_db": float(20 * np.log10(2.0 / max(rmse, 1e-12))),
        "one_step_x0_mae": one_step,
    }
    scene = dataset._open()[box.scene]
    rgb = _rgb_indices(scene.band_names)
    given = "PAN" if config.branch == "p2m" else "upsampled MS"
    wanted = "upsampled MS" if config.branch == "p2m" else "PAN"
    panels = [
        (f"condition: {given}", _display(condition.numpy(), rgb)),
        (f"sampled {wanted}", _display(generated.numpy(), rgb)),
        (f"real {wanted}", _display(target.numpy(), rgb)),
        (f"|error| (RMSE {rmse:.3f})", error.abs().mean(0).numpy()),
    ]
    _save_quicklook(folder / QUICKLOOK_FILE, panels)
    atomic_write(folder / DIAGNOSTICS_FILE, json.dumps(diagnostics, indent=2))
    return diagnostics
