"""One network serialization: each kind round-trips (same config, same outputs), files are 0644,
format-1 pansharpener folders still load, and bad folders are refused clearly."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from crossdiff_core.nets.extractor import load_extractor, random_extractor, save_extractor
from crossdiff_core.nets.fusion import FusionHead
from crossdiff_core.nets.serialization import CONFIG_FILE, WEIGHTS_FILE, state_on_cpu
from crossdiff_core.nets.unet import ConditionalUNet, load_unet, read_unet_config, save_unet
from crossdiff_core.pansharpener import (
    Pansharpener,
    is_pansharpener_folder,
    load_pansharpener,
    save_pansharpener,
)

BANDS = ["blue", "green", "red", "nir"]


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter and buffer random, so a lost or misplaced tensor changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.2 + 0.9
                             if tensor.ndim == 1 else
                             torch.randn(tensor.shape, generator=generator) * 0.1)


def _extractor():
    extractor = random_extractor(BANDS, ratio=4, channels=(8, 16), seed=3, t_feature=20,
                                 noise_free=False)
    _randomise(extractor, 4)
    return extractor


def _pansharpener():
    extractor = _extractor()
    head = FusionHead(len(BANDS), extractor.feature_channels, (8, 8))
    _randomise(head, 5)
    config = {"sensor": "QuickBird", "ratio": 4, "band_names": BANDS, "scale_max": 2047.0}
    return Pansharpener(extractor, head, config).eval()


def _assert_files_are_0644(folder):
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_unet_round_trip(tmp_path, umask_022):
    model = ConditionalUNet(in_channels=4, cond_channels=1, channels=(8, 16), time_embed_dim=12)
    _randomise(model, 1)
    save_unet(model, tmp_path / "unet", extra={"branch": "p2m", "ratio": 4})
    loaded = load_unet(tmp_path / "unet")
    assert loaded.config == model.config
    assert read_unet_config(tmp_path / "unet")["extra"] == {"branch": "p2m", "ratio": 4}
    x_t, condition = torch.randn(2, 4, 16, 16), torch.randn(2, 1, 16, 16)
    t = torch.tensor([3, 700])
    torch.testing.assert_close(loaded(x_t, t, condition), model.eval()(x_t, t, condition),
                               rtol=0, atol=0)
    _assert_files_are_0644(tmp_path / "unet")


def test_extractor_round_trip(tmp_path, umask_022):
    extractor = _extractor()
    save_extractor(extractor, tmp_path / "encoders")
    loaded = load_extractor(tmp_path / "encoders")
    assert loaded.config == extractor.config
    assert not any(p.requires_grad for p in loaded.parameters())
    ms_up, pan = torch.randn(1, 4, 16, 16), torch.randn(1, 1, 16, 16)
    for (a_p2m, a_m2p), (b_p2m, b_m2p) in zip(
        extractor.features(ms_up, pan, (8, 12)), loaded.features(ms_up, pan, (8, 12)), strict=True
    ):
        assert torch.equal(a_p2m, b_p2m) and torch.equal(a_m2p, b_m2p)
    _assert_files_are_0644(tmp_path / "encoders")


def _fixed_pair(model):
    rng = np.random.default_rng(0)
    return rng.uniform(100, 1500, (4, 8, 8)), rng.uniform(100, 1500, (32, 32))


def test_pansharpener_round_trip(tmp_path, umask_022):
    model = _pansharpener()
    save_pansharpener(model, tmp_path / "model")
    assert is_pansharpener_folder(tmp_path / "model")
    loaded = load_pansharpener(tmp_path / "model")
    assert loaded.config == model.config
    assert loaded.extractor.config == model.extractor.config
    ms, pan = _fixed_pair(model)
    np.testing.assert_array_equal(loaded.fuse(ms, pan), model.fuse(ms, pan))
    _assert_files_are_0644(tmp_path / "model")


def test_pansharpener_format_1_still_loads_and_is_rewritten(tmp_path):
    """Format 1 (before one serialization): extractor.pt and head.pt beside config.json."""
    model = _pansharpener()
    folder = tmp_path / "old"
    folder.mkdir()
    torch.save(state_on_cpu(model.extractor), folder / "extractor.pt")
    torch.save(state_on_cpu(model.head), folder / "head.pt")
    document = {"format": "crossdiff-pansharpener", "version": 1, "config": model.config,
                "extractor": model.extractor.config}
    (folder / CONFIG_FILE).write_text(json.dumps(document))
    loaded = load_pansharpener(folder)
    ms, pan = _fixed_pair(model)
    np.testing.assert_array_equal(loaded.fuse(ms, pan), model.fuse(ms, pan))
    save_pansharpener(loaded, folder)  # saving over it leaves the current format only
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    np.testing.assert_array_equal(load_pansharpener(folder).fuse(ms, pan), model.fuse(ms, pan))


def test_bad_folders_are_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not a saved frozen extractor folder .*freeze"):
        load_extractor(tmp_path)
    save_unet(ConditionalUNet(4, 1, channels=(8, 16)), tmp_path / "unet")
    with pytest.raises(ValueError, match="not a CrossDiff pansharpener config"):
        load_pansharpener(tmp_path / "unet")
    assert not is_pansharpener_folder(tmp_path / "unet")
    (tmp_path / "unet" / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="UNet folder .* is incomplete"):
        load_unet(tmp_path / "unet")
    save_extractor(_extractor(), tmp_path / "newer")
    document = json.loads((tmp_path / "newer" / CONFIG_FILE).read_text())
    (tmp_path / "newer" / CONFIG_FILE).write_text(json.dumps({**document, "version": 99}))
    with pytest.raises(ValueError, match="version 99, newer than"):
        load_extractor(tmp_path / "newer")
    (tmp_path / "newer" / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        load_extractor(tmp_path / "newer")
