"""The CrossDiff fusion head: frozen multi-scale features in, a residual on the upsampled MS out.

Every operation is local (no global pooling, no normalisation over the image), so the head is
translation-equivariant: a tile with enough context gives the same values as the whole scene.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LocalSCSE(nn.Module):
    """Concurrent spatial and channel squeeze-excitation (scSE) with a local channel squeeze.

    The channel branch pools over a ``pool_size`` window instead of the whole image, so the
    attention at a pixel does not depend on where the tile boundaries are.
    x: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, reduction: int = 4, pool_size: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.pool_size = pool_size
        self.channel_gate = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )
        self.spatial_gate = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze, relu, excite = self.channel_gate
        # The local mean is an average (weights summing to one) and the first 1x1 conv is affine,
        # so they commute: pooling the few squeezed channels gives the same gate far cheaper,
        # and the (count-excluding-padding) box mean splits into a column pass and a row pass.
        pooled = _local_mean(squeeze(x), self.pool_size)
        channel = excite(relu(pooled))
        spatial = self.spatial_gate(x)
        if torch.is_grad_enabled():
            return x * (torch.sigmoid(channel) + torch.sigmoid(spatial))
        # Inference: the same gate built in place, two full-size buffers fewer.
        return channel.sigmoid_().add_(spatial.sigmoid_()).mul_(x)


def _local_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a size x size window clipped to the image: (N, C, H, W) -> (N, C, H, W)."""
    half = size // 2
    x = F.avg_pool2d(x, (size, 1), stride=1, padding=(half, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, size), stride=1, padding=(0, half), count_include_pad=False)


class FusionHead(nn.Module):
    """Coarse-to-fine fusion of P2M and M2P encoder maps into a residual on the upsampled MS.

    ``feature_channels[i]``: channels of *each* encoder's map at level i (resolution H / 2**i).
    ``head_channels[i]``: width of the head at level i.
    forward(ms_up (N, B, H, W), features, pan (N, 1, H, W)) -> fused (N, B, H, W), all in the
    networks' range. ``features`` is a list over levels of (p2m_map, m2p_map) pairs, finest first.
    ``input_skip``: the finest level also convolves the PAN and the upsampled MS themselves, so
    the PAN's detail reaches the output whatever the frozen encoders kept of it and the features
    serve to weigh it (``pan`` is then required).
    """

    def __init__(
        self,
        n_bands: int,
        feature_channels: tuple[int, ...] | list[int],
        head_channels: tuple[int, ...] | list[int] = (32, 32, 64, 64),
        attention_pool: int = 7,
        negative_slope: float = 0.2,
        input_skip: bool = False,
    ) -> None:
        super().__init__()
        feature_channels = tuple(int(c) for c in feature_channels)
        head_channels = tuple(int(c) for c in head_channels)
        if len(head_channels) != len(feature_channels):
            raise ValueError(
                f"head_channels {head_channels} needs one width per feature level "
                f"({len(feature_channels)} levels: {feature_channels})"
            )
        self.config = {
            "n_bands": int(n_bands),
            "feature_channels": list(feature_channels),
            "head_channels": list(head_channels),
            "attention_pool": int(attention_pool),
            "negative_slope": float(negative_slope),
            "input_skip": bool(input_skip),
        }
        self.negative_slope = negative_slope
        self.merge = nn.ModuleList(
            nn.Conv2d(2 * fc, hc, 3, padding=1)
            for fc, hc in zip(feature_channels, head_channels, strict=True)
        )
        # Projects the coarser level's output to this level's width before it is added.
        self.lift = nn.ModuleList(
            nn.Conv2d(head_channels[i + 1], head_channels[i], 1)
            for i in range(len(head_channels) - 1)
        )
        # The PAN and the upsampled MS, convolved into the finest level beside its features.
        self.inputs = (
            nn.Conv2d(n_bands + 1, head_channels[0], 3, padding=1, bias=False)
            if input_skip else None
        )
        self.refine = nn.ModuleList(nn.Conv2d(hc, hc, 3, padding=1) for hc in head_channels)
        self.attention = nn.ModuleList(
            LocalSCSE(hc, pool_size=attention_pool) for hc in head_channels
        )
        self.to_residual = nn.Conv2d(head_channels[0], n_bands, 3, padding=1)
        # Start from the upsampled MS itself: training only has to learn the missing detail.
        nn.init.zeros_(self.to_residual.weight)
        nn.init.zeros_(self.to_residual.bias)

    def forward(
        self,
        ms_up: torch.Tensor,
        features: list[tuple[torch.Tensor, torch.Tensor]],
        pan: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if len(features) != len(self.merge):
            raise ValueError(f"expected {len(self.merge)} feature levels, got {len(features)}")
        if self.inputs is not None and pan is None:
            raise ValueError("this head convolves the PAN itself (input_skip): pass pan")
        coarser: torch.Tensor | None = None
        inplace = not torch.is_grad_enabled()  # autograd needs the intermediate values
        for level in reversed(range(len(features))):
            p2m, m2p = features[level]
            # The merge conv over concat(p2m, m2p) is the sum of its two halves' convs: no
            # concatenated copy of the two largest maps.
            merge = self.merge[level]
            split = p2m.shape[1]
            hidden = F.conv2d(p2m, merge.weight[:, :split], merge.bias, padding=1)
            hidden += F.conv2d(m2p, merge.weight[:, split:], None, padding=1)
            if level == 0 and self.inputs is not None:
                hidden += self.inputs(torch.cat([pan, ms_up], dim=1))
            hidden = F.leaky_relu(hidden, self.negative_slope, inplace=inplace)
            if coarser is not None:
                # A 1x1 conv commutes with nearest upsampling: lift at the coarse resolution.
                lifted = F.interpolate(
                    self.lift[level](coarser), size=hidden.shape[-2:], mode="nearest"
                )
                hidden = hidden.add_(lifted) if inplace else hidden + lifted
            coarser = self.attention[level](self.refine[level](hidden))
        return ms_up + self.to_residual(coarser)
