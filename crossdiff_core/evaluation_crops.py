"""Evaluation crops and their Wald pairs: the scenes the reduced-resolution chains train on.

Every scene is cut once to a centred crop whose MS side is a multiple of the 32-pixel quality
block (so HQNR and Q2n need no padding) and written as a full-resolution store; its Wald-degraded
copy (MS MTF-filtered and decimated, PAN bicubic-resized) is written as a second store. A
reduced-resolution chain pretrains, adapts and fuses on degraded stores only, so the original MS,
which is the reference for Q2n, is never seen by the method. Used by the ``reduced`` stage and
the cross-sensor experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from crossdiff_core.degrade import wald_degrade
from crossdiff_core.io.store import open_scene, write_scene_store

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
