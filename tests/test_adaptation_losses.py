"""The spatial terms of the unsupervised adaptation loss, on small hand-made tensors."""

from __future__ import annotations

import pytest
import torch

from crossdiff_core.train.losses import (
    AdaptationLoss,
    correlation_match_loss,
    local_correlation,
    local_correlation_loss,
    regression_gain,
)


def _pan_and_band(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pan = torch.randn(2, 1, 24, 24, generator=generator)
    noise = torch.randn(2, 3, 24, 24, generator=generator)
    return pan, noise


def test_regression_gain_recovers_a_linear_gain_per_band():
    pan, _ = _pan_and_band()
    gains = torch.tensor([0.5, 1.0, 2.5]).view(1, 3, 1, 1)
    offsets = torch.tensor([0.1, -0.3, 0.7]).view(1, 3, 1, 1)
    fused = gains * pan + offsets
    torch.testing.assert_close(regression_gain(fused, pan, 8), gains.view(1, 3).expand(2, 3))


def test_regression_gain_ignores_detail_unrelated_to_the_pan():
    pan, noise = _pan_and_band()
    # Noise independent of the PAN leaves the gain near its value; it cannot fake a gain.
    gain = regression_gain(1.5 * pan + 0.5 * noise, pan, 8)
    assert torch.allclose(gain, torch.full_like(gain, 1.5), atol=0.15)


def test_correlation_match_penalises_too_much_correlation_where_the_cap_does_not():
    pan, noise = _pan_and_band()
    # Almost a copy of the PAN in every band: correlation about 1 where 0.5 is the target.
    fused = (pan.expand(-1, 3, -1, -1) + 0.05 * noise).requires_grad_(True)
    target = torch.full_like(local_correlation(fused, pan, 8), 0.5).detach()
    # The one-sided term only pushes the correlation up to its cap: no gradient above it ...
    local_correlation_loss(fused, pan, 8, target).backward()
    assert float(fused.grad.abs().max()) == 0.0
    # ... the matching term sees the correlation 0.5 too high and pulls it down.
    fused.grad = None
    match = correlation_match_loss(fused, pan, 8, target)
    assert float(match) == pytest.approx(0.5, abs=0.01)
    match.backward()
    assert float(fused.grad.abs().max()) > 0.0
    fused = fused.detach()
    exact = local_correlation(fused, pan, 8)
    assert float(correlation_match_loss(fused, pan, 8, exact)) == pytest.approx(0.0, abs=1e-6)


def test_overshoot_weight_scales_the_pull_from_above_only():
    """0 gives the one-sided term (less its constant), 1 the two-sided match, between: between."""
    pan, noise = _pan_and_band()
    fused = pan.expand(-1, 3, -1, -1) + 0.7 * noise
    rho = local_correlation(fused, pan, 8)
    # Half the windows' targets above the correlation, half below.
    target = (rho + torch.where(torch.rand_like(rho) < 0.5, 0.2, -0.2)).detach()
    below = torch.relu(target - rho).mean()
    above = torch.relu(rho - target).mean()
    for weight in (0.0, 0.3, 1.0):
        loss = correlation_match_loss(fused, pan, 8, target, overshoot_weight=weight)
        torch.testing.assert_close(loss, below + weight * above)
    one_sided = local_correlation_loss(fused, pan, 8, target)
    torch.testing.assert_close(
        correlation_match_loss(fused, pan, 8, target, overshoot_weight=0.0),
        one_sided - (1 - target).mean(),
    )
    assert float(above) > 0.05 and float(below) > 0.05  # both sides really present


def test_gain_term_asks_for_detail_that_the_correlation_term_leaves_free():
    """Correlation is blind to the detail's amplitude; the gain term is not."""
    pan, _ = _pan_and_band()
    pan_low = torch.nn.functional.avg_pool2d(pan, 3, stride=1, padding=1)
    ms_up = 2.0 * pan_low  # the low scale says: band detail is twice the PAN detail
    kernels = torch.zeros(3, 3, 3)
    kernels[:, 1, 1] = 1.0
    ms = ms_up.expand(-1, 3, -1, -1)[..., 2::4, 2::4]
    loss = AdaptationLoss(kernels, 4, spatial_loss="correlation_match", gain_weight=1.0)
    weak = 0.5 * pan.expand(-1, 3, -1, -1)
    right = 2.0 * pan.expand(-1, 3, -1, -1)
    without_gain = AdaptationLoss(kernels, 4, spatial_loss="correlation_match")
    args = (ms, pan, ms_up.expand(-1, 3, -1, -1), pan_low)
    # Same correlation with the PAN, so the same correlation term ...
    assert float(without_gain(weak, *args)["spatial"]) == pytest.approx(
        float(without_gain(right, *args)["spatial"]), abs=1e-4
    )
    # ... but only the right amplitude satisfies the gain term.
    assert float(loss(weak, *args)["spatial"]) > float(loss(right, *args)["spatial"]) + 0.5


def test_unknown_spatial_loss_is_refused():
    with pytest.raises(ValueError, match="correlation_match"):
        AdaptationLoss(torch.zeros(1, 3, 3), 4, spatial_loss="nope")


@pytest.mark.parametrize("values", [{"gain_weight": -1.0}, {"gain_window": 1},
                                    {"gain_weight": 0.5, "gain_window": 128, "pan_patch": 64}])
def test_bad_gain_settings_are_refused(values):
    from crossdiff_core.train.config import AdaptConfig

    with pytest.raises(ValueError, match="adapt.gain_"):
        AdaptConfig(**values)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"overshoot_weight": -0.1}, "overshoot_weight"),
        ({"overshoot_weight": 1.5}, "overshoot_weight"),
        ({"correlation_boost": -0.1}, "correlation_boost"),
        ({"correlation_boost": 1.0}, "correlation_boost"),
    ],
)
def test_correlation_settings_outside_their_range_are_refused(values, key):
    from crossdiff_core.train.config import AdaptConfig

    with pytest.raises(ValueError, match=f"adapt.{key}"):
        AdaptConfig(**values)


