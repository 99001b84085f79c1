"""Map sensor DN to the networks' range and back (DESIGN.md section 4: DN / scale_max, [-1, 1])."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor, float)


def _check_scale(scale_max: float) -> float:
    scale_max = float(scale_max)
    if not np.isfinite(scale_max) or scale_max <= 0:
        raise ValueError(f"scale_max must be a positive finite DN value, got {scale_max!r}")
    return scale_max


def to_model_range(dn: ArrayLike, scale_max: float) -> ArrayLike:
    """DN (any shape) -> 2 * dn / scale_max - 1, so 0 maps to -1 and scale_max to 1.

    Integer numpy input is promoted to float32 (float64 input stays float64).
    """
    scale_max = _check_scale(scale_max)
    if isinstance(dn, np.ndarray) and not np.issubdtype(dn.dtype, np.floating):
        dn = dn.astype(np.float32)
    return 2.0 * dn / scale_max - 1.0


def from_model_range(values: ArrayLike, scale_max: float) -> ArrayLike:
    """Inverse of ``to_model_range``: (values + 1) / 2 * scale_max, same shape."""
    scale_max = _check_scale(scale_max)
    return (values + 1.0) / 2.0 * scale_max
