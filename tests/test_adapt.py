"""Freezing, the unsupervised loss, adaptation and cross-sensor transfer on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdiff_core.nets.extractor import load_extractor, random_extractor
from crossdiff_core.pansharpener import load_pansharpener, save_pansharpener
from crossdiff_core.synthetic import write_synthetic_store
from crossdiff_core.train.adapt import adapt_head
from crossdiff_core.train.losses import spectral_consistency
from tests.adapt_helpers import (
    scrambled_pansharpener,
    single_torch_thread,
    tiny_extractor,
    tiny_settings,
    write_tiny_pretrained,
)

one_torch_thread = pytest.fixture(autouse=True, scope="module")(single_torch_thread)


@pytest.fixture(scope="module")
def qb(tmp_path_factory):
    root = tmp_path_factory.mktemp("qb")
    store = write_synthetic_store(root / "zarr", "QuickBird", ms_shape=(48, 48), seed=0)
    pretrained = write_tiny_pretrained(root / "pretrain", "QuickBird")
    encoders = tiny_extractor(pretrained, store, root / "encoders")
    return {"root": root, "store": store, "encoders": encoders}


def test_extractor_is_frozen_and_stays_in_eval_mode(qb):
    extractor = load_extractor(qb["encoders"])
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not extractor.training and not any(m.training for m in extractor.modules())


def test_adaptation_lowers_the_loss_and_leaves_encoders_bit_identical(qb, tmp_path):
    before = load_extractor(qb["encoders"]).state_dict()
    result = adapt_head(
        [qb["store"]], tmp_path / "head", load_extractor(qb["encoders"]), tiny_settings(steps=25)
    )
    losses = [record["loss"] for record in result.losses]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1e-3
    after = load_pansharpener(tmp_path / "head").extractor.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert (tmp_path / "head" / "losses.csv").is_file()


def test_pansharpener_round_trips(qb, tmp_path):
    model = scrambled_pansharpener(load_extractor(qb["encoders"]), "QuickBird")
    save_pansharpener(model, tmp_path / "model")
    loaded = load_pansharpener(tmp_path / "model")
    rng = np.random.default_rng(0)
    ms = rng.uniform(100, 1500, (4, 16, 16))
    pan = rng.uniform(100, 1500, (64, 64))
    np.testing.assert_array_equal(model.fuse(ms, pan), loaded.fuse(ms, pan))


def test_spectral_loss_is_zero_for_a_consistent_pair():
    ratio = 4
    kernels = torch.zeros(2, 5, 5)
    kernels[:, 2, 2] = 1.0  # identity blur: decimation alone must give back the MS
    fused = torch.randn(1, 2, 16, 16)
    ms = fused[..., 2::ratio, 2::ratio]
    assert spectral_consistency(fused, ms, kernels, ratio) == 0
    assert spectral_consistency(fused, ms + 0.5, kernels, ratio) == pytest.approx(0.5)


def test_cross_sensor_four_band_encoders_serve_other_sensors(qb, tmp_path):
    ikonos = write_synthetic_store(tmp_path / "zarr", "IKONOS", ms_shape=(32, 32), seed=3)
    result = adapt_head([ikonos], tmp_path / "ik", load_extractor(qb["encoders"]), tiny_settings())
    model = load_pansharpener(result.out)
    assert model.config["sensor"] == "IKONOS" and model.config["encoders_sensor"] == "QuickBird"
    # An 8-band scene: the 4-band encoders get blue, green, red, nir by name; all 8 are fused.
    wv3 = write_synthetic_store(tmp_path / "zarr", "WorldView-3", ms_shape=(32, 32), seed=4)
    result = adapt_head([wv3], tmp_path / "wv3", load_extractor(qb["encoders"]), tiny_settings())
    model = load_pansharpener(result.out)
    assert model.n_bands == 8 and model.config["extractor_bands"] == [1, 2, 4, 6]


def test_cross_sensor_refuses_what_cannot_be_matched(qb, tmp_path):
    wv3_encoders = random_extractor(
        ["coastal", "blue", "green", "yellow", "red", "rededge", "nir", "nir2"], 4, (4, 8, 8, 8)
    )
    with pytest.raises(ValueError, match=r"missing \['coastal', 'yellow', 'rededge', 'nir2'\]"):
        adapt_head([qb["store"]], tmp_path / "x", wv3_encoders, tiny_settings())
    landsat = write_synthetic_store(tmp_path / "zarr", "Landsat-8", ms_shape=(32, 32), seed=5)
    with pytest.raises(ValueError, match="ratio 4.*ratio 2"):
        adapt_head([landsat], tmp_path / "y", load_extractor(qb["encoders"]), tiny_settings())


def _first_batch(store, settings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ms_up, pan, pan low-passed by the QuickBird PAN MTF) of adaptation step 1's batch: the
    zero-initialised head returns that ms_up, so step 1's logged terms are computable by hand."""
    from crossdiff_core.degrade import pan_mtf_kernel
    from crossdiff_core.sensors import get_sensor
    from crossdiff_core.train.losses import mtf_blur
    from crossdiff_core.train.patches import PatchDataset

    dataset = PatchDataset([str(store)], settings.pan_patch, seed=settings.seed)
    items = [dataset[i] for i in range(settings.batch_size)]
    ms_up = torch.stack([item["ms_up"] for item in items])
    pan = torch.stack([item["pan"] for item in items])
    kernel = torch.from_numpy(pan_mtf_kernel(get_sensor("QuickBird"), 4)).float()[None]
    return ms_up, pan, mtf_blur(pan, kernel)


