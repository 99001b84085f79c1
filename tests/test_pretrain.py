"""Pretraining loop with tiny models: learning, exact resume, DDP equivalence, bad input, CUDA."""

from __future__ import annotations

import csv
import json
import socket

import pytest
import torch
import torch.multiprocessing as mp

from crossdiff_core.diffusion import GaussianDiffusion, make_schedule
from crossdiff_core.nets.unet import ConditionalUNet, load_unet
from crossdiff_core.synthetic import write_synthetic_store
from crossdiff_core.train.checkpoint import load_checkpoint
from crossdiff_core.train.config import PretrainConfig
from crossdiff_core.train.pretrain import train_branch
from tests.pretrain_helpers import TINY


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("zarr")
    # No grid: pretraining ignores it, and the gpu test then runs without rasterio.
    write_synthetic_store(root, "Landsat-8", ms_shape=(24, 32), seed=5, georeferenced=False)
    return [str(root)]


def _losses(folder) -> list[float]:
    with open(folder / "losses.csv") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = ConditionalUNet(in_channels=4, cond_channels=1, channels=(8, 16))
    diffusion = GaussianDiffusion(make_schedule("cosine", 100))
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 4, 16, 16) * 2 - 1
    condition = x0.mean(1, keepdim=True)
    t, noise, _ = diffusion.draw_training_inputs(x0.shape, generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = diffusion.training_loss(model, x0, condition, t, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_run_writes_model_curves_and_diagnostics(tmp_path, scenes):
    seen = []
    config = PretrainConfig(
        branch="m2p", scenes=scenes, out=str(tmp_path), steps=3, checkpoint_every=2, **TINY
    )
    result = train_branch(config, on_step=lambda step, metrics: seen.append((step, metrics)))
    folder = tmp_path / "m2p"
    assert [step for step, _ in seen] == [1, 2, 3]
    assert len(_losses(folder)) == 3 and _losses(folder)[-1] == pytest.approx(
        result.final_loss, rel=1e-5
    )  # .6g
    model = load_unet(folder)
    assert model.config["in_channels"] == 1 and model.config["cond_channels"] == 4
    document = json.loads((folder / "config.json").read_text())
    assert document["extra"]["branch"] == "m2p" and document["extra"]["ratio"] == 2
    recorded = document["extra"]["normalisation"]
    assert recorded["kind"] == "percentile" and len(recorded["ms_low"]) == 4
    assert all(lo < hi for lo, hi in zip(recorded["ms_low"], recorded["ms_high"], strict=True))
    diagnostics = json.loads((folder / "diagnostics.json").read_text())
    assert diagnostics["rmse"] > 0 and diagnostics["tile"]["pan_size"] == 16
    assert set(diagnostics["one_step_x0_mae"]) == {"50"}  # T = 100 keeps only t = 50
    assert (folder / "quicklook.png").stat().st_size > 1000
    assert load_checkpoint(folder / "checkpoint.pt")["step"] == 3


def test_resume_repeats_the_uninterrupted_losses(tmp_path, scenes):
    settings = dict(
        branch="p2m", scenes=scenes, checkpoint_every=2, ema_decay=0.9, cond_drop_prob=0.5, **TINY
    )
    train_branch(PretrainConfig(out=str(tmp_path / "whole"), steps=5, **settings))
    train_branch(PretrainConfig(out=str(tmp_path / "parts"), steps=2, **settings))
    train_branch(PretrainConfig(out=str(tmp_path / "parts"), steps=5, **settings))
    assert _losses(tmp_path / "whole" / "p2m") == _losses(tmp_path / "parts" / "p2m")
    whole = load_unet(tmp_path / "whole" / "p2m").state_dict()
    parts = load_unet(tmp_path / "parts" / "p2m").state_dict()
    for key in whole:
        assert torch.equal(whole[key], parts[key]), key
    with pytest.raises(ValueError, match=r"another configuration \(lr: checkpoint 0.0003 vs now"):
        train_branch(
            PretrainConfig(out=str(tmp_path / "parts"), steps=6, **{**settings, "lr": 1e-3})
        )
    eight_bands = tmp_path / "worldview3"
    write_synthetic_store(eight_bands, "WorldView-3", ms_shape=(8, 8), seed=1)
    other_scenes = r"another configuration \(training_data: .*unet: checkpoint .*'in_chan"
    with pytest.raises(ValueError, match=other_scenes):
        train_branch(
            PretrainConfig(
                out=str(tmp_path / "parts"), steps=6, **{**settings, "scenes": [str(eight_bands)]}
            )
        )


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, scenes, monkeypatch):
    original = GaussianDiffusion.training_loss
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = original(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(GaussianDiffusion, "training_loss", poisoned)
    config = PretrainConfig(
        branch="p2m", scenes=scenes, out=str(tmp_path), steps=5, checkpoint_every=2, **TINY
    )
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 3.*step 2\) is kept"):
        train_branch(config)
    assert load_checkpoint(tmp_path / "p2m" / "checkpoint.pt")["step"] == 2
    assert len(_losses(tmp_path / "p2m")) == 2


def test_config_from_params_merges_branch_overrides_and_refuses_unknown_keys():
    section = {"steps": 10, "lr": 1e-3, "channels": [8, 16], "p2m": {"steps": 20}, "m2p": {}}
    assert PretrainConfig.from_params(section, "p2m").steps == 20
    assert PretrainConfig.from_params(section, "m2p", steps=7).steps == 7
    with pytest.raises(ValueError, match=r"unknown keys in pretrain.m2p: \['stepz'\]"):
        PretrainConfig.from_params({**section, "m2p": {"stepz": 1}}, "m2p")
    with pytest.raises(ValueError, match="divisible by 2"):
        PretrainConfig(branch="p2m", pan_patch=15, channels=[8, 16])
    assert PretrainConfig.from_params({**section, "train_t_max": 200}, "p2m").train_t_max == 200
    with pytest.raises(ValueError, match=r"train_t_max must lie in \[1, timesteps=1000\]"):
        PretrainConfig(branch="p2m", train_t_max=0)
    with pytest.raises(ValueError, match="pretrain.normalisation 'minmax'"):
        PretrainConfig(branch="p2m", normalisation="minmax")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, config: PretrainConfig) -> None:
    import os

    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "LOCAL_RANK": str(rank),
        }
    )
    torch.set_num_threads(1)
    try:
        train_branch(config)
    finally:
        torch.distributed.destroy_process_group()


