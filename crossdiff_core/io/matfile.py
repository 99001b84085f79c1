"""GRIP-style MATLAB files: ``I_PAN`` (H, W), ``I_MS_LR`` or ``I_MS`` (h, w, B), ``sensor``,
``ratio`` and ``L`` (bit depth). Version 5 files are read with scipy, version 7.3 (HDF5) with h5py,
whose arrays arrive transposed (MATLAB is column-major). No georeferencing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from crossdiff_core.io.errors import CorruptInputError, InvalidContentError
from crossdiff_core.io.raw import RawPair


def _load_v5(path: Path) -> dict:
    import scipy.io

    return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}


def _load_v73(path: Path) -> dict:
    import h5py

    values: dict = {}
    with h5py.File(path, "r") as handle:
        for key, item in handle.items():
            if not isinstance(item, h5py.Dataset):
                continue
            array = item[()]
            if item.attrs.get("MATLAB_class", b"") in (b"char", "char"):
                values[key] = np.array(["".join(chr(c) for c in array.ravel())])
            else:
                values[key] = np.asarray(array).T
    return values


def load_mat(path: Path) -> dict:
    """The variables of a v5 or v7.3 .mat file in MATLAB's own axis order."""
    with open(path, "rb") as handle:
        header = handle.read(128)
    is_hdf5 = header.startswith(b"MATLAB 7.3") or b"\x89HDF" in header[:8]
    try:
        if is_hdf5 or _looks_like_hdf5(path):
            return _load_v73(path)
        return _load_v5(path)
    except (OSError, ValueError, TypeError, NotImplementedError, KeyError) as error:
        raise CorruptInputError(f"{path}: corrupt or unreadable .mat file ({error})") from error


def _looks_like_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(512)
        return handle.read(8) == b"\x89HDF\r\n\x1a\n"


def _scalar(values: dict, key: str, path: Path) -> int | None:
    if key not in values:
        return None
    try:
        return int(np.asarray(values[key]).ravel()[0])
    except (ValueError, IndexError, TypeError) as error:
        raise InvalidContentError(f"{path}: variable {key!r} is not a number") from error


def read_mat(path: Path, sensor_name: str | None = None) -> RawPair:
    """A GRIP-style .mat file as a RawPair (numpy-backed; such files fit in memory)."""
    values = load_mat(path)
    if "I_PAN" not in values:
        raise InvalidContentError(f"{path}: variable 'I_PAN' is missing (keys: {sorted(values)})")
    ms_key = "I_MS_LR" if "I_MS_LR" in values else "I_MS" if "I_MS" in values else None
    if ms_key is None:
        raise InvalidContentError(
            f"{path}: neither 'I_MS_LR' nor 'I_MS' is present (keys: {sorted(values)})"
        )
    pan = np.asarray(values["I_PAN"])
    ms = np.asarray(values[ms_key])
    if pan.ndim != 2:
        raise InvalidContentError(f"{path}: 'I_PAN' has shape {pan.shape}, expected (H, W)")
    if ms.ndim == 2:
        ms = ms[:, :, None]
    if ms.ndim != 3:
        raise InvalidContentError(f"{path}: {ms_key!r} has shape {ms.shape}, expected (h, w, B)")
    ratio = _scalar(values, "ratio", path)
    if ms.shape[:2] == pan.shape and ms_key == "I_MS":
        raise InvalidContentError(
            f"{path}: 'I_MS' is already at PAN resolution (upsampled); store the original "
            "low-resolution MS as 'I_MS_LR'"
        )
    if ratio is None:
        ratio_y, ratio_x = pan.shape[0] / ms.shape[0], pan.shape[1] / ms.shape[1]
        if ratio_y != ratio_x or int(ratio_y) != ratio_y:
            raise InvalidContentError(
                f"{path}: PAN {pan.shape} and MS {ms.shape[:2]} give no integer ratio"
            )
        ratio = int(ratio_y)
    if (ms.shape[0] * ratio, ms.shape[1] * ratio) != pan.shape:
        raise InvalidContentError(
            f"{path}: inconsistent shapes: 'I_PAN' {pan.shape} is not ratio {ratio} x "
            f"{ms_key!r} {ms.shape[:2]}"
        )
    if sensor_name is None and "sensor" in values:
        sensor_name = str(np.asarray(values["sensor"]).ravel()[0]).strip() or None
    return RawPair(
        pan=xr.DataArray(pan, dims=("y", "x")),
        ms=xr.DataArray(np.ascontiguousarray(np.moveaxis(ms, -1, 0)), dims=("band", "y", "x")),
        sensor_name=sensor_name,
        scene_id=path.stem,
        georeferenced=False,
        ratio=ratio,
        bit_depth=_scalar(values, "L", path),
        files={"pan": path, "ms": path},
    )