def test_correlation_boost_moves_the_target_toward_one():
    """boost b asks for rho_low + b (1 - rho_low): the image with exactly the low-scale
    relation scores zero without the boost and b (1 - rho_low) with it."""
    pan, noise = _pan_and_band()
    pan_low = torch.nn.functional.avg_pool2d(pan, 3, stride=1, padding=1)
    ms_up = pan_low.expand(-1, 3, -1, -1) + 0.3 * noise
    kernels = torch.zeros(3, 3, 3)
    kernels[:, 1, 1] = 1.0
    # The fused image is the upsampled MS and its PAN the low-passed one: rho == rho_low.
    args = (ms_up, ms_up[..., 2::4, 2::4], pan_low, ms_up, pan_low)
    rho_low = local_correlation(ms_up, pan_low, 8)
    for boost in (0.0, 0.5):
        loss = AdaptationLoss(
            kernels, 4, spatial_loss="correlation_match", spectral_weight=0.0,
            correlation_boost=boost,
        )
        torch.testing.assert_close(loss(*args)["spatial"], (boost * (1 - rho_low)).mean())
    assert float((1 - rho_low).mean()) > 0.2  # the boost really moves the target


def test_coarse_correlation_term_adds_the_two_sided_gap_over_its_windows():
    """adapt.coarse_correlation_weight w adds w * mean |rho_c(fused, PAN) - rho_c(ms_up, PAN_low)|
    over windows of coarse_correlation_window pixels, from above as from below."""
    pan, noise = _pan_and_band()
    pan_low = torch.nn.functional.avg_pool2d(pan, 3, stride=1, padding=1)
    ms_up = pan_low.expand(-1, 3, -1, -1) + 0.3 * noise
    kernels = torch.zeros(3, 3, 3)
    kernels[:, 1, 1] = 1.0
    window = 16

    def spatial(fused: torch.Tensor, weight: float) -> torch.Tensor:
        loss = AdaptationLoss(
            kernels, 4, spatial_loss="correlation_match", spectral_weight=0.0,
            coarse_correlation_weight=weight, coarse_correlation_window=window,
        )
        return loss(fused, ms_up[..., 2::4, 2::4], pan, ms_up, pan_low)["spatial"]

    target = local_correlation(ms_up, pan_low, window)
    for fused in (pan.expand(-1, 3, -1, -1) + 0.1 * noise, noise):  # above, then below the target
        gap = (local_correlation(fused, pan, window) - target).abs().mean()
        assert float(gap) > 0.2
        torch.testing.assert_close(spatial(fused, 2.0) - spatial(fused, 0.0), 2.0 * gap)


@pytest.mark.parametrize(
    "values",
    [{"coarse_correlation_weight": -1.0}, {"coarse_correlation_window": 1},
     {"coarse_correlation_weight": 1.0, "coarse_correlation_window": 128, "pan_patch": 64}],
)
def test_bad_coarse_correlation_settings_are_refused(values):
    from crossdiff_core.train.config import AdaptConfig

    with pytest.raises(ValueError, match="adapt.coarse_correlation_"):
        AdaptConfig(**values)


def test_an_unused_coarse_window_larger_than_the_patch_is_accepted():
    """With the term off (weight 0) its window does not constrain adapt.pan_patch."""
    from crossdiff_core.train.config import AdaptConfig

    assert AdaptConfig(pan_patch=16, coarse_correlation_window=32).pan_patch == 16


def test_a_gain_window_larger_than_the_patch_is_refused_only_while_the_term_is_on():
    from crossdiff_core.train.config import AdaptConfig

    with pytest.raises(ValueError, match="adapt.gain_window .32 px. must fit in adapt.pan_patch"):
        AdaptConfig(pan_patch=16, gain_weight=0.5, gain_window=32)
    assert AdaptConfig(pan_patch=16, gain_weight=0.0, gain_window=32).gain_window == 32