def test_two_process_gloo_ddp_matches_one_process(tmp_path, scenes):
    settings = dict(branch="p2m", scenes=scenes, steps=3, checkpoint_every=3, device="cpu", **TINY)
    single = PretrainConfig(out=str(tmp_path / "single"), **settings)
    train_branch(single)
    double = PretrainConfig(out=str(tmp_path / "ddp"), **settings)
    mp.spawn(_ddp_worker, args=(2, _free_port(), double), nprocs=2, join=True)
    torch.testing.assert_close(
        torch.tensor(_losses(tmp_path / "ddp" / "p2m")),
        torch.tensor(_losses(tmp_path / "single" / "p2m")),
        rtol=1e-4,
        atol=1e-6,
    )
    one = load_unet(tmp_path / "single" / "p2m").state_dict()
    two = load_unet(tmp_path / "ddp" / "p2m").state_dict()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_cuda_path_uses_bf16_autocast_and_channels_last(tmp_path, scenes):
    seen_dtypes = []
    original = ConditionalUNet.forward

    def spy(self, x_t, t, condition):
        eps = original(self, x_t, t, condition)
        if self.training:
            seen_dtypes.append((eps.dtype, x_t.is_contiguous(memory_format=torch.channels_last)))
        return eps

    ConditionalUNet.forward = spy
    try:
        config = PretrainConfig(
            branch="p2m",
            scenes=scenes,
            out=str(tmp_path),
            steps=3,
            checkpoint_every=3,
            device="cuda",
            **TINY,
        )
        result = train_branch(config)
    finally:
        ConditionalUNet.forward = original
    assert seen_dtypes and all(dtype == torch.bfloat16 for dtype, _ in seen_dtypes)
    assert all(channels_last for _, channels_last in seen_dtypes)
    assert torch.isfinite(torch.tensor(result.final_loss))
    assert load_unet(tmp_path / "p2m").config["in_channels"] == 4