def test_random_encoder_ablation_and_d_s_loss_run(qb, tmp_path):
    from crossdiff_core.train.losses import differentiable_d_s

    settings = tiny_settings(random_encoders=True, spatial_loss="d_s", low_scale_pan="mtf_blur")
    result = adapt_head([qb["store"]], tmp_path / "random", None, settings)
    model = load_pansharpener(result.out)
    assert model.config["random_encoders"] is True
    assert not model.extractor.config["pretrained"]
    # Step 1: the zero-initialised head returns the upsampled MS, so the spatial term logged must
    # be D_s of the first batch's upsampled MS (not the local-correlation term).
    ms_up, pan, pan_low = _first_batch(qb["store"], settings)
    expected = differentiable_d_s(ms_up, pan, ms_up, pan_low, 32)
    assert result.losses[0]["spatial"] == pytest.approx(float(expected), rel=1e-4)
    correlation = adapt_head([qb["store"]], tmp_path / "lc", None,
                             tiny_settings(random_encoders=True))
    assert correlation.losses[0]["spatial"] != pytest.approx(result.losses[0]["spatial"])


def test_correlation_settings_reach_the_loss(qb, tmp_path):
    """adapt.overshoot_weight and adapt.correlation_boost shape the spatial term the head trains
    on: step 1's logged term is the one computed here by hand."""
    from crossdiff_core.train.losses import correlation_match_loss, local_correlation

    settings = tiny_settings(
        random_encoders=True, spatial_loss="correlation_match", overshoot_weight=0.3,
        correlation_boost=0.5, low_scale_pan="mtf_blur",
    )
    result = adapt_head([qb["store"]], tmp_path / "boosted", None, settings)
    ms_up, pan, pan_low = _first_batch(qb["store"], settings)
    rho_low = local_correlation(ms_up, pan_low, 8)
    expected = correlation_match_loss(ms_up, pan, 8, rho_low + 0.5 * (1 - rho_low), 0.3)
    assert result.losses[0]["spatial"] == pytest.approx(float(expected), rel=1e-4)
    plain = adapt_head([qb["store"]], tmp_path / "plain", None,
                       tiny_settings(random_encoders=True, spatial_loss="correlation_match",
                                     low_scale_pan="mtf_blur"))
    assert plain.losses[0]["spatial"] != pytest.approx(result.losses[0]["spatial"], rel=1e-2)


def test_reduced_low_scale_pan_reaches_the_loss(qb, tmp_path):
    """adapt.low_scale_pan: reduced pairs the upsampled MS with the PAN reduced to the MS grid
    and brought back by interp23tap (read beside each patch), not with its MTF blur: step 1's
    logged spatial term is the one computed by hand from that twin."""
    from crossdiff_core.train.losses import correlation_match_loss, local_correlation
    from crossdiff_core.train.patches import PatchDataset

    settings = tiny_settings(random_encoders=True, spatial_loss="correlation_match",
                             overshoot_weight=0.5, low_scale_pan="reduced")
    result = adapt_head([qb["store"]], tmp_path / "reduced", None, settings)
    dataset = PatchDataset([str(qb["store"])], settings.pan_patch, seed=settings.seed,
                           pan_low=True)
    items = [dataset[i] for i in range(settings.batch_size)]
    ms_up, pan, pan_low = (torch.stack([item[key] for item in items])
                           for key in ("ms_up", "pan", "pan_low"))
    expected = correlation_match_loss(ms_up, pan, 8, local_correlation(ms_up, pan_low, 8), 0.5)
    assert result.losses[0]["spatial"] == pytest.approx(float(expected), rel=1e-4)
    _, _, blurred = _first_batch(qb["store"], settings)
    blurred_term = correlation_match_loss(ms_up, pan, 8, local_correlation(ms_up, blurred, 8), 0.5)
    assert float(blurred_term) != pytest.approx(float(expected), rel=1e-3)
    assert load_pansharpener(tmp_path / "reduced").config["adapt"]["low_scale_pan"] == "reduced"


def test_unknown_low_scale_pan_is_refused():
    with pytest.raises(ValueError, match="adapt.low_scale_pan 'lowpass'"):
        tiny_settings(low_scale_pan="lowpass")


