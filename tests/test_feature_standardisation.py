"""freeze.standardise_features: every frozen feature channel to mean 0, std 1 over the
calibration patches, stored with the encoders and reused at inference."""

from __future__ import annotations

import pytest
import torch

from crossdiff_core.nets.extractor import (
    load_extractor,
    random_extractor,
    random_twin,
    save_extractor,
)
from crossdiff_core.pansharpener import load_pansharpener
from crossdiff_core.synthetic import write_synthetic_store
from crossdiff_core.train.adapt import adapt_head
from crossdiff_core.train.freeze import freeze_pretrained
from tests.adapt_helpers import single_torch_thread, tiny_settings, write_tiny_pretrained

one_torch_thread = pytest.fixture(autouse=True, scope="module")(single_torch_thread)

BANDS = ["blue", "green", "red", "nir"]


def _batches(seed: int, count: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(2, 4, 32, 32, generator=generator) * 0.3 + 0.2,
         torch.randn(2, 1, 32, 32, generator=generator) * 0.5 - 0.1)
        for _ in range(count)
    ]


def _pooled(maps_per_batch, level: int, branch: int) -> torch.Tensor:
    """(channels, every pixel of every batch) of one level and branch."""
    values = torch.cat([maps[level][branch] for maps in maps_per_batch])
    return values.transpose(0, 1).reshape(values.shape[1], -1).double()


@pytest.mark.parametrize("decoder", [False, True], ids=["encoder", "with-decoder"])
def test_calibrated_channels_have_mean_0_and_std_1_on_the_calibration_patches(decoder):
    extractor = random_extractor(BANDS, 4, (4, 8, 8, 8), decoder_features=decoder,
                                 standardise_features=True)
    batches = _batches(0)
    extractor.calibrate(batches)
    maps = [extractor.features(ms_up, pan) for ms_up, pan in batches]
    plain = random_extractor(BANDS, 4, (4, 8, 8, 8), decoder_features=decoder)
    plain.load_state_dict(
        {k: v for k, v in extractor.state_dict().items() if "_feature_" not in k})
    plain_maps = [plain.features(ms_up, pan) for ms_up, pan in batches]
    for level in range(len(extractor.feature_channels)):
        for branch in (0, 1):
            values = _pooled(maps, level, branch)
            raw = _pooled(plain_maps, level, branch)
            alive = raw.std(dim=1, unbiased=False) > 1e-3
            assert alive.any()
            torch.testing.assert_close(values.mean(dim=1), torch.zeros(len(values),
                                       dtype=torch.float64), atol=1e-4, rtol=0)
            torch.testing.assert_close(values[alive].std(dim=1, unbiased=False),
                                       torch.ones(int(alive.sum()), dtype=torch.float64),
                                       atol=1e-3, rtol=0)
            # The same maps as without standardisation, up to each channel's affine map.
            mean = raw.mean(dim=1, keepdim=True)
            std = raw.std(dim=1, unbiased=False, keepdim=True).clamp_min(1e-3)
            torch.testing.assert_close(values, (raw - mean) / std, atol=1e-3, rtol=1e-3)


def test_without_the_setting_features_are_unchanged_and_have_no_statistics():
    extractor = random_extractor(BANDS, 4, (4, 8, 8, 8))
    assert not any("_feature_" in key for key in extractor.state_dict())
    with pytest.raises(ValueError, match="standardise_features"):
        extractor.calibrate_standardisation(_batches(0))


def test_folded_path_matches_the_reference_with_standardisation():
    extractor = random_extractor(BANDS, 4, (4, 8, 8, 8), standardise_features=True)
    extractor.calibrate(_batches(1))
    ms_up, pan = _batches(2, 1)[0]
    for fast, reference in zip(extractor.features(ms_up, pan),
                               extractor.reference_features(ms_up, pan), strict=True):
        for got, want in zip(fast, reference, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_statistics_survive_a_round_trip(tmp_path):
    extractor = random_extractor(BANDS, 4, (4, 8, 8, 8), standardise_features=True)
    extractor.calibrate(_batches(3))
    assert not torch.equal(extractor.p2m_feature_std, torch.ones_like(extractor.p2m_feature_std))
    save_extractor(extractor, tmp_path / "encoders")
    loaded = load_extractor(tmp_path / "encoders")
    assert loaded.config["standardise_features"] is True
    ms_up, pan = _batches(4, 1)[0]
    for (a_p2m, a_m2p), (b_p2m, b_m2p) in zip(
        extractor.features(ms_up, pan), loaded.features(ms_up, pan), strict=True
    ):
        assert torch.equal(a_p2m, b_p2m) and torch.equal(a_m2p, b_m2p)


def test_freeze_stores_the_statistics_and_heads_reuse_them(tmp_path):
    """The frozen encoders carry statistics of their calibration patches; the random twin of
    the ablation gets its own; a saved pansharpener fuses with the statistics it trained on."""
    store = write_synthetic_store(tmp_path / "zarr", "QuickBird", ms_shape=(48, 48), seed=0)
    pretrained = write_tiny_pretrained(tmp_path / "pretrain", "QuickBird")
    folder = freeze_pretrained(pretrained, [store], tmp_path / "encoders", t_feature=10,
                               pan_patch=32, calibration_patches=4, standardise_features=True)
    encoders = load_extractor(folder)
    assert encoders.config["standardise_features"] is True
    std = encoders.m2p_feature_std
    assert torch.all(std > 0) and not torch.allclose(std, torch.ones_like(std))
    twin = random_twin(encoders, seed=1)
    assert twin.config["standardise_features"] is True

    result = adapt_head([store], tmp_path / "head", encoders, tiny_settings())
    model = load_pansharpener(result.out)
    torch.testing.assert_close(model.extractor.m2p_feature_std, std, rtol=0, atol=0)
    ablation = adapt_head([store], tmp_path / "random", encoders,
                          tiny_settings(random_encoders=True))
    twin_std = load_pansharpener(ablation.out).extractor.m2p_feature_std
    assert not torch.allclose(twin_std, std), "the twin's statistics are its own"
