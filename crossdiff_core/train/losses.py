"""Losses for adapting the fusion head.

The default is unsupervised and works at full resolution: no reference image exists there.
- spectral consistency: the fused image, blurred by the sensor's MS MTF and decimated at the
  toolbox phase, must give back the MS;
- spatial consistency with the PAN, from the scale invariance of the band-PAN relation: in
  windows of 2 x ratio pixels, each fused band's correlation with the PAN is pulled to the one
  the upsampled MS has with a low-scale twin of the PAN (``correlation_match``; a correlation
  above it costs ``overshoot_weight`` times as much as one below; the older
  ``local_correlation`` only pushes up to it, lambda-PNN style, and was measured to leave the
  bands far more PAN-like than the reference). Options: ``gain_weight`` also matches each band's
  regression gain on the PAN, pooled over windows of ``gain_window`` pixels, to the low scale's
  (the detail's amplitude, which correlation ignores); ``coarse_correlation_weight`` also matches
  the correlation over windows of ``coarse_correlation_window`` pixels from both sides;
  ``correlation_boost`` moves the target toward 1. The README ("The spatial term", "Where the
  correlation target sits", "The low-scale PAN", "Where D_s comes from") has what each did
  on the development crops. A differentiable D_s is also here: trained on it alone, the head was
  measured to optimise the index rather than the image.
``supervised_reduced`` exists only for comparison.
All tensors are in the same units (the networks' range); shapes are (N, B, H, W) for MS-like
tensors and (N, 1, H, W) for the PAN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SPATIAL_LOSSES = ("local_correlation", "correlation_match", "d_s")
MODES = ("unsupervised", "supervised_reduced")


def decimation_offset(ratio: int) -> int:
    """Phase of the toolbox decimation: MS pixel j sits on PAN pixel ratio * j + ratio // 2."""
    return ratio // 2


