"""The frozen feature extractor: the P2M and M2P encoders, fixed once and for all.

Two choices make its features independent of how a scene is tiled:
- GroupNorm statistics are frozen. A pretrained UNet normalises every GroupNorm over the image
  it sees, so its features change with the tile. Here each GroupNorm is replaced by a fixed affine
  map whose per-group mean and variance are averaged over calibration patches (what a patch of the
  pretraining size typically has), which turns the encoders into purely local operators.
- Noise at ``t_feature`` is either absent (the mean of q(x_t | x_0), the default: DESIGN.md
  measured it as good as noisy features) or drawn from a hash of the global pixel coordinates.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossdiff_core.diffusion import make_schedule
from crossdiff_core.nets.serialization import load_network, save_network, state_on_cpu
from crossdiff_core.nets.unet import (
    ConditionalUNet,
    TimeConvBlock,
    load_unet,
    read_unet_config,
    timestep_embedding,
)

_MASK32 = 0xFFFFFFFF


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


def _folded_encode(unet: ConditionalUNet, x_t: torch.Tensor, t_feature: int) -> list[torch.Tensor]:
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


def _folded_decode(
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


def _reference_decode(
    unet: ConditionalUNet, encoder_maps: list[torch.Tensor], t: torch.Tensor
) -> list[torch.Tensor]:
    """``_folded_decode`` through the UNet's own layers (calibration hooks the norms there)."""
    time_features = unet.time_mlp(timestep_embedding(t, unet._sinusoid_dim).to(
        encoder_maps[0].dtype))
    h = encoder_maps[-1]
    maps = []
    for up, merge, skip in zip(unet.ups, unet.merges, reversed(encoder_maps[:-1]), strict=True):
        h = merge(torch.cat([up(h), skip], dim=1), time_features)
        maps.append(h)
    return maps[::-1]


def _with_decoder(encoder_maps: list[torch.Tensor], decoder_maps: list[torch.Tensor]
                  ) -> list[torch.Tensor]:
    """Per level, the encoder map with the decoder map of the same level appended (channels)."""
    paired = zip(encoder_maps[: len(decoder_maps)], decoder_maps, strict=True)
    return [torch.cat([enc, dec], dim=1) for enc, dec in paired] + encoder_maps[len(decoder_maps):]


def _freeze_group_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.GroupNorm):
            setattr(module, name, FixedGroupNorm(child))
        else:
            _freeze_group_norms(child)


