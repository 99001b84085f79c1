"""Frozen GroupNorm and the folded passes built on it: the local operators a frozen extractor
is made of.

A pretrained UNet normalises every GroupNorm over the image it sees, so its features change with
the tile. ``FixedGroupNorm`` replaces it by a fixed affine map (per-group statistics calibrated
once); with the timestep fixed too, conv -> norm -> + time projection is one convolution
(``folded_encode`` / ``folded_decode``), and ``reference_decode`` is the same through the UNet's
own layers (calibration hooks the norms there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crossdiff_core.nets.unet import ConditionalUNet, TimeConvBlock, timestep_embedding


class FixedGroupNorm(nn.Module):
    """GroupNorm with frozen per-group statistics: (N, C, H, W) -> (N, C, H, W).

    ``group_mean``/``group_var`` (G,) come from ``FrozenExtractor.calibrate``; ``weight``/``bias``
    are the pretrained affine parameters of the GroupNorm it replaces.
    """

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.num_groups = norm.num_groups
        self.num_channels = norm.num_channels
        self.eps = norm.eps
        self.weight = nn.Parameter(norm.weight.detach().clone())
        self.bias = nn.Parameter(norm.bias.detach().clone())
        self.register_buffer("group_mean", torch.zeros(norm.num_groups))
        self.register_buffer("group_var", torch.ones(norm.num_groups))

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (scale, shift) (C,), (C,): the layer is ``x * scale + shift``."""
        per_channel = self.num_channels // self.num_groups
        mean = self.group_mean.repeat_interleave(per_channel)
        std = torch.sqrt(self.group_var.repeat_interleave(per_channel) + self.eps)
        scale = self.weight / std
        return scale, self.bias - mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.affine()
        return x * scale.to(x.dtype)[None, :, None, None] + shift.to(x.dtype)[None, :, None, None]


def _folded_block(
    block: TimeConvBlock, time_features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of one convolution equal to conv -> frozen GroupNorm -> + time projection.

    All three are affine per output channel once the norm is frozen and t is fixed, so folding
    them saves two passes over every feature map. ``time_features``: (1, time_dim).
    """
    if not isinstance(block.norm, FixedGroupNorm):
        raise TypeError("only blocks with frozen GroupNorm statistics can be folded")
    scale, shift = block.norm.affine()
    weight = block.conv.weight * scale[:, None, None, None]
    bias = block.conv.bias * scale + shift + block.time_proj(time_features)[0]
    return weight, bias


def folded_encode(unet: ConditionalUNet, x_t: torch.Tensor, t_feature: int) -> list[torch.Tensor]:
    """``unet.encode`` for frozen statistics at one timestep, each block as one conv + SiLU.

    x_t: (N, in + cond channels, H, W), the UNet input (x_t and condition already concatenated).
    Returns the same maps as ``encode`` up to float rounding.
    """
    t = torch.full((1,), t_feature, device=x_t.device)
    time_features = unet.time_mlp(timestep_embedding(t, unet._sinusoid_dim).to(x_t.dtype))
    h = x_t
    maps = []
    for index, block in enumerate([unet.stem, unet.level0, *unet.downs]):
        weight, bias = _folded_block(block, time_features)
        h = F.silu(
            F.conv2d(h, weight, bias, block.conv.stride, block.conv.padding), inplace=True
        )
        if index > 0:
            maps.append(h)
    return maps


def folded_decode(
    unet: ConditionalUNet, encoder_maps: list[torch.Tensor], t_feature: int
) -> list[torch.Tensor]:
    """The UNet's decoder maps for frozen statistics, finest first: level i is
    (N, channels[i], H / 2**i, W / 2**i) for every level but the coarsest (which has none)."""
    t = torch.full((1,), t_feature, device=encoder_maps[0].device)
    time_features = unet.time_mlp(
        timestep_embedding(t, unet._sinusoid_dim).to(encoder_maps[0].dtype)
    )
    h = encoder_maps[-1]
    maps = []
    for up, merge, skip in zip(unet.ups, unet.merges, reversed(encoder_maps[:-1]), strict=True):
        weight, bias = _folded_block(merge, time_features)
        h = F.silu(F.conv2d(torch.cat([up(h), skip], dim=1), weight, bias, padding=1))
        maps.append(h)
    return maps[::-1]


def reference_decode(
    unet: ConditionalUNet, encoder_maps: list[torch.Tensor], t: torch.Tensor
) -> list[torch.Tensor]:
    """``folded_decode`` through the UNet's own layers (calibration hooks the norms there)."""
    time_features = unet.time_mlp(timestep_embedding(t, unet._sinusoid_dim).to(
        encoder_maps[0].dtype))
    h = encoder_maps[-1]
    maps = []
    for up, merge, skip in zip(unet.ups, unet.merges, reversed(encoder_maps[:-1]), strict=True):
        h = merge(torch.cat([up(h), skip], dim=1), time_features)
        maps.append(h)
    return maps[::-1]


def with_decoder(
    encoder_maps: list[torch.Tensor], decoder_maps: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Per level, the encoder map with the decoder map of the same level appended (channels)."""
    paired = zip(encoder_maps[: len(decoder_maps)], decoder_maps, strict=True)
    return [torch.cat([enc, dec], dim=1) for enc, dec in paired] + encoder_maps[len(decoder_maps):]


def freeze_group_norms(module: nn.Module) -> None:
    """Replace every GroupNorm inside ``module`` by a ``FixedGroupNorm`` (identity statistics
    until calibrated), in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.GroupNorm):
            setattr(module, name, FixedGroupNorm(child))
        else:
            freeze_group_norms(child)
