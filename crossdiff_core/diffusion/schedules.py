"""Named noise schedules: a registry of beta sequences in float64.

A registered name never changes meaning: a model trained with ``cosine`` at T steps must find
the same betas when it is sampled later. Add a new name rather than editing an existing one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

COSINE_OFFSET = 0.008
MAX_BETA = 0.999


def cosine_betas(timesteps: int) -> np.ndarray:
    """Cosine schedule: alpha_bar(u) = cos((u + s) / (1 + s) * pi / 2)^2, s = 0.008, u = t / T.

    Betas are clipped at 0.999 so the last step stays invertible. Returns (T,) float64.
    """

    def alpha_bar(u: np.ndarray) -> np.ndarray:
        return np.cos((u + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2

    grid = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    betas = 1.0 - alpha_bar(grid[1:]) / alpha_bar(grid[:-1])
    return np.minimum(betas, MAX_BETA)


def linear_betas(timesteps: int) -> np.ndarray:
    """Linear betas from 1e-4 to 0.02, rescaled so any T spans the same noise as T = 1000.

    Returns (T,) float64.
    """
    scale = 1000.0 / timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=np.float64)


SCHEDULES: dict[str, Callable[[int], np.ndarray]] = {
    "cosine": cosine_betas,
    "linear": linear_betas,
}


def make_schedule(name: str, timesteps: int) -> np.ndarray:
    """Betas (timesteps,) float64 of the registered schedule ``name`` (``cosine`` or ``linear``)."""
    if name not in SCHEDULES:
        raise ValueError(
            f"unknown noise schedule {name!r}: use one of {', '.join(sorted(SCHEDULES))}"
        )
    if int(timesteps) != timesteps or timesteps < 2:
        raise ValueError(f"timesteps must be an integer >= 2, got {timesteps!r}")
    betas = SCHEDULES[name](int(timesteps))
    if not (np.all(betas > 0) and np.all(betas < 1)):
        raise ValueError(f"schedule {name!r} with {timesteps} steps gives betas outside (0, 1)")
    return betas
