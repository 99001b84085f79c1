"""Conditional UNet: shapes, config round trip, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from crossdiff_core.nets.unet import ConditionalUNet, load_unet, save_unet


def test_default_size_is_about_one_million_parameters():
    model = ConditionalUNet(in_channels=4, cond_channels=1)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.9e6 < n_params < 1.3e6
    assert model.feature_channels == (32, 64, 128, 256)


def test_forward_and_encode_shapes():
    torch.manual_seed(0)
    model = ConditionalUNet(in_channels=3, cond_channels=2, channels=(8, 16, 24, 32))
    x_t = torch.randn(2, 3, 32, 16)
    condition = torch.randn(2, 2, 32, 16)
    t = torch.tensor([0, 999])
    assert model(x_t, t, condition).shape == (2, 3, 32, 16)
    features = model.encode(x_t, t, condition)
    assert [tuple(f.shape) for f in features] == [
        (2, 8, 32, 16), (2, 16, 16, 8), (2, 24, 8, 4), (2, 32, 4, 2)
    ]


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = ConditionalUNet(in_channels=1, cond_channels=4, channels=(8, 16), time_embed_dim=20)
    # The output layer starts at zero; perturb it so the comparison means something.
    with torch.no_grad():
        model.out_conv.weight.normal_()
    save_unet(model, tmp_path / "unet", extra={"branch": "m2p"})
    document = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert document["config"] == model.config
    assert document["extra"] == {"branch": "m2p"}
    loaded = load_unet(tmp_path / "unet")
    assert not loaded.training
    x_t, condition, t = torch.randn(1, 1, 16, 16), torch.randn(1, 4, 16, 16), torch.tensor([7])
    torch.testing.assert_close(loaded(x_t, t, condition), model.eval()(x_t, t, condition))
    assert not list((tmp_path / "unet").glob("*.tmp"))


def test_bad_inputs_raise_clear_errors(tmp_path):
    model = ConditionalUNet(in_channels=4, cond_channels=1, channels=(8, 16, 32))
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(1, 4, 18, 16), torch.zeros(1), torch.zeros(1, 1, 18, 16))
    with pytest.raises(ValueError, match="condition must be"):
        model(torch.zeros(1, 4, 16, 16), torch.zeros(1), torch.zeros(1, 4, 16, 16))
    with pytest.raises(FileNotFoundError, match="not a saved UNet folder"):
        load_unet(tmp_path)
