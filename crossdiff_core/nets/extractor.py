"""The frozen feature extractor: the P2M and M2P encoders, fixed once and for all.

Two choices make its features independent of how a scene is tiled:
- GroupNorm statistics are frozen. A pretrained UNet normalises every GroupNorm over the image
  it sees, so its features change with the tile. Here each GroupNorm is replaced by a fixed affine
  map whose per-group mean and variance are averaged over calibration patches (what a patch of the
  pretraining size typically has), which turns the encoders into purely local operators
  (``crossdiff_core.nets.folded``).
- Noise at ``t_feature`` is either absent (the mean of q(x_t | x_0), the default: measured as good
  as noisy features, ``benchmarks/noise_free_vs_noisy.py``) or drawn from a hash of the global
  pixel coordinates.

With ``standardise_features``, every feature channel (per level and branch) is also shifted and
scaled to mean 0 and standard deviation 1 over the calibration patches, a fixed per-channel affine
map stored beside the GroupNorm statistics. Pretrained and random encoders differ a lot in how
large their channels are (pretrained P2M level-0 maps are about three times larger); the fusion
head then sees every channel on one scale, whichever encoders it sits on.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crossdiff_core.diffusion import make_schedule
from crossdiff_core.nets.folded import (
    FixedGroupNorm,
    folded_decode,
    folded_encode,
    freeze_group_norms,
    reference_decode,
    with_decoder,
)
from crossdiff_core.nets.serialization import load_network, save_network, state_on_cpu
from crossdiff_core.nets.unet import ConditionalUNet, load_unet, read_unet_config

_MASK32 = 0xFFFFFFFF


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
        standardise_features: bool = False,
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
            "standardise_features": bool(standardise_features),
        }
        self.p2m = copy.deepcopy(p2m)
        self.m2p = copy.deepcopy(m2p)
        for unet in (self.p2m, self.m2p):
            freeze_group_norms(unet)
        if standardise_features:
            # Per branch, every level's channels one after another (finest first); identity
            # until ``calibrate`` sets them.
            total = sum(self.feature_channels)
            for branch in ("p2m", "m2p"):
                self.register_buffer(f"{branch}_feature_mean", torch.zeros(total))
                self.register_buffer(f"{branch}_feature_std", torch.ones(total))
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

    def _standardised(
        self, maps: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``maps`` with every channel standardised by the calibrated statistics (unchanged
        without ``standardise_features``)."""
        if not self.config.get("standardise_features"):
            return maps
        out = []
        start = 0
        for p2m_map, m2p_map in maps:
            stop = start + p2m_map.shape[1]
            pair = []
            for branch, level_map in (("p2m", p2m_map), ("m2p", m2p_map)):
                mean = getattr(self, f"{branch}_feature_mean")[start:stop]
                std = getattr(self, f"{branch}_feature_std")[start:stop]
                shape = (1, -1, 1, 1)
                pair.append((level_map - mean.view(shape).to(level_map.dtype))
                            / std.view(shape).to(level_map.dtype))
            out.append((pair[0], pair[1]))
            start = stop
        return out

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
        p2m_maps = folded_encode(self.p2m, p2m_input.contiguous(memory_format=layout), t_feature)
        m2p_maps = folded_encode(self.m2p, m2p_input.contiguous(memory_format=layout), t_feature)
        if self.config.get("decoder_features"):
            p2m_maps = with_decoder(p2m_maps, folded_decode(self.p2m, p2m_maps, t_feature))
            m2p_maps = with_decoder(m2p_maps, folded_decode(self.m2p, m2p_maps, t_feature))
        return self._standardised(list(zip(p2m_maps, m2p_maps, strict=True)))

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
            p2m_maps = with_decoder(p2m_maps, reference_decode(self.p2m, p2m_maps, t))
            m2p_maps = with_decoder(m2p_maps, reference_decode(self.m2p, m2p_maps, t))
        return self._standardised(list(zip(p2m_maps, m2p_maps, strict=True)))

    @torch.no_grad()
    def calibrate(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
        """Set every frozen GroupNorm's statistics from (ms_up, pan) calibration batches.

        Each batch is ms_up (N, B, h, w), pan (N, 1, h, w), best at the pretraining patch size.
        Statistics are the average over patches of what GroupNorm would have computed on each.
        With ``standardise_features``, the feature statistics are then set from the same batches
        (``calibrate_standardisation``). Returns the number of patches used.
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
        if self.config.get("standardise_features"):
            self.calibrate_standardisation(batches)
        return count

    @torch.no_grad()
    def calibrate_standardisation(
        self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], min_std: float = 1e-3
    ) -> None:
        """Set each feature channel's mean and standard deviation over every pixel of the
        (ms_up, pan) batches (after the GroupNorm statistics: call ``calibrate``, which calls
        this). A channel whose deviation is below ``min_std`` is divided by ``min_std``."""
        if not self.config.get("standardise_features"):
            raise ValueError("this extractor was built without standardise_features")
        for branch in ("p2m", "m2p"):
            getattr(self, f"{branch}_feature_mean").zero_()
            getattr(self, f"{branch}_feature_std").fill_(1.0)
        sums = None
        pixels = 0
        for ms_up, pan in batches:
            maps = self.features(ms_up, pan)
            per_branch = [
                torch.cat([level[index].double().sum(dim=(0, 2, 3)) for level in maps])
                for index in (0, 1)
            ]
            squares = [
                torch.cat([level[index].double().square().sum(dim=(0, 2, 3)) for level in maps])
                for index in (0, 1)
            ]
            # Levels have different sizes: count each channel's pixels at its own level.
            counts = torch.cat([
                torch.full((level[0].shape[1],), level[0].shape[0] * level[0].shape[2]
                           * level[0].shape[3], dtype=torch.float64)
                for level in maps
            ])
            batch = torch.stack([*per_branch, *squares])
            sums = batch if sums is None else sums + batch
            pixels = counts if isinstance(pixels, int) else pixels + counts
        if sums is None:
            raise ValueError("standardisation needs at least one calibration patch")
        for index, branch in enumerate(("p2m", "m2p")):
            mean = sums[index] / pixels
            variance = (sums[2 + index] / pixels - mean.square()).clamp_min(0.0)
            getattr(self, f"{branch}_feature_mean").copy_(mean.float())
            getattr(self, f"{branch}_feature_std").copy_(variance.sqrt().clamp_min(min_std).float())


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
        standardise_features=config.get("standardise_features", False),
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
    standardise_features: bool = False,
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
        standardise_features=standardise_features,
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
    standardise_features: bool = False,
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
        standardise_features=standardise_features,
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
        standardise_features=config.get("standardise_features", False),
    )
