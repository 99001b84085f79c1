"""Map sensor DN to the networks' range and back: per-band percentile bounds (``Normalisation``,
the default) or the authors' DN / scale_max (``to_model_range``), both onto about [-1, 1]."""

from __future__ import annotations

from dataclasses import dataclass
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


NORMALISATIONS = ("percentile", "bit_depth")
# Percentiles of the scene's DN mapped to -1 and +1 under the ``percentile`` normalisation.
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0
# Pixels per band read to estimate the percentiles (a regular subsample of larger scenes).
STATISTICS_SAMPLES = 1 << 22


def _band_shape(values, n_bands: int, like) -> np.ndarray | torch.Tensor:
    """(B,) values shaped (B, 1, 1) to broadcast over (..., B, H, W) arrays like ``like``."""
    array = np.asarray(values, dtype=np.float64).reshape(n_bands, 1, 1)
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(array, dtype=like.dtype, device=like.device)
    if isinstance(like, np.ndarray) and np.issubdtype(like.dtype, np.floating):
        return array.astype(like.dtype)
    return array.astype(np.float32)


def _as_float(values):
    if isinstance(values, np.ndarray) and not np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float32)
    return values


@dataclass(frozen=True)
class Normalisation:
    """Per-band affine map of DN to the networks' range: ``low`` goes to -1, ``high`` to +1.

    ``percentile`` (the default) takes low/high as the 1st/99th percentiles of each MS band and of
    the PAN, so every band of every sensor spans about [-1, 1] whatever its bit depth or units;
    ``bit_depth`` is the authors' 0 .. scale_max for every band (measured to leave Landsat
    structure at 1/4.5 of the feature-timestep noise). The statistics are stored with
    the model (``to_dict``) and reused at inference, so tiles and scenes are mapped alike.
    MS arrays are (..., B, H, W); PAN arrays any shape.
    """

    kind: str
    ms_low: tuple[float, ...]
    ms_high: tuple[float, ...]
    pan_low: float
    pan_high: float

    def __post_init__(self) -> None:
        if self.kind not in NORMALISATIONS:
            raise ValueError(f"normalisation {self.kind!r}: use one of {NORMALISATIONS}")
        if len(self.ms_low) != len(self.ms_high):
            raise ValueError("normalisation needs as many MS low values as high values")
        spans = [h - lo for lo, h in zip(self.ms_low, self.ms_high, strict=True)]
        spans.append(self.pan_high - self.pan_low)
        if not all(np.isfinite(spans)) or min(spans) <= 0:
            raise ValueError(
                f"normalisation bounds must satisfy low < high for every band, got MS "
                f"{list(self.ms_low)} .. {list(self.ms_high)}, PAN {self.pan_low} .. "
                f"{self.pan_high} (a constant band cannot be normalised)"
            )

    @property
    def n_bands(self) -> int:
        return len(self.ms_low)

    def ms_to_model(self, dn: ArrayLike) -> ArrayLike:
        dn = _as_float(dn)
        low = _band_shape(self.ms_low, self.n_bands, dn)
        high = _band_shape(self.ms_high, self.n_bands, dn)
        return 2.0 * (dn - low) / (high - low) - 1.0

    def ms_from_model(self, values: ArrayLike) -> ArrayLike:
        low = _band_shape(self.ms_low, self.n_bands, values)
        high = _band_shape(self.ms_high, self.n_bands, values)
        return (values + 1.0) / 2.0 * (high - low) + low

    def pan_to_model(self, dn: ArrayLike) -> ArrayLike:
        dn = _as_float(dn)
        return 2.0 * (dn - self.pan_low) / (self.pan_high - self.pan_low) - 1.0

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "ms_low": [float(v) for v in self.ms_low],
            "ms_high": [float(v) for v in self.ms_high],
            "pan_low": float(self.pan_low),
            "pan_high": float(self.pan_high),
        }

    @classmethod
    def from_dict(cls, values: dict) -> Normalisation:
        return cls(
            values["kind"],
            tuple(values["ms_low"]),
            tuple(values["ms_high"]),
            float(values["pan_low"]),
            float(values["pan_high"]),
        )

    @classmethod
    def bit_depth(cls, scale_max: float, n_bands: int) -> Normalisation:
        """0 .. scale_max to [-1, 1] for every band: ``to_model_range``'s map."""
        scale_max = _check_scale(scale_max)
        return cls("bit_depth", (0.0,) * n_bands, (scale_max,) * n_bands, 0.0, scale_max)

    @classmethod
    def from_samples(cls, ms: np.ndarray, pan: np.ndarray) -> Normalisation:
        """Percentile bounds from valid DN samples: ms (B, N) and pan (M,), NaN-free."""
        ms = np.asarray(ms, dtype=np.float64)
        pan = np.asarray(pan, dtype=np.float64).ravel()
        if ms.ndim != 2 or ms.shape[1] == 0 or pan.size == 0:
            raise ValueError(
                "no valid pixels to compute the normalisation statistics from (every pixel is "
                "nodata or NaN): check the scene's nodata value"
            )
        ms_low, ms_high = np.percentile(ms, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=1)
        pan_low, pan_high = np.percentile(pan, [LOW_PERCENTILE, HIGH_PERCENTILE])
        # A band (nearly) constant over the scene: widen to one DN so the map stays invertible.
        ms_high = np.maximum(ms_high, ms_low + 1e-3 * np.maximum(np.abs(ms_low), 1.0))
        pan_high = max(pan_high, pan_low + 1e-3 * max(abs(pan_low), 1.0))
        return cls("percentile", tuple(ms_low), tuple(ms_high), float(pan_low), float(pan_high))


def _valid_samples(array, nodata: float | None, max_samples: int) -> np.ndarray:
    """A regular subsample of a (lazy) (C, y, x) array: (C, N) values of the valid pixels."""
    height, width = array.shape[-2:]
    step = max(1, int(np.ceil(np.sqrt(height * width / max_samples))))
    window = array[:, ::step, ::step]
    if hasattr(window, "compute"):
        window = window.compute()
    values = np.asarray(window, dtype=np.float64).reshape(array.shape[0], -1)
    valid = np.all(np.isfinite(values), axis=0)
    if nodata is not None:
        valid &= ~np.any(values == nodata, axis=0)
    return values[:, valid]


def scene_normalisation(
    scenes, kind: str = "percentile", max_samples: int = STATISTICS_SAMPLES
) -> Normalisation:
    """The normalisation of one or several ``Scene`` objects of one sensor (pooled statistics).

    Reads a regular subsample of each scene (at most ``max_samples`` pixels per band), leaving
    nodata and NaN pixels out.
    """
    scenes = list(scenes)
    if not scenes:
        raise ValueError("scene_normalisation needs at least one scene")
    if kind == "bit_depth":
        scale_maxes = {scene.scale_max for scene in scenes}
        if len(scale_maxes) > 1:
            raise ValueError(
                f"scenes mix scale_max values {sorted(scale_maxes)}: normalise one sensor at a time"
            )
        return Normalisation.bit_depth(scale_maxes.pop(), int(scenes[0].ms.sizes["band"]))
    if kind != "percentile":
        raise ValueError(f"normalisation {kind!r}: use one of {NORMALISATIONS}")
    ms_parts, pan_parts = [], []
    for scene in scenes:
        nodata = scene.attrs.get("nodata")
        ms_parts.append(_valid_samples(scene.ms.data, nodata, max_samples))
        pan_parts.append(_valid_samples(scene.pan.data[None], nodata, max_samples)[0])
    return Normalisation.from_samples(np.concatenate(ms_parts, axis=1), np.concatenate(pan_parts))
