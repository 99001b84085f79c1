"""The adapted CrossDiff model: frozen extractor + fusion head, with everything needed to use it.

``Pansharpener.fuse(ms, pan)`` works in the input's DN units on a whole (small) image;
``fuse_windows`` is what tiled inference (``crossdiff_core.infer``) calls on windows that already
carry their context. Both share one code path, so a tiled scene equals the one-shot result up to
the context the tiles are given.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crossdiff_core.degrade import interp23tap
from crossdiff_core.nets.extractor import FrozenExtractor, extractor_from_config
from crossdiff_core.nets.fusion import FusionHead
from crossdiff_core.nets.serialization import (
    is_network_folder,
    load_weights,
    read_network_config,
    save_network,
    state_on_cpu,
)
from crossdiff_core.scaling import Normalisation

# Format 1 kept each part's state in its own file.
_PARTS_V1 = {"extractor": "extractor.pt", "head": "head.pt"}
DEFAULT_CONTEXT = 96  # PAN pixels of context around a window; covers interp23tap and the head


def match_bands(extractor_bands: list[str], scene_bands: list[str]) -> list[int]:
    """Indices into ``scene_bands`` that give the extractor its bands, matched by canonical name.

    Raises ValueError naming the missing bands when the scene lacks some of them.
    """
    missing = [band for band in extractor_bands if band not in scene_bands]
    if missing:
        raise ValueError(
            f"the encoders were pretrained on bands {extractor_bands} but the scene has "
            f"{scene_bands} (missing {missing}): use encoders pretrained on a sensor whose bands "
            "the scene covers, or pretrain on this sensor"
        )
    return [scene_bands.index(band) for band in extractor_bands]


def check_window(ms: np.ndarray, pan: np.ndarray, ratio: int, n_bands: int, what: str) -> None:
    """Raise ValueError unless ms (n_bands, h, w) and pan (h * ratio, w * ratio) fit together."""
    if ms.ndim != 3 or pan.ndim != 2:
        raise ValueError(
            f"{what}: ms must be (band, y, x) and pan (y, x), got {ms.shape} and {pan.shape}"
        )
    if ms.shape[0] != n_bands:
        raise ValueError(f"{what}: the model fuses {n_bands} bands, the MS has {ms.shape[0]}")
    if pan.shape != (ms.shape[1] * ratio, ms.shape[2] * ratio):
        raise ValueError(
            f"{what}: PAN {pan.shape} is not {ratio} x MS {ms.shape[1:]}: the ratio does not fit "
            "this model, or the pair is not aligned (ingest it with `crossdiff ingest`)"
        )


def upsample_ms(ms: np.ndarray, ratio: int) -> np.ndarray:
    """interp23tap upsampling of (B, h, w) to (B, h * ratio, w * ratio), float32."""
    return interp23tap(np.asarray(ms, dtype=np.float64), ratio).astype(np.float32)


class Pansharpener(nn.Module):
    """Frozen encoders + trained fusion head + the facts needed to apply them.

    ``config``: sensor, ratio, band_names (output order), normalisation (``Normalisation.to_dict``:
    the DN bounds of each band mapped to -1 and +1; older models have only scale_max, the DN mapped
    to 1.0 for every band),
    t_feature, extractor_bands (indices of the scene bands fed to the encoders), context (PAN px),
    head (the head's constructor arguments), and what it was adapted on.
    """

    def __init__(self, extractor: FrozenExtractor, head: FusionHead, config: dict) -> None:
        super().__init__()
        self.extractor = extractor
        self.head = head
        required = ("sensor", "ratio", "band_names")
        missing = [key for key in required if key not in config]
        if "normalisation" not in config and "scale_max" not in config:
            missing.append("normalisation")
        if missing:
            raise ValueError(f"pansharpener config lacks {missing}")
        self.config = {
            "t_feature": extractor.config["t_feature"],
            "context": DEFAULT_CONTEXT,
            "extractor_bands": match_bands(extractor.bands, list(config["band_names"])),
            **config,
            "head": dict(head.config),
        }
        if self.ratio != extractor.ratio:
            raise ValueError(
                f"the encoders were pretrained at ratio {extractor.ratio}, the scene has ratio "
                f"{self.ratio}: use encoders pretrained at ratio {self.ratio}"
            )

    @property
    def ratio(self) -> int:
        return int(self.config["ratio"])

    @property
    def normalisation(self) -> Normalisation:
        """How DN map to the networks' range, as recorded at adaptation."""
        if "normalisation" in self.config:
            return Normalisation.from_dict(self.config["normalisation"])
        return Normalisation.bit_depth(float(self.config["scale_max"]), self.n_bands)

    @property
    def band_names(self) -> list[str]:
        return list(self.config["band_names"])

    @property
    def n_bands(self) -> int:
        return len(self.band_names)

    @property
    def size_multiple(self) -> int:
        """Window sides (PAN px) must be multiples of this: the encoders' stride and the ratio."""
        return math.lcm(self.extractor.size_multiple, self.ratio)

    @property
    def context(self) -> int:
        return int(self.config["context"])

    def forward(
        self, ms_up: torch.Tensor, pan: torch.Tensor, origin: tuple[int, int] = (0, 0)
    ) -> torch.Tensor:
        """ms_up (N, B, H, W), pan (N, 1, H, W) in the networks' range -> fused (N, B, H, W)."""
        encoder_input = ms_up[:, self.config["extractor_bands"]]
        features = self.extractor.features(encoder_input, pan, origin)
        # The features come out channels_last; the head's convolutions keep that layout.
        layout = torch.channels_last
        return self.head(
            ms_up.contiguous(memory_format=layout), features, pan.contiguous(memory_format=layout)
        )

    def prepare(self, ms: np.ndarray, pan: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """DN windows ms (N, B, h, w), pan (N, H, W) -> model range ms_up (N, B, H, W), pan
        (N, 1, H, W)."""
        norm = self.normalisation
        ms_up = np.stack([upsample_ms(window, self.ratio) for window in ms])
        return (
            torch.from_numpy(norm.ms_to_model(ms_up)).float(),
            torch.from_numpy(norm.pan_to_model(np.asarray(pan, np.float32)))[:, None].float(),
        )

    @torch.inference_mode()
    def fuse_windows(
        self,
        ms: np.ndarray,
        pan: np.ndarray,
        origins: list[tuple[int, int]],
        device: str | torch.device = "cpu",
    ) -> np.ndarray:
        """Fuse a batch of windows in DN: ms (N, B, h, w), pan (N, H, W) -> (N, B, H, W) float32.

        Window sides must be multiples of ``size_multiple``; ``origins`` are the global PAN
        (row, column) of each window's top-left pixel. Border pixels (within ``context``) are
        less reliable: the caller blends them away.
        """
        for window_ms, window_pan in zip(ms, pan, strict=True):
            check_window(window_ms, window_pan, self.ratio, self.n_bands, "window")
        if pan.shape[-1] % self.size_multiple or pan.shape[-2] % self.size_multiple:
            raise ValueError(
                f"window sides must be multiples of {self.size_multiple}, got {pan.shape[-2:]}"
            )
        ms_up, pan_t = self.prepare(ms, pan)
        fused = []
        # Windows at different origins need their own coordinate noise: one forward each when
        # noisy, one batched forward when noise-free.
        if self.extractor.config["noise_free"]:
            fused.append(self(ms_up.to(device), pan_t.to(device)).cpu())
        else:
            for i, origin in enumerate(origins):
                fused.append(
                    self(
                        ms_up[i : i + 1].to(device), pan_t[i : i + 1].to(device), tuple(origin)
                    ).cpu()
                )
        out = torch.cat(fused).contiguous().numpy()
        return self.normalisation.ms_from_model(out).astype(np.float32)

    def fuse(
        self, ms: np.ndarray, pan: np.ndarray, device: str | torch.device = "cpu"
    ) -> np.ndarray:
        """Pansharpen a whole image at once: ms (B, h, w), pan (h * ratio, w * ratio) in DN.

        Returns fused (B, H, W) float32 in the same DN units. The image is mirrored by
        ``context`` pixels (and up to the size multiple) first, as tiled inference does.
        """
        ms = np.asarray(ms)
        pan = np.asarray(pan)
        check_window(ms, pan, self.ratio, self.n_bands, "fuse")
        ms_padded, pan_padded, context = pad_for_model(
            ms, pan, self.ratio, self.context, self.size_multiple
        )
        fused = self.fuse_windows(
            ms_padded[None], pan_padded[None], [(-context, -context)], device
        )[0]
        return fused[:, context : context + pan.shape[0], context : context + pan.shape[1]]


def pad_for_model(
    ms: np.ndarray, pan: np.ndarray, ratio: int, context: int, multiple: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mirror ms (B, h, w) and pan (H, W) by ``context`` PAN px (rounded up to ``multiple``)
    on every side, plus what the bottom/right need to reach a multiple. Returns the padded pair
    and the context actually used."""
    context = -(-context // multiple) * multiple
    extra_y = (-pan.shape[0]) % multiple
    extra_x = (-pan.shape[1]) % multiple
    pan_padded = np.pad(
        pan, ((context, context + extra_y), (context, context + extra_x)), mode="symmetric"
    )
    ms_padded = np.pad(
        ms,
        (
            (0, 0),
            (context // ratio, (context + extra_y) // ratio),
            (context // ratio, (context + extra_x) // ratio),
        ),
        mode="symmetric",
    )
    return ms_padded, pan_padded, context


def save_pansharpener(model: Pansharpener, folder: str | Path) -> Path:
    """Write ``config.json`` (model + extractor + head configs) and ``weights.pt`` (the
    extractor's and the head's state, keys ``extractor.*`` and ``head.*``) atomically."""
    save_network(folder, "pansharpener", model.config, state_on_cpu(model),
                 extractor=model.extractor.config)
    for name in _PARTS_V1.values():  # a folder saved in format 1 before
        (Path(folder) / name).unlink(missing_ok=True)
    return Path(folder)


def is_pansharpener_folder(path: str | Path) -> bool:
    return is_network_folder(path, "pansharpener")


def load_pansharpener(folder: str | Path, map_location: str | torch.device = "cpu") -> Pansharpener:
    """Rebuild a pansharpener saved by ``save_pansharpener`` (eval mode); reads format 1
    folders (one weights file per part) too."""
    document = read_network_config(folder, "pansharpener")
    if document.get("version", 1) >= 2:
        state = load_weights(folder, "pansharpener", map_location=map_location)
        parts = {
            part: {key.removeprefix(f"{part}."): value for key, value in state.items()
                   if key.startswith(f"{part}.")}
            for part in _PARTS_V1
        }
    else:
        parts = {part: load_weights(folder, "pansharpener", name, map_location)
                 for part, name in _PARTS_V1.items()}
    extractor = extractor_from_config(document["extractor"], parts["extractor"])
    config = dict(document["config"])
    head = FusionHead(**config.pop("head"))
    head.load_state_dict(parts["head"])
    return Pansharpener(extractor, head, config).eval()
