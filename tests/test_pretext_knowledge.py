"""benchmarks/pretext_knowledge.py's one-step estimate against its closed form."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT

from crossdiff_core.diffusion import GaussianDiffusion, make_schedule

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from pretext_knowledge import one_step_estimate  # noqa: E402


class _ConstantNoise(torch.nn.Module):
    """Predicts the same noise everywhere, remembering what it was given."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x_t, t, condition):
        self.seen.append((x_t, t, condition))
        return torch.full_like(x_t, self.value)


@pytest.mark.parametrize("t", [10, 200])
def test_estimate_removes_the_predicted_noise_from_the_noise_free_input(t):
    schedule = make_schedule("cosine", 1000)
    diffusion = GaussianDiffusion(schedule)
    alpha_bar = float(np.cumprod(1.0 - schedule)[t])
    ms_up = torch.linspace(-1, 1, 2 * 3 * 8 * 8).reshape(2, 3, 8, 8)
    pan = torch.zeros(2, 1, 8, 8)
    # A model that predicts no noise gives the input back: x_t carried no noise.
    silent = _ConstantNoise(0.0)
    torch.testing.assert_close(one_step_estimate(silent, diffusion, ms_up, pan, t), ms_up)
    x_t, steps, condition = silent.seen[0]
    torch.testing.assert_close(x_t, np.sqrt(alpha_bar) * ms_up)
    assert steps.tolist() == [t, t] and condition is pan
    # Predicted noise c is taken out as sqrt(1 - a_t) / sqrt(a_t) * c.
    estimate = one_step_estimate(_ConstantNoise(0.5), diffusion, ms_up, pan, t)
    expected = ms_up - 0.5 * np.sqrt(1 - alpha_bar) / np.sqrt(alpha_bar)
    torch.testing.assert_close(estimate, expected, rtol=1e-5, atol=1e-5)
