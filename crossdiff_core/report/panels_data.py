"""The arrays behind a scene's picture panels, as stored by evaluate (``panels/<id>.npz``).

Keys: ``pan`` (h, w), ``ms_up`` (B, h, w), ``fused_<method>`` (B, h, w) for each method, all on the
same
centred full-resolution crop; ``reference_rr`` (B, hr, wr) and ``fused_rr_<method>`` (B, hr, wr) on
the
same centred crop of the reduced-resolution (Wald) products, for error maps; ``band_names`` (B,)
str and
``sensor`` (0-d str). Arrays are float32 to keep the files small.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from crossdiff_core.atomic import atomic_write

_METHOD_NAME = re.compile(r"^[a-z0-9_]+$")


def centred_window(shape: tuple[int, int], size: int) -> tuple[slice, slice]:
    """Slices of the centred ``size`` x ``size`` window of a (y, x) grid (smaller: kept whole)."""
    if size < 1:
        raise ValueError(f"crop must be a positive pixel count, got {size}")
    rows, cols = min(size, shape[0]), min(size, shape[1])
    top, left = (shape[0] - rows) // 2, (shape[1] - cols) // 2
    return slice(top, top + rows), slice(left, left + cols)


def _check_method(name: str, argument: str) -> None:
    if not _METHOD_NAME.match(name):
        raise ValueError(
            f"{argument}: method name {name!r} must be lower-case letters, digits and '_' "
            "(it becomes an npz key)"
        )


def _as_cube(array: np.ndarray, argument: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"{argument} must be (band, y, x), got shape {array.shape}")
    return array


def panel_arrays(
    pan: np.ndarray,
    ms_up: np.ndarray,
    fused_by_method: Mapping[str, np.ndarray],
    reference_rr: np.ndarray,
    fused_rr_by_method: Mapping[str, np.ndarray],
    band_names: Sequence[str],
    sensor: str,
    crop: int = 256,
) -> dict[str, np.ndarray]:
    """Crop the full- and reduced-resolution products of one scene into the panel npz dictionary.

    ``pan`` (H, W); ``ms_up`` (B, H, W) the upsampled MS; ``fused_by_method[m]`` (B, H, W);
    ``reference_rr`` (B, h, w) the original MS used as reference at reduced resolution;
    ``fused_rr_by_method[m]`` (B, h, w) each method's fusion of the Wald-degraded pair. Every
    full-resolution
    array is cut to the same centred ``crop`` x ``crop`` window, every reduced-resolution array to
    the
    centred ``crop`` x ``crop`` window of its own grid. Returns the dict described in the module
    docstring.
    """
    pan = np.asarray(pan)
    if pan.ndim != 2:
        raise ValueError(f"pan must be (y, x), got shape {pan.shape}")
    ms_up = _as_cube(ms_up, "ms_up")
    bands = ms_up.shape[0]
    if ms_up.shape[1:] != pan.shape:
        raise ValueError(f"ms_up grid {ms_up.shape[1:]} differs from the pan grid {pan.shape}")
    if len(band_names) != bands:
        raise ValueError(f"band_names has {len(band_names)} names for {bands} bands of ms_up")
    if not fused_by_method:
        raise ValueError("fused_by_method is empty: give at least one method's fused image")
    reference_rr = _as_cube(reference_rr, "reference_rr")
    if reference_rr.shape[0] != bands:
        raise ValueError(f"reference_rr has {reference_rr.shape[0]} bands, ms_up has {bands}")

    full = centred_window(pan.shape, crop)
    reduced = centred_window(reference_rr.shape[1:], crop)
    panels: dict[str, np.ndarray] = {
        "pan": pan[full].astype(np.float32),
        "ms_up": ms_up[(slice(None), *full)].astype(np.float32),
        "reference_rr": reference_rr[(slice(None), *reduced)].astype(np.float32),
        "band_names": np.array([str(b) for b in band_names]),
        "sensor": np.array(str(sensor)),
    }
    for method, fused in fused_by_method.items():
        _check_method(method, "fused_by_method")
        fused = _as_cube(fused, f"fused_by_method[{method!r}]")
        if fused.shape != ms_up.shape:
            raise ValueError(
                f"fused_by_method[{method!r}] has shape {fused.shape}, "
                f"expected {ms_up.shape} like ms_up"
            )
        panels[f"fused_{method}"] = fused[(slice(None), *full)].astype(np.float32)
    for method, fused in fused_rr_by_method.items():
        _check_method(method, "fused_rr_by_method")
        fused = _as_cube(fused, f"fused_rr_by_method[{method!r}]")
        if fused.shape != reference_rr.shape:
            raise ValueError(
                f"fused_rr_by_method[{method!r}] has shape {fused.shape}, "
                f"expected {reference_rr.shape} like reference_rr"
            )
        panels[f"fused_rr_{method}"] = fused[(slice(None), *reduced)].astype(np.float32)
    return panels


def save_panel_arrays(panels: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Write a panel dict as a compressed npz atomically (``path`` should end in ``.npz``)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **panels)

    return atomic_write(path, write)


def load_panel_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read a panel npz back into a dict (string entries stay numpy str arrays)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"panel file {path} not found: run the evaluate stage first")
    with np.load(path, allow_pickle=False) as data:
        panels = {key: data[key] for key in data.files}
    for key in ("pan", "ms_up", "band_names", "sensor"):
        if key not in panels:
            raise ValueError(f"panel file {path} lacks {key!r}: rewrite it with panel_arrays()")
    return panels


def methods_of(panels: Mapping[str, np.ndarray], reduced: bool = False) -> list[str]:
    """Method names present in a panel dict (``fused_*``, or reduced ``fused_rr_*``)."""
    prefix = "fused_rr_" if reduced else "fused_"
    return [
        key[len(prefix) :]
        for key in panels
        if key.startswith(prefix) and (reduced or not key.startswith("fused_rr_"))
    ]
