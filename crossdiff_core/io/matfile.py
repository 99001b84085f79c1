"""GRIP-style MATLAB files: ``I_PAN`` (H, W), ``I_MS_LR`` or ``I_MS`` (h, w, B), ``sensor``,
``ratio`` and ``L`` (bit depth). Version 5 files are read with scipy, version 7.3 (HDF5) with h5py,
whose arrays arrive transposed (MATLAB is column-major). No georeferencing.

Only the variables a scene needs are read (``VARIABLES``), and only once their total size, read
from the file's headers, is known to fit in the memory available: an empty, truncated or too
large file is refused with one line naming it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from crossdiff_core.io.errors import CorruptInputError, InvalidContentError
from crossdiff_core.io.raw import RawPair

# The variables of a GRIP-style file that ingestion uses; any others are never read.
VARIABLES = ("I_PAN", "I_MS_LR", "I_MS", "sensor", "ratio", "L")
_V5_ITEMSIZE = {"double": 8, "single": 4, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
                "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "logical": 1, "char": 4}


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable`` of /proc/meminfo), or None when unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(path: Path, needed: int) -> None:
    """Refuse ``path`` when reading ``needed`` bytes of it (plus the copies ingestion makes: about
    twice as much) would not fit in the memory available now."""
    available = available_memory()
    if available is not None and 2 * needed > available:
        raise InvalidContentError(
            f"{path}: its scene arrays need {needed / 2**30:.1f} GiB in memory (twice that while "
            f"ingesting) but only {available / 2**30:.1f} GiB is available; ingest it on a "
            "machine with more memory, or convert it to a PAN + MS GeoTIFF pair (read window "
            "by window)"
        )


def _load_v5(path: Path) -> dict:
    import scipy.io

    wanted = [(name, shape, kind) for name, shape, kind in scipy.io.whosmat(path)
              if name in VARIABLES]
    needed = sum(int(np.prod(shape)) * _V5_ITEMSIZE.get(kind, 8) for _, shape, kind in wanted)
    check_fits_in_memory(path, needed)
    loaded = scipy.io.loadmat(path, variable_names=[name for name, _, _ in wanted])
    return {k: v for k, v in loaded.items() if not k.startswith("__")}


def _load_v73(path: Path) -> dict:
    import h5py

    values: dict = {}
    with h5py.File(path, "r") as handle:
        items = {key: item for key, item in handle.items()
                 if key in VARIABLES and isinstance(item, h5py.Dataset)}
        check_fits_in_memory(path, sum(item.size * item.dtype.itemsize
                                       for item in items.values()))
        for key, item in items.items():
            array = item[()]
            if item.attrs.get("MATLAB_class", b"") in (b"char", "char"):
                values[key] = np.array(["".join(chr(c) for c in array.ravel())])
            else:
                values[key] = np.asarray(array).T
    return values


def load_mat(path: Path) -> dict:
    """The scene variables (``VARIABLES``) of a v5 or v7.3 .mat file in MATLAB's own axis
    order; an empty, truncated or unreadable file raises CorruptInputError naming it, one too
    large for the memory available InvalidContentError."""
    from scipy.io.matlab import MatReadError

    if path.stat().st_size == 0:
        raise CorruptInputError(f"{path}: empty .mat file (0 bytes); deliver it again")
    with open(path, "rb") as handle:
        header = handle.read(128)
    is_hdf5 = header.startswith(b"MATLAB 7.3") or b"\x89HDF" in header[:8]
    try:
        if is_hdf5 or _looks_like_hdf5(path):
            return _load_v73(path)
        return _load_v5(path)
    except InvalidContentError:
        raise
    except (OSError, ValueError, TypeError, NotImplementedError, KeyError, MatReadError,
            EOFError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise CorruptInputError(f"{path}: corrupt or unreadable .mat file ({reason})") from error


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