@pytest.mark.parametrize(
    "noise_free, decoder",
    [(True, False), (False, False), (True, True)],
    ids=["noise-free", "coordinate-noise", "with-decoder"],
)
def test_folded_encoders_match_their_layers(noise_free, decoder):
    """The fast path (norm and time folded into each conv, NHWC) equals the UNets' own layers."""
    extractor = random_extractor(
        ["blue", "green", "red", "nir"], 4, (4, 8, 8, 8), noise_free=noise_free,
        decoder_features=decoder,
    )
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in extractor.modules():
            if hasattr(module, "group_var"):  # statistics far from identity, as calibrated
                module.group_mean.uniform_(-0.5, 0.5, generator=generator)
                module.group_var.uniform_(0.2, 3.0, generator=generator)
    ms_up = torch.randn(2, 4, 48, 40, generator=generator)
    pan = torch.randn(2, 1, 48, 40, generator=generator)
    fast = extractor.features(ms_up, pan, origin=(8, -16))
    reference = extractor.reference_features(ms_up, pan, origin=(8, -16))
    channels = extractor.feature_channels
    assert channels == ((8, 16, 16, 8) if decoder else (4, 8, 8, 8))
    for level, (pair, expected) in enumerate(zip(fast, reference, strict=True)):
        for got, want in zip(pair, expected, strict=True):
            assert got.shape == want.shape == (2, channels[level], 48 >> level, 40 >> level)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_random_ablation_mirrors_the_encoders_it_stands_for(qb, tmp_path):
    from crossdiff_core.nets.extractor import random_twin

    pretrained = load_extractor(qb["encoders"])
    twin = random_twin(pretrained, seed=3)
    same = ("p2m", "m2p", "bands", "ratio", "t_feature", "noise_free", "decoder_features")
    assert {k: twin.config[k] for k in same} == {k: pretrained.config[k] for k in same}
    assert twin.config["pretrained"] is False
    differs = [k for k, v in twin.state_dict().items() if k.endswith("conv.weight")
               and not torch.equal(v, pretrained.state_dict()[k])]
    assert differs, "the twin must have its own random weights"
    result = adapt_head([qb["store"]], tmp_path / "random", pretrained,
                        tiny_settings(random_encoders=True))
    model = load_pansharpener(result.out)
    assert not model.extractor.config["pretrained"]
    assert model.extractor.config["p2m"] == pretrained.config["p2m"]


def test_head_stores_its_normalisation_and_reuses_it_at_inference(qb, tmp_path):
    from crossdiff_core.io.store import open_scene
    from crossdiff_core.scaling import Normalisation, scene_normalisation

    adapt_head([qb["store"]], tmp_path / "head", load_extractor(qb["encoders"]), tiny_settings())
    model = load_pansharpener(tmp_path / "head")
    stored = model.normalisation
    assert stored == scene_normalisation([open_scene(qb["store"])], "percentile")
    assert stored.kind == "percentile" and len(stored.ms_low) == 4
    # The same statistics serve any later input (tiles, other scenes): none is recomputed.
    rng = np.random.default_rng(1)
    ms = rng.uniform(100, 1500, (1, 4, 16, 16))
    ms_up, pan = model.prepare(ms, rng.uniform(100, 1500, (1, 64, 64)))
    np.testing.assert_allclose(
        stored.ms_from_model(ms_up.numpy().astype(np.float64)).mean(), ms.mean(), rtol=0.05
    )
    back = stored.ms_from_model(stored.ms_to_model(ms))
    np.testing.assert_allclose(back, ms, rtol=1e-12)
    assert Normalisation.from_dict(stored.to_dict()) == stored
    # Under bit-depth scaling every band shares one map; percentile bounds differ per band.
    assert len(set(stored.ms_high)) == 4


def test_bad_normalisation_settings_are_refused():
    from crossdiff_core.scaling import Normalisation

    with pytest.raises(ValueError, match="adapt.normalisation 'zscore'"):
        tiny_settings(normalisation="zscore")
    with pytest.raises(ValueError, match="constant band cannot be normalised"):
        Normalisation("percentile", (5.0,), (5.0,), 0.0, 1.0)


def test_input_skip_head_trains_round_trips_and_uses_the_pan(qb, tmp_path):
    """adapt.input_skip: the finest level convolves the PAN and upsampled MS beside the features;
    the setting is saved with the model, and the PAN then changes the output through that path."""
    adapt_head(
        [qb["store"]], tmp_path / "head", load_extractor(qb["encoders"]),
        tiny_settings(steps=4, input_skip=True),
    )
    loaded = load_pansharpener(tmp_path / "head")
    assert loaded.head.config["input_skip"] is True and loaded.head.inputs is not None
    rng = np.random.default_rng(1)
    ms = rng.uniform(100, 1500, (4, 16, 16))
    pan = rng.uniform(100, 1500, (64, 64))
    fused = loaded.fuse(ms, pan)
    np.testing.assert_array_equal(fused, load_pansharpener(tmp_path / "head").fuse(ms, pan))
    with torch.no_grad():
        loaded.head.inputs.weight.zero_()
    assert not np.array_equal(fused, loaded.fuse(ms, pan)), "the skip path feeds the output"
