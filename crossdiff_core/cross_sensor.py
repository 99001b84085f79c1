"""The cross-sensor experiment's scenes and scores: one evaluation crop per scene and its Wald pair.

Every scene is cut once to a centred crop whose MS side is a multiple of the 32-pixel quality
block (so HQNR and Q2n need no padding) and written as a full-resolution store; its Wald-degraded
copy (MS MTF-filtered and decimated, PAN bicubic-resized) is written as a second store. The
reduced-resolution pipeline pretrains, adapts and fuses on degraded stores only, so the original
MS, which is the reference for Q2n, is never seen by the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from crossdiff_core.degrade import wald_degrade
from crossdiff_core.io.store import open_scene, read_store_attrs, write_scene_store

QUALITY_BLOCK = 32


@dataclass(frozen=True)
class PreparedScene:
    """A scene's evaluation crop (``full_store``) and its Wald-degraded copy (``reduced_store``)."""

    sensor: str
    scene_id: str
    full_store: str
    reduced_store: str

    def store(self, resolution: str) -> str:
        if resolution not in ("full", "reduced"):
            raise ValueError(f"resolution must be 'full' or 'reduced', got {resolution!r}")
        return self.full_store if resolution == "full" else self.reduced_store


def group_by_sensor(
    stores: list[str | Path], max_per_sensor: int | None = None
) -> dict[str, list[str]]:
    """Stores grouped by their ``sensor`` attribute, in first-seen order, at most ``max_per_sensor``
    per sensor (None keeps all)."""
    groups: dict[str, list[str]] = {}
    for store in stores:
        sensor = str(read_store_attrs(store)["sensor"])
        if max_per_sensor is None or len(groups.get(sensor, [])) < max_per_sensor:
            groups.setdefault(sensor, []).append(str(store))
    return groups


def evaluation_window(
    ms_shape: tuple[int, int], ratio: int, max_pan_size: int, store: str | Path
) -> tuple[slice, slice]:
    """Centred MS-grid window whose sides are multiples of the quality block, PAN side at most
    ``max_pan_size``; ValueError naming ``store`` when the scene is smaller than one block at the
    reduced scale (MS side < 32 * ratio is still fine at full resolution but not for Wald)."""
    sides = []
    for length in ms_shape:
        side = min(length, max_pan_size // ratio) // QUALITY_BLOCK * QUALITY_BLOCK
        if side < QUALITY_BLOCK:
            raise ValueError(
                f"{store}: MS {ms_shape} is too small for one {QUALITY_BLOCK}-pixel quality block "
                f"within max_pan_size {max_pan_size}: give a larger scene or raise max_pan_size"
            )
        sides.append(side)
    return tuple(
        slice((length - side) // 2, (length - side) // 2 + side)  # type: ignore[return-value]
        for length, side in zip(ms_shape, sides, strict=True)
    )


def prepare_scene(
    store: str | Path, out_dir: str | Path, max_pan_size: int = 1024
) -> PreparedScene:
    """Write ``<out_dir>/full/<sensor>/<id>.zarr`` (the crop) and ``<out_dir>/reduced/...`` (its
    Wald pair); existing stores are replaced."""
    scene = open_scene(store)
    ratio = scene.ratio
    rows, cols = evaluation_window(tuple(scene.ms.shape[1:]), ratio, max_pan_size, store)
    ms = scene.ms.isel(y=rows, x=cols)
    pan = scene.pan.isel(
        y=slice(rows.start * ratio, rows.stop * ratio),
        x=slice(cols.start * ratio, cols.stop * ratio),
    )
    attrs = dict(scene.attrs)
    chunk = min(1024, pan.shape[0], pan.shape[1]) // ratio * ratio
    full = write_scene_store(
        pan, ms, attrs, Path(out_dir) / "full", chunk_size=chunk, overwrite=True
    )

    ms_lr, pan_lr = wald_degrade(
        np.asarray(ms.values, dtype=np.float64),
        np.asarray(pan.values, dtype=np.float64),
        ratio,
        scene.sensor,
    )
    # Degraded values are kept as float32 (no rounding); the grid is a new one, not georeferenced.
    reduced_attrs = {
        **attrs,
        "georeferenced": False,
        "crs": None,
        "alignment": {"rule": "wald", "reason": "reduced-resolution copy"},
    }
    reduced = write_scene_store(
        xr.DataArray(pan_lr.astype(np.float32), dims=("y", "x")),
        xr.DataArray(
            ms_lr.astype(np.float32), dims=("band", "y", "x"), coords={"band": scene.band_names}
        ),
        reduced_attrs,
        Path(out_dir) / "reduced",
        chunk_size=max(ratio, chunk // ratio // ratio * ratio),
        overwrite=True,
    )
    return PreparedScene(scene.sensor.name, scene.scene_id, str(full), str(reduced))


def _arrays(store: str | Path) -> tuple[np.ndarray, np.ndarray]:
    scene = open_scene(store)
    return (
        np.asarray(scene.ms.values, dtype=np.float64),
        np.asarray(scene.pan.values, dtype=np.float64),
    )


def score_model(model_dir: str | Path, prepared: PreparedScene, resolution: str) -> float:
    """HQNR (``resolution="full"``) of the model fusing the crop, or Q2n (``"reduced"``) of the
    model fusing the Wald pair against the crop's original MS."""
    from crossdiff_core.evaluation import score_full, score_reduced
    from crossdiff_core.pansharpener import load_pansharpener

    model = load_pansharpener(model_dir)
    ms, pan = _arrays(prepared.store(resolution))
    fused = model.fuse(ms, pan)
    sensor = read_store_attrs(prepared.full_store)["sensor"]
    ratio = int(read_store_attrs(prepared.full_store)["ratio"])
    if resolution == "full":
        return float(score_full(fused, ms, pan, ratio, sensor)["hqnr"])
    reference, _ = _arrays(prepared.full_store)
    return float(score_reduced(reference, fused, ratio)["q2n"])


def encoder_mismatch(encoders_dir: str | Path, store: str | Path) -> str | None:
    """Why the frozen encoders in ``encoders_dir`` cannot serve the scene ``store`` (a ratio or
    bands they were not pretrained for), or None when they can."""
    from crossdiff_core.nets.extractor import load_extractor
    from crossdiff_core.pansharpener import match_bands

    extractor = load_extractor(encoders_dir)
    attrs = read_store_attrs(store)
    if extractor.ratio != int(attrs["ratio"]):
        return (
            f"the encoders were pretrained at ratio {extractor.ratio}, "
            f"the scenes have ratio {attrs['ratio']}"
        )
    try:
        match_bands(extractor.bands, [str(b) for b in attrs["band_names"]])
    except ValueError as error:
        return str(error)
    return None