def test_matched_scale_pretext_trains_on_ms_grid_patches_and_refuses_odd_ones(tmp_path, scenes):
    settings = dict(branch="p2m", scenes=scenes, steps=2, **{**TINY, "pan_patch": 32})
    config = PretrainConfig(out=str(tmp_path / "ok"), pretext="matched_scale", **settings)
    train_branch(config)
    document = json.loads((tmp_path / "ok" / "p2m" / "config.json").read_text())
    assert document["extra"]["pretext"] == "matched_scale"
    # PAN 18 px is 9 MS px at ratio 2: two UNet levels need an even edge.
    odd = PretrainConfig(out=str(tmp_path / "odd"), pretext="matched_scale",
                         **{**settings, "pan_patch": 18})
    with pytest.raises(ValueError, match="multiple of 4"):
        train_branch(odd)
    assert not (tmp_path / "odd" / "p2m").exists()
    with pytest.raises(ValueError, match="pretrain.pretext 'wald'"):
        PretrainConfig(out=str(tmp_path), pretext="wald", **settings)


def _oriented(image: torch.Tensor, which: int) -> torch.Tensor:
    """``which % 4`` quarter turns, then a left-right flip when ``which >= 4``."""
    image = torch.rot90(image, which % 4, dims=(-2, -1))
    return torch.flip(image, dims=(-1,)) if which >= 4 else image


def test_dihedral_augment_turns_each_patch_and_its_pair_alike(scenes):
    from crossdiff_core.io.store import find_scene_stores
    from crossdiff_core.train.patches import PatchDataset

    scenes = find_scene_stores(scenes)
    for pretext in ("original", "matched_scale"):
        plain = PatchDataset(scenes, 16, seed=3, pretext=pretext)
        turned = PatchDataset(scenes, 16, seed=3, pretext=pretext, augment="dihedral")
        orientations = set()
        for index in range(48):
            before, after = plain[index], turned[index]
            assert set(before) == set(after)
            # The orientation that maps the plain MS onto the turned one maps every tensor.
            matches = [which for which in range(8)
                       if torch.equal(_oriented(before["ms"], which), after["ms"])]
            assert matches, f"item {index} is not a flip or quarter turn of the plain item"
            which = matches[0]
            for key in before:
                assert torch.equal(_oriented(before[key], which), after[key]), (pretext, index, key)
                assert after[key].is_contiguous()
            orientations.add(which)
        assert len(orientations) >= 6  # 48 draws of 8 orientations (the MS may be symmetric)
    with pytest.raises(ValueError, match="augment 'rotate': use one of"):
        PatchDataset(scenes, 16, augment="rotate")


def test_augment_setting_is_checked_recorded_and_part_of_the_resume_fingerprint(tmp_path, scenes):
    settings = dict(branch="p2m", scenes=scenes, out=str(tmp_path), steps=2, **TINY)
    with pytest.raises(ValueError, match="pretrain.augment 'flip': use one of"):
        PretrainConfig(augment="flip", **settings)
    # Unset, the fingerprint is what it was before the setting existed (old checkpoints resume).
    assert "augment" not in PretrainConfig(**settings).fingerprint()
    train_branch(PretrainConfig(augment="dihedral", **settings))
    document = json.loads((tmp_path / "p2m" / "config.json").read_text())
    assert document["extra"]["augment"] == "dihedral"
    with pytest.raises(ValueError, match=r"augment: checkpoint 'dihedral' vs now None"):
        train_branch(PretrainConfig(**{**settings, "steps": 3}))
