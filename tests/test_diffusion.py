"""Diffusion maths: schedules, noising, loss, samplers (with tiny models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdiff_core.diffusion import GaussianDiffusion, make_schedule
from crossdiff_core.nets.unet import ConditionalUNet


def test_schedules_are_float64_and_monotone():
    for name in ("cosine", "linear"):
        betas = make_schedule(name, 1000)
        assert betas.dtype == np.float64 and betas.shape == (1000,)
        alphas_cumprod = np.cumprod(1 - betas)
        assert np.all(np.diff(alphas_cumprod) < 0)
        assert alphas_cumprod[-1] < 1e-3
    cosine = make_schedule("cosine", 1000)
    assert cosine.max() <= 0.999
    # alpha_bar(1) / alpha_bar(0) for s = 0.008, computed by hand.
    angle_0, angle_1 = 0.008 / 1.008 * np.pi / 2, (0.001 + 0.008) / 1.008 * np.pi / 2
    expected_first = 1 - (np.cos(angle_1) / np.cos(angle_0)) ** 2
    assert cosine[0] == pytest.approx(expected_first, rel=1e-12)


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown noise schedule 'quadratic'"):
        make_schedule("quadratic", 100)


def test_q_sample_matches_closed_form():
    diffusion = GaussianDiffusion(make_schedule("linear", 100))
    x0 = torch.ones(2, 1, 4, 4)
    noise = torch.full((2, 1, 4, 4), 2.0)
    t = torch.tensor([0, 99])
    x_t = diffusion.q_sample(x0, t, noise)
    abar = diffusion.alphas_cumprod[[0, 99]]
    expected = np.sqrt(abar) + 2 * np.sqrt(1 - abar)
    torch.testing.assert_close(x_t[:, 0, 0, 0], torch.tensor(expected, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 99\]"):
        diffusion.q_sample(x0, torch.tensor([0, 100]), noise)


def test_loss_is_zero_for_an_oracle_and_drop_zeroes_the_condition():
    diffusion = GaussianDiffusion(make_schedule("cosine", 50))
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 2, 8, 8) * 2 - 1
    t, noise, _ = diffusion.draw_training_inputs(x0.shape, generator)
    seen = {}

    def oracle(x_t, t_in, condition):
        seen["condition"] = condition
        return (x_t - diffusion._at(diffusion.sqrt_alphas_cumprod, t_in, x_t) * x0) / diffusion._at(
            diffusion.sqrt_one_minus_alphas_cumprod, t_in, x_t
        )

    condition = torch.ones(3, 1, 8, 8)
    assert diffusion.training_loss(oracle, x0, condition, t, noise).item() < 1e-8
    diffusion.training_loss(oracle, x0, condition, t, noise, drop_condition=True)
    assert torch.count_nonzero(seen["condition"]) == 0


def test_samplers_give_documented_shapes_and_are_deterministic():
    torch.manual_seed(0)
    model = ConditionalUNet(in_channels=2, cond_channels=1, channels=(8, 16)).eval()
    with torch.no_grad():
        model.out_conv.weight.normal_(std=0.1)
    diffusion = GaussianDiffusion(make_schedule("cosine", 20))
    condition = torch.rand(2, 1, 16, 16)
    runs = [
        diffusion.ddim_sample(
            model,
            condition,
            (2, 2, 16, 16),
            steps=4,
            guidance_scale=1.0,
            generator=torch.Generator().manual_seed(3),
        )
        for _ in range(2)
    ]
    assert runs[0].shape == (2, 2, 16, 16)
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    assert runs[0].abs().max() <= 1.0
    ddpm = [
        diffusion.ddpm_sample(
            model, condition, (2, 2, 16, 16), generator=torch.Generator().manual_seed(seed)
        )
        for seed in (5, 5, 6)
    ]
    assert ddpm[0].shape == (2, 2, 16, 16)
    torch.testing.assert_close(ddpm[0], ddpm[1], rtol=0, atol=0)
    assert not torch.equal(ddpm[0], ddpm[2])
    assert diffusion.ddim_timesteps(4) == [19, 13, 6, 0]


def test_samplers_recover_x0_with_an_oracle_denoiser():
    diffusion = GaussianDiffusion(make_schedule("cosine", 200))
    x0 = torch.rand(1, 2, 8, 8) * 0.3 - 0.8

    def oracle(x_t, t, condition):
        return (x_t - diffusion._at(diffusion.sqrt_alphas_cumprod, t, x_t) * x0) / diffusion._at(
            diffusion.sqrt_one_minus_alphas_cumprod, t, x_t
        )

    condition = torch.zeros(1, 1, 8, 8)
    for sampled in (
        diffusion.ddim_sample(
            oracle, condition, x0.shape, steps=5, generator=torch.Generator().manual_seed(0)
        ),
        diffusion.ddim_sample(
            oracle,
            condition,
            x0.shape,
            steps=7,
            eta=1.0,
            generator=torch.Generator().manual_seed(1),
        ),
        diffusion.ddpm_sample(
            oracle, condition, x0.shape, generator=torch.Generator().manual_seed(2)
        ),
    ):
        torch.testing.assert_close(sampled, x0, atol=1e-5, rtol=0)


def test_low_timestep_distribution_draws_only_below_t_max():
    diffusion = GaussianDiffusion(make_schedule("cosine", 1000))
    generator = torch.Generator().manual_seed(0)
    t, _, _ = diffusion.draw_training_inputs((4096, 1, 2, 2), generator, t_max=200)
    assert int(t.max()) < 200 and int(t.min()) == 0
    assert len(torch.unique(t)) > 190  # uniform over [0, 200), not a few values
    uniform, _, _ = diffusion.draw_training_inputs((4096, 1, 2, 2), generator)
    assert int(uniform.max()) > 900
    for bad in (0, 1001):
        with pytest.raises(ValueError, match=r"t_max must lie in \[1, 1000\]"):
            diffusion.draw_training_inputs((2, 1, 2, 2), generator, t_max=bad)