def _hash32(values: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer on int64 tensors holding values in [0, 2**32)."""
    values = values ^ (values >> 16)
    values = (values * 0x7FEB352D) & _MASK32
    values = values ^ (values >> 15)
    values = (values * 0x846CA68B) & _MASK32
    return values ^ (values >> 16)


def coordinate_noise(
    channels: int,
    height: int,
    width: int,
    origin: tuple[int, int],
    seed: int,
    channel_offset: int = 0,
) -> torch.Tensor:
    """Standard normal noise (channels, height, width) that depends only on global coordinates.

    Pixel (c, y, x) of a tile whose top-left pixel sits at ``origin`` (global PAN row, column)
    always gets the same value, whatever the tiling: noisy features stay deterministic.
    """
    rows = torch.arange(height, dtype=torch.int64) + origin[0] + 2**20
    cols = torch.arange(width, dtype=torch.int64) + origin[1] + 2**20
    chans = torch.arange(channels, dtype=torch.int64) + channel_offset
    key = (
        chans[:, None, None] * 0x9E3779B1
        + rows[None, :, None] * 0x85EBCA77
        + cols[None, None, :] * 0xC2B2AE3D
        + seed * 0x27D4EB2F
    ) & _MASK32
    first = _hash32(key)
    second = _hash32(first ^ 0x5BD1E995)
    u1 = (first.double() + 1.0) / 2.0**32
    u2 = second.double() / 2.0**32
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * np.pi * u2)).float()


class FrozenExtractor(nn.Module):
    """Both pretrained encoders, frozen: multi-scale features of an (upsampled MS, PAN) pair.

    ``p2m``: UNet with x0 = upsampled MS (len(bands) channels), condition = PAN.
    ``m2p``: UNet with x0 = PAN, condition = upsampled MS.
    ``bands``: canonical band names the encoders were pretrained on, in channel order.
    """

    def __init__(
        self,
        p2m: ConditionalUNet,
        m2p: ConditionalUNet,
        bands: list[str],
        ratio: int,
        t_feature: int = 50,
        noise_free: bool = True,
        schedule: str = "cosine",
        timesteps: int = 1000,
        noise_seed: int = 0,
        sensor: str | None = None,
        pretrained: bool = True,
        decoder_features: bool = False,
    ) -> None:
        super().__init__()
        if p2m.in_channels != len(bands) or m2p.cond_channels != len(bands):
            raise ValueError(
                f"encoders do not fit {len(bands)} bands {bands}: P2M has {p2m.in_channels} "
                f"input channels and M2P {m2p.cond_channels} condition channels"
            )
        if p2m.cond_channels != 1 or m2p.in_channels != 1:
            raise ValueError("P2M must be conditioned on the 1-channel PAN and M2P must diffuse it")
        if len(p2m.feature_channels) != len(m2p.feature_channels):
            raise ValueError("P2M and M2P encoders must have the same number of levels")
        if not 0 <= t_feature < timesteps:
            raise ValueError(f"t_feature must lie in [0, {timesteps}), got {t_feature}")
        self.config = {
            "p2m": dict(p2m.config),
            "m2p": dict(m2p.config),
            "bands": [str(b) for b in bands],
            "ratio": int(ratio),
            "t_feature": int(t_feature),
            "noise_free": bool(noise_free),
            "schedule": str(schedule),
            "timesteps": int(timesteps),
            "noise_seed": int(noise_seed),
            "sensor": sensor,
            "pretrained": bool(pretrained),
            "decoder_features": bool(decoder_features),
        }
        self.p2m = copy.deepcopy(p2m)
        self.m2p = copy.deepcopy(m2p)
        for unet in (self.p2m, self.m2p):
            _freeze_group_norms(unet)
        alphas_cumprod = np.cumprod(1.0 - make_schedule(schedule, timesteps))
        self.signal_scale = float(np.sqrt(alphas_cumprod[t_feature]))
        self.noise_scale = float(np.sqrt(1.0 - alphas_cumprod[t_feature]))
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenExtractor:
        """Always stays in eval mode: a frozen extractor is never trained."""
        return super().train(False)

    @property
    def bands(self) -> list[str]:
        return list(self.config["bands"])

    @property
    def ratio(self) -> int:
        return int(self.config["ratio"])

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of each branch's map per level, finest first (encoder + decoder channels
        when ``decoder_features``: every level but the coarsest has both)."""
        channels = tuple(self.p2m.feature_channels)
        if not self.config.get("decoder_features"):
            return channels
        return tuple(2 * c for c in channels[:-1]) + channels[-1:]

    @property
    def size_multiple(self) -> int:
        return self.p2m.size_multiple

    def _noised(
        self, x0: torch.Tensor, origin: tuple[int, int], channel_offset: int
    ) -> torch.Tensor:
        if self.config["noise_free"]:
            return self.signal_scale * x0
        noise = torch.stack(
            [
                coordinate_noise(
                    x0.shape[1],
                    x0.shape[2],
                    x0.shape[3],
                    origin,
                    self.config["noise_seed"],
                    channel_offset,
                )
                for _ in range(x0.shape[0])
            ]
        ).to(device=x0.device, dtype=x0.dtype)
        return self.signal_scale * x0 + self.noise_scale * noise

    @torch.no_grad()
    def features(
        self, ms_up: torch.Tensor, pan: torch.Tensor, origin: tuple[int, int] = (0, 0)
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per level (finest first), the (P2M map, M2P map) pair.

        ms_up (N, len(bands), H, W) and pan (N, 1, H, W) in the networks' range; H, W multiples of
        ``size_multiple``. ``origin``: global (row, column) of pixel (0, 0), used only by noise.
        Level i maps are (N, feature_channels[i], H / 2**i, W / 2**i).
        """
        if ms_up.shape[1] != len(self.bands):
            raise ValueError(
                f"the extractor takes {len(self.bands)} bands {self.bands}, got {ms_up.shape[1]}"
            )
        for name, image in (("ms_up", ms_up), ("pan", pan)):
            if image.ndim != 4 or image.shape[-1] % self.size_multiple or (
                image.shape[-2] % self.size_multiple
            ):
                raise ValueError(
                    f"{name} must be (N, C, H, W) with H and W multiples of "
                    f"{self.size_multiple}, got {tuple(image.shape)}"
                )
        if pan.shape != (ms_up.shape[0], 1, *ms_up.shape[-2:]):
            raise ValueError(f"pan must be (N, 1, H, W) beside ms_up, got {tuple(pan.shape)}")
        # channels_last: oneDNN convolves NHWC directly instead of reordering every layer.
        layout = torch.channels_last
        p2m_input = torch.cat([self._noised(ms_up, origin, 0), pan], dim=1)
        m2p_input = torch.cat([self._noised(pan, origin, len(self.bands)), ms_up], dim=1)
        t_feature = self.config["t_feature"]
        p2m_maps = _folded_encode(self.p2m, p2m_input.contiguous(memory_format=layout), t_feature)
        m2p_maps = _folded_encode(self.m2p, m2p_input.contiguous(memory_format=layout), t_feature)
        if self.config.get("decoder_features"):
            p2m_maps = _with_decoder(p2m_maps, _folded_decode(self.p2m, p2m_maps, t_feature))
            m2p_maps = _with_decoder(m2p_maps, _folded_decode(self.m2p, m2p_maps, t_feature))
        return list(zip(p2m_maps, m2p_maps, strict=True))

    @torch.no_grad()
    def reference_features(
        self, ms_up: torch.Tensor, pan: torch.Tensor, origin: tuple[int, int] = (0, 0)
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``features`` through the UNets' own layers (frozen norms as separate ops).

        Slower; ``calibrate`` needs it (it hooks the norms) and tests compare the folded path
        against it.
        """
        t = torch.full((ms_up.shape[0],), self.config["t_feature"], device=ms_up.device)
        p2m_maps = self.p2m.encode(self._noised(ms_up, origin, 0), t, pan)
        m2p_maps = self.m2p.encode(self._noised(pan, origin, len(self.bands)), t, ms_up)
        if self.config.get("decoder_features"):
            p2m_maps = _with_decoder(p2m_maps, _reference_decode(self.p2m, p2m_maps, t))
            m2p_maps = _with_decoder(m2p_maps, _reference_decode(self.m2p, m2p_maps, t))
        return list(zip(p2m_maps, m2p_maps, strict=True))

    @torch.no_grad()
    def calibrate(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
        """Set every frozen GroupNorm's statistics from (ms_up, pan) calibration batches.

        Each batch is ms_up (N, B, h, w), pan (N, 1, h, w), best at the pretraining patch size.
        Statistics are the average over patches of what GroupNorm would have computed on each.
        Returns the number of patches used.
        """
        norms = [m for m in self.modules() if isinstance(m, FixedGroupNorm)]
        sums: dict[int, list[torch.Tensor]] = {id(m): [] for m in norms}

        def record(module: FixedGroupNorm, inputs: tuple[torch.Tensor, ...], _output) -> None:
            x = inputs[0].double()
            grouped = x.reshape(x.shape[0], module.num_groups, -1)
            sums[id(module)].append(
                torch.stack(
                    [grouped.mean(dim=2).sum(dim=0), grouped.var(dim=2, unbiased=False).sum(dim=0)]
                )
            )

        # A layer's input depends on the statistics of the layers before it, so calibrate them
        # one at a time in forward order, starting from identity statistics.
        count = 0
        batches = list(batches)
        for norm in norms:
            norm.group_mean.zero_()
            norm.group_var.fill_(1.0)
        for norm in norms:
            handle = norm.register_forward_hook(record)
            sums[id(norm)].clear()
            count = 0
            for ms_up, pan in batches:
                self.reference_features(ms_up, pan)
                count += ms_up.shape[0]
            handle.remove()
            if count == 0:
                raise ValueError("calibration needs at least one patch")
            if not sums[id(norm)]:
                continue  # a norm the features never reach (the decoder's, or its output norm)
            total = torch.stack(sums[id(norm)]).sum(dim=0) / count
            norm.group_mean.copy_(total[0].float())
            norm.group_var.copy_(total[1].float())
        return count


def save_extractor(extractor: FrozenExtractor, folder: str | Path) -> Path:
    """Write ``config.json`` + ``weights.pt`` (state dict incl. frozen statistics) atomically."""
    return save_network(folder, "extractor", extractor.config, state_on_cpu(extractor))


def _build(config: dict) -> FrozenExtractor:
    return FrozenExtractor(
        ConditionalUNet(**config["p2m"]),
        ConditionalUNet(**config["m2p"]),
        bands=config["bands"],
        ratio=config["ratio"],
        t_feature=config["t_feature"],
        noise_free=config["noise_free"],
        schedule=config["schedule"],
        timesteps=config["timesteps"],
        noise_seed=config["noise_seed"],
        sensor=config.get("sensor"),
        pretrained=config.get("pretrained", True),
        decoder_features=config.get("decoder_features", False),
    )


def extractor_from_config(config: dict, state: dict[str, torch.Tensor]) -> FrozenExtractor:
    """Rebuild an extractor from its recorded config and state dict (used by the pansharpener)."""
    extractor = _build(config)
    extractor.load_state_dict(state)
    for parameter in extractor.parameters():
        parameter.requires_grad_(False)
    return extractor


def load_extractor(folder: str | Path, map_location: str | torch.device = "cpu") -> FrozenExtractor:
    """Rebuild a frozen extractor saved by ``save_extractor`` (eval mode, no gradients)."""
    document, state = load_network(folder, "extractor", map_location)
    return extractor_from_config(document["config"], state)


def _pretraining_extra(folder: Path) -> dict:
    return read_unet_config(folder).get("extra", {}) or {}


def extractor_from_pretrained(
    p2m_folder: str | Path,
    m2p_folder: str | Path,
    t_feature: int = 50,
    noise_free: bool = True,
    bands: list[str] | None = None,
    ratio: int | None = None,
    schedule: str | None = None,
    timesteps: int | None = None,
    decoder_features: bool = False,
) -> FrozenExtractor:
    """Build an (uncalibrated) extractor from two ``save_unet`` folders of the pretraining stage.

    Bands, ratio, sensor, schedule and timesteps are read from the folders' ``extra`` record when
    not given.
    """
    extra = _pretraining_extra(Path(p2m_folder))
    bands = bands or extra.get("band_names") or extra.get("bands")
    ratio = ratio or extra.get("ratio")
    if not bands or not ratio:
        raise ValueError(
            f"{p2m_folder}: the pretrained UNet does not record its band names and ratio; "
            "pass bands= and ratio= explicitly"
        )
    return FrozenExtractor(
        load_unet(p2m_folder),
        load_unet(m2p_folder),
        bands=list(bands),
        ratio=int(ratio),
        t_feature=t_feature,
        noise_free=noise_free,
        schedule=schedule or extra.get("schedule", "cosine"),
        timesteps=int(timesteps or extra.get("timesteps", 1000)),
        sensor=extra.get("sensor"),
        decoder_features=decoder_features,
    )


def random_extractor(
    bands: list[str],
    ratio: int,
    channels: tuple[int, ...] | list[int] = (32, 64, 128, 256),
    t_feature: int = 50,
    noise_free: bool = True,
    seed: int = 0,
    schedule: str = "cosine",
    timesteps: int = 1000,
    decoder_features: bool = False,
) -> FrozenExtractor:
    """The ablation: the same architecture, randomly initialised (seeded) and frozen."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        p2m = ConditionalUNet(len(bands), 1, channels)
        m2p = ConditionalUNet(1, len(bands), channels)
    finally:
        torch.random.set_rng_state(generator_state)
    return FrozenExtractor(
        p2m,
        m2p,
        bands=list(bands),
        ratio=ratio,
        t_feature=t_feature,
        noise_free=noise_free,
        schedule=schedule,
        timesteps=timesteps,
        pretrained=False,
        decoder_features=decoder_features,
    )


def random_twin(extractor: FrozenExtractor, seed: int = 0) -> FrozenExtractor:
    """The ablation of ``extractor``: the same UNet layouts, bands, timestep, noise and feature
    reading, with randomly initialised (seeded) weights; statistics still to be calibrated."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        p2m = ConditionalUNet(**extractor.config["p2m"])
        m2p = ConditionalUNet(**extractor.config["m2p"])
    finally:
        torch.random.set_rng_state(generator_state)
    config = {**extractor.config, "pretrained": False, "sensor": None}
    return FrozenExtractor(
        p2m, m2p, bands=config["bands"], ratio=config["ratio"], t_feature=config["t_feature"],
        noise_free=config["noise_free"], schedule=config["schedule"],
        timesteps=config["timesteps"], noise_seed=config["noise_seed"], pretrained=False,
        decoder_features=config.get("decoder_features", False),
    )