def mtf_blur(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Depthwise filter with one kernel per band and replicate borders.

    image (N, B, H, W), kernels (B, k, k) with odd k -> (N, B, H, W).
    """
    n_bands, size = kernels.shape[0], kernels.shape[-1]
    if image.shape[1] != n_bands:
        raise ValueError(f"{n_bands} MTF kernels for an image with {image.shape[1]} bands")
    pad = size // 2
    padded = F.pad(image, (pad, pad, pad, pad), mode="replicate")
    weight = kernels.to(image.dtype).unsqueeze(1)
    return F.conv2d(padded, weight, groups=n_bands)


def spectral_consistency(
    fused: torch.Tensor, ms: torch.Tensor, kernels: torch.Tensor, ratio: int
) -> torch.Tensor:
    """L1 between the MTF-blurred, decimated fused image and the MS.

    fused (N, B, H, W), ms (N, B, H / ratio, W / ratio), kernels (B, k, k) -> scalar.
    """
    offset = decimation_offset(ratio)
    degraded = mtf_blur(fused, kernels)[..., offset::ratio, offset::ratio]
    return F.l1_loss(degraded, ms)


def _local_moments(
    a: torch.Tensor, b: torch.Tensor, window: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean of a, covariance of a and b, variance of b) over sliding ``window`` boxes ('valid')."""
    mean_a = F.avg_pool2d(a, window, stride=1)
    mean_b = F.avg_pool2d(b, window, stride=1)
    cov = F.avg_pool2d(a * b, window, stride=1) - mean_a * mean_b
    var_b = (F.avg_pool2d(b * b, window, stride=1) - mean_b**2).clamp_min(0)
    return mean_a, cov, var_b


def local_correlation(
    a: torch.Tensor, b: torch.Tensor, window: int, eps: float = 1e-12
) -> torch.Tensor:
    """Correlation coefficient of a and b over sliding ``window`` x ``window`` boxes ('valid').

    a (N, B, H, W), b (N, 1 or B, H, W) -> (N, B, H - window + 1, W - window + 1).
    """
    mean_a, cov, var_b = _local_moments(a, b, window)
    var_a = (F.avg_pool2d(a * a, window, stride=1) - mean_a**2).clamp_min(0)
    return cov / torch.sqrt(var_a * var_b + eps)


def local_correlation_loss(
    fused: torch.Tensor, pan: torch.Tensor, window: int, rho_max: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of 1 - min(rho(fused_b, PAN), rho_max) over bands and windows.

    ``rho_max`` (same shape as the correlation map) caps the target, so the head is not pushed to
    copy PAN structure that the MS does not share (e.g. across spectrally different bands).
    """
    rho = local_correlation(fused, pan, window)
    if rho_max is not None:
        rho = torch.minimum(rho, rho_max)
    return (1 - rho).mean()


def correlation_match_loss(
    fused: torch.Tensor,
    pan: torch.Tensor,
    window: int,
    target: torch.Tensor,
    overshoot_weight: float = 1.0,
) -> torch.Tensor:
    """Mean over bands and windows of max(target - rho, 0) + w max(rho - target, 0) with
    rho = rho(fused_b, PAN) and w = ``overshoot_weight``: the local correlation is pulled to the
    target from below and, with that weight, from above (1: |rho - target|; 0:
    ``local_correlation_loss`` less a constant).
    """
    gap = local_correlation(fused, pan, window) - target
    return (F.relu(-gap) + overshoot_weight * F.relu(gap)).mean()


def coarse_correlation_gap(
    fused: torch.Tensor,
    pan: torch.Tensor,
    ms_up: torch.Tensor,
    pan_low: torch.Tensor,
    window: int,
) -> torch.Tensor:
    """Mean over bands and windows of |rho(fused_b, PAN) - rho(ms_up_b, PAN_low)| over sliding
    ``window`` boxes: the correlation match from both sides, at a coarser scale than the main
    term's 2 x ratio windows. Where the main term lets the head overshoot its target
    (``overshoot_weight`` < 1) for fine detail, this keeps the band-PAN correlation of larger
    areas at the low scale's.
    """
    with torch.no_grad():
        target = local_correlation(ms_up, pan_low, window)
    return (local_correlation(fused, pan, window) - target).abs().mean()


def regression_gain(a: torch.Tensor, b: torch.Tensor, window: int) -> torch.Tensor:
    """Least-squares gain of a on b, pooled over the ``window`` x ``window`` boxes of an image:
    sum of local covariances over sum of b's local variances (the injection gain of
    regression-based detail injection).

    a (N, B, H, W), b (N, 1, H, W) -> (N, B).
    """
    _, cov, var_b = _local_moments(a, b, window)
    return cov.sum(dim=(-2, -1)) / var_b.sum(dim=(-2, -1)).clamp_min(1e-12)


def block_q(a: torch.Tensor, b: torch.Tensor, block: int, eps: float = 1e-8) -> torch.Tensor:
    """UIQI of a and b on non-overlapping ``block`` x ``block`` blocks, N-1 covariance.

    a (N, B, H, W), b (N, 1 or B, H, W) with H, W multiples of block -> (N, B) mean over blocks.
    """
    count = block * block
    mean_a = F.avg_pool2d(a, block)
    mean_b = F.avg_pool2d(b, block)
    unbias = count / (count - 1)
    var_a = (F.avg_pool2d(a * a, block) - mean_a**2) * unbias
    var_b = (F.avg_pool2d(b * b, block) - mean_b**2) * unbias
    cov = (F.avg_pool2d(a * b, block) - mean_a * mean_b) * unbias
    q = 4 * cov * mean_a * mean_b / ((var_a + var_b) * (mean_a**2 + mean_b**2) + eps)
    return q.mean(dim=(-2, -1))


def differentiable_d_s(
    fused: torch.Tensor, pan: torch.Tensor, ms_up: torch.Tensor, pan_low: torch.Tensor, block: int
) -> torch.Tensor:
    """QNR's D_s on blocks: mean_b |Q(fused_b, PAN) - Q(ms_up_b, PAN_low)|.

    Inputs are shifted to positive values first (Q is not shift invariant and the networks' range
    is [-1, 1]). pan_low: the PAN reduced to MS scale and brought back, (N, 1, H, W).
    """
    target = block_q(ms_up + 1, pan_low + 1, block).detach()
    return (block_q(fused + 1, pan + 1, block) - target).abs().mean()


@dataclass(frozen=True)
class AdaptationLoss:
    """The weighted unsupervised loss; weights and the spatial term come from params.yaml."""

    kernels: torch.Tensor  # (B, k, k) MS MTF kernels of the target sensor
    ratio: int
    spectral_weight: float = 10.0
    spatial_weight: float = 1.0
    spatial_loss: str = "local_correlation"
    correlation_window: int | None = None
    d_s_block: int = 32
    gain_weight: float = 0.0  # with either correlation term: weight of the regression-gain match
    gain_window: int = 8  # PAN pixels of the windows that gain is pooled over
    overshoot_weight: float = 1.0  # correlation_match: weight of a correlation above the target
    correlation_boost: float = 0.0  # target = rho_low + boost * (1 - rho_low)
    coarse_correlation_weight: float = 0.0  # > 0: also match the correlation over coarse windows
    coarse_correlation_window: int = 32  # PAN pixels of those windows

    def __post_init__(self) -> None:
        if self.spatial_loss not in SPATIAL_LOSSES:
            raise ValueError(f"spatial_loss {self.spatial_loss!r}: use one of {SPATIAL_LOSSES}")

    @property
    def window(self) -> int:
        return self.correlation_window or 2 * self.ratio

    def __call__(
        self,
        fused: torch.Tensor,
        ms: torch.Tensor,
        pan: torch.Tensor,
        ms_up: torch.Tensor,
        pan_low: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """fused, ms_up (N, B, H, W); ms (N, B, h, w); pan, pan_low (N, 1, H, W).

        Returns {"loss", "spectral", "spatial"} scalars.
        """
        spectral = spectral_consistency(fused, ms, self.kernels, self.ratio)
        if self.spatial_loss in ("local_correlation", "correlation_match"):
            with torch.no_grad():
                rho_low = local_correlation(ms_up, pan_low, self.window)
                target = rho_low + self.correlation_boost * (1 - rho_low)
            if self.spatial_loss == "local_correlation":
                spatial = local_correlation_loss(fused, pan, self.window, target)
            else:
                spatial = correlation_match_loss(
                    fused, pan, self.window, target, self.overshoot_weight
                )
            if self.gain_weight:
                with torch.no_grad():
                    gain_low = regression_gain(ms_up, pan_low, self.gain_window)
                gain = (regression_gain(fused, pan, self.gain_window) - gain_low).abs().mean()
                spatial = spatial + self.gain_weight * gain
            if self.coarse_correlation_weight:
                spatial = spatial + self.coarse_correlation_weight * coarse_correlation_gap(
                    fused, pan, ms_up, pan_low, self.coarse_correlation_window
                )
        else:
            spatial = differentiable_d_s(fused, pan, ms_up, pan_low, self.d_s_block)
        loss = self.spectral_weight * spectral + self.spatial_weight * spatial
        return {"loss": loss, "spectral": spectral.detach(), "spatial": spatial.detach()}


def supervised_reduced(fused: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Comparison only: L1 against the original MS when the head ran on the Wald-degraded pair."""
    return F.l1_loss(fused, reference)
