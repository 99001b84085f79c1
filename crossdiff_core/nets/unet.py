"""Conditional UNet for the cross-predictive DDPMs (P2M: PAN predicts MS, M2P: MS predicts PAN).

The network predicts the noise ``eps`` added to ``x_t`` given the condition image, which is
concatenated with ``x_t`` at the input. Levels run at H, H/2, H/4, ... with ``channels[i]`` maps
each; going down is a stride-2 convolution, going up a transposed convolution followed by a
convolution over the concatenated skip. Every convolution block adds a projection of the sinusoidal
time embedding and uses GroupNorm + SiLU; there is no attention. The encoder half is reused, frozen,
as a feature extractor.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from crossdiff_core.nets.serialization import (
    load_network,
    read_network_config,
    save_network,
    state_on_cpu,
)


def _group_count(num_channels: int, max_groups: int = 8) -> int:
    """Largest divisor of ``num_channels`` up to ``max_groups`` (GroupNorm needs an exact split)."""
    for groups in range(min(max_groups, num_channels), 0, -1):
        if num_channels % groups == 0:
            return groups
    return 1


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps.

    t: (N,) -> (N, dim) float32; first half cosines, second half sines, geometric frequencies.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    angles = t.float()[:, None] * freqs[None, :]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class TimeConvBlock(nn.Module):
    """conv3x3 (optionally stride 2) -> GroupNorm -> + time projection -> SiLU.

    (N, c_in, H, W), (N, time_dim) -> (N, c_out, H / stride, W / stride)
    """

    def __init__(self, c_in: int, c_out: int, time_dim: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1)
        self.norm = nn.GroupNorm(_group_count(c_out), c_out)
        self.time_proj = nn.Linear(time_dim, c_out)

    def forward(self, x: Tensor, time_features: Tensor) -> Tensor:
        h = self.norm(self.conv(x))
        h = h + self.time_proj(time_features)[:, :, None, None].to(h.dtype)
        return F.silu(h)


class ConditionalUNet(nn.Module):
    """Noise-predicting UNet conditioned by concatenation.

    ``forward(x_t (N, in_channels, H, W), t (N,), condition (N, cond_channels, H, W))`` returns
    the predicted noise (N, in_channels, H, W). H and W must be divisible by
    ``2 ** (len(channels) - 1)``. ``encode`` returns the encoder maps, one per level: level i is
    (N, channels[i], H / 2**i, W / 2**i).
    """

    def __init__(
        self,
        in_channels: int,
        cond_channels: int,
        channels: tuple[int, ...] | list[int] = (32, 64, 128, 256),
        time_embed_dim: int | None = None,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if in_channels < 1 or cond_channels < 0:
            raise ValueError(
                f"ConditionalUNet needs in_channels >= 1 and cond_channels >= 0, "
                f"got {in_channels} and {cond_channels}"
            )
        if not channels or any(c < 1 for c in channels):
            raise ValueError(
                f"channels must be a non-empty list of positive widths, got {channels}"
            )
        time_dim = int(time_embed_dim) if time_embed_dim is not None else 4 * channels[0]
        self.config: dict = {
            "in_channels": int(in_channels),
            "cond_channels": int(cond_channels),
            "channels": list(channels),
            "time_embed_dim": time_embed_dim if time_embed_dim is None else int(time_embed_dim),
        }
        self.feature_channels: tuple[int, ...] = channels
        self.in_channels = int(in_channels)
        self.cond_channels = int(cond_channels)
        self._sinusoid_dim = channels[0]

        self.time_mlp = nn.Sequential(
            nn.Linear(channels[0], time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
        )
        self.stem = TimeConvBlock(in_channels + cond_channels, channels[0], time_dim)
        self.level0 = TimeConvBlock(channels[0], channels[0], time_dim)
        self.downs = nn.ModuleList(
            TimeConvBlock(channels[i - 1], channels[i], time_dim, stride=2)
            for i in range(1, len(channels))
        )
        # Decoder level i (coarse to fine) goes from channels[i] up to channels[i - 1].
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(channels[i], channels[i - 1], kernel_size=2, stride=2)
            for i in range(len(channels) - 1, 0, -1)
        )
        self.merges = nn.ModuleList(
            TimeConvBlock(2 * channels[i - 1], channels[i - 1], time_dim)
            for i in range(len(channels) - 1, 0, -1)
        )
        self.out_norm = nn.GroupNorm(_group_count(channels[0]), channels[0])
        self.out_conv = nn.Conv2d(channels[0], in_channels, kernel_size=3, padding=1)
        # A zero output layer starts the model at "predict no noise", which keeps early losses tame.
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this."""
        return 2 ** (len(self.feature_channels) - 1)

    def _check_inputs(self, x_t: Tensor, t: Tensor, condition: Tensor | None) -> Tensor:
        if x_t.ndim != 4 or x_t.shape[1] != self.in_channels:
            raise ValueError(
                f"x_t must be (N, {self.in_channels}, H, W), got {tuple(x_t.shape)}"
            )
        height, width = x_t.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(
                f"H and W must be divisible by {self.size_multiple} for channels "
                f"{list(self.feature_channels)}, got {height}x{width}: crop or pad the input"
            )
        if condition is None:
            condition = x_t.new_zeros((x_t.shape[0], self.cond_channels, height, width))
        if condition.shape != (x_t.shape[0], self.cond_channels, height, width):
            raise ValueError(
                f"condition must be (N, {self.cond_channels}, {height}, {width}), "
                f"got {tuple(condition.shape)}"
            )
        if t.ndim != 1 or t.shape[0] != x_t.shape[0]:
            raise ValueError(f"t must be (N,) = ({x_t.shape[0]},), got {tuple(t.shape)}")
        return condition

    def _encode(
        self, x_t: Tensor, t: Tensor, condition: Tensor | None
    ) -> tuple[list[Tensor], Tensor]:
        condition = self._check_inputs(x_t, t, condition)
        time_features = self.time_mlp(timestep_embedding(t, self._sinusoid_dim).to(x_t.dtype))
        h = self.stem(torch.cat([x_t, condition.to(x_t.dtype)], dim=1), time_features)
        features = [self.level0(h, time_features)]
        for down in self.downs:
            features.append(down(features[-1], time_features))
        return features, time_features

    def encode(self, x_t: Tensor, t: Tensor, condition: Tensor | None) -> list[Tensor]:
        """Multi-scale encoder maps: [(N, channels[i], H / 2**i, W / 2**i) for each level i].

        ``condition=None`` stands for the dropped (unconditional) condition, an all-zero image.
        """
        return self._encode(x_t, t, condition)[0]

    def forward(self, x_t: Tensor, t: Tensor, condition: Tensor | None) -> Tensor:
        """Predicted noise (N, in_channels, H, W) for x_t (N, in_channels, H, W) at steps t (N,)."""
        features, time_features = self._encode(x_t, t, condition)
        h = features[-1]
        for up, merge, skip in zip(self.ups, self.merges, reversed(features[:-1]), strict=True):
            h = merge(torch.cat([up(h), skip], dim=1), time_features)
        return self.out_conv(F.silu(self.out_norm(h)))


def save_unet(model: ConditionalUNet, folder: str | Path, extra: dict | None = None) -> Path:
    """Write ``config.json`` (constructor arguments + ``extra``) and ``weights.pt`` (state dict)
    atomically (``crossdiff_core.nets.serialization``)."""
    return save_network(folder, "unet", model.config, state_on_cpu(model), extra=extra or {})


def read_unet_config(folder: str | Path) -> dict:
    """The ``config.json`` document of a saved UNet folder: {"config": ..., "extra": ..., ...}."""
    return read_network_config(folder, "unet")


def load_unet(folder: str | Path, map_location: str | torch.device = "cpu") -> ConditionalUNet:
    """Rebuild a UNet saved by ``save_unet`` and load its weights; returned in eval mode."""
    document, state = load_network(folder, "unet", map_location)
    model = ConditionalUNet(**document["config"])
    model.load_state_dict(state)
    return model.eval()
