"""benchmarks/pretext_generalisation.py's denoising loss on a model whose answer is known."""

from __future__ import annotations

import sys

import pytest
from conftest import PROJECT_ROOT

from crossdiff_core.nets.unet import ConditionalUNet, save_unet
from crossdiff_core.scaling import Normalisation
from crossdiff_core.synthetic import write_synthetic_store

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from pretext_generalisation import denoising_losses  # noqa: E402


def _saved_unet(folder, branch: str):
    """A fresh UNet (zero output layer: it predicts no noise) saved with what the script reads."""
    in_channels, cond_channels = (4, 1) if branch == "p2m" else (1, 4)
    unet = ConditionalUNet(in_channels=in_channels, cond_channels=cond_channels, channels=(8, 16))
    extra = {"branch": branch, "pan_patch": 16, "schedule": "cosine", "timesteps": 1000,
             "pretext": "original",
             "normalisation": Normalisation.bit_depth(2047.0, 4).to_dict()}
    save_unet(unet, folder, extra)
    return folder


def test_a_model_that_predicts_no_noise_scores_the_noise_variance(tmp_path):
    store = write_synthetic_store(tmp_path / "zarr", "IKONOS", ms_shape=(24, 24), seed=2,
                                  georeferenced=False)
    for branch in ("p2m", "m2p"):
        folder = _saved_unet(tmp_path / branch, branch)
        losses = denoising_losses(folder, [str(store)], patches=32, timesteps=(50, 500))
        # MSE of 0 against standard normal noise: its variance, 1, at every timestep.
        assert losses == pytest.approx([1.0, 1.0], abs=0.03)
        # Fixed positions and noise: the same numbers every call.
        assert denoising_losses(folder, [str(store)], 32, (50, 500)) == losses
