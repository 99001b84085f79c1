"""PanCollection HDF5 files: ``ms`` (N, B, h, w), ``pan`` (N, 1, H, W), optional ``lms``/``gt``.

Each sample becomes its own scene (``<file stem>-<index>``), so every stage sees ordinary scenes.
``lms`` (the upsampled MS) is derived data and is not stored; ``gt`` (the reference of
reduced-resolution sets) is kept as the attribute ``has_reference`` only. Samples are read one at a
time, so large files never load whole. No georeferencing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr

from crossdiff_core.io.errors import CorruptInputError, InvalidContentError
from crossdiff_core.io.raw import RawPair, detect_sensor_from_text


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise CorruptInputError(f"{path}: corrupt or truncated HDF5 file ({error})") from error


def count_samples(path: Path) -> int:
    """Number of samples in a PanCollection file, after checking keys and shapes."""
    with _open(path) as handle:
        for key in ("ms", "pan"):
            if key not in handle:
                raise InvalidContentError(
                    f"{path}: dataset {key!r} is missing (keys: {sorted(handle.keys())})"
                )
        ms, pan = handle["ms"], handle["pan"]
        if ms.ndim != 4 or pan.ndim != 4 or pan.shape[1] != 1:
            raise InvalidContentError(
                f"{path}: expected ms (N, B, h, w) and pan (N, 1, H, W), got {ms.shape} and "
                f"{pan.shape}"
            )
        if ms.shape[0] != pan.shape[0]:
            raise InvalidContentError(
                f"{path}: inconsistent shapes: {ms.shape[0]} MS samples but {pan.shape[0]} PAN"
            )
        ratio = pan.shape[2] / ms.shape[2]
        if ratio != pan.shape[3] / ms.shape[3] or int(ratio) != ratio or ratio < 2:
            raise InvalidContentError(
                f"{path}: inconsistent shapes: PAN {pan.shape[2:]} is not an integer multiple of "
                f"MS {ms.shape[2:]}"
            )
        return int(ms.shape[0])


def read_pancollection(path: Path, sensor_name: str | None = None) -> Iterator[RawPair]:
    """One RawPair per sample of ``path`` (numpy-backed, read lazily sample by sample)."""
    n_samples = count_samples(path)
    if sensor_name is None:
        sensor_name = detect_sensor_from_text(path.stem)
    width = max(4, len(str(n_samples - 1)))
    for index in range(n_samples):
        with _open(path) as handle:
            try:
                ms = np.asarray(handle["ms"][index])
                pan = np.asarray(handle["pan"][index, 0])
            except OSError as error:
                raise CorruptInputError(f"{path}: sample {index} unreadable ({error})") from error
            has_reference = "gt" in handle
        yield RawPair(
            pan=xr.DataArray(pan, dims=("y", "x")),
            ms=xr.DataArray(ms, dims=("band", "y", "x")),
            sensor_name=sensor_name,
            scene_id=f"{path.stem}-{index:0{width}d}",
            georeferenced=False,
            ratio=pan.shape[0] // ms.shape[1],
            files={"pan": path, "ms": path},
            extra_attrs={"sample_index": index, "has_reference": has_reference},
        )
