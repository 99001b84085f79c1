"""Picture panels (PAN, upsampled MS and the fused images on one crop) and reduced-resolution
error maps.

Every method shown is drawn with one contrast stretch computed once from the upsampled MS (2nd-98th
percentile per displayed band), so differences in the pictures are differences in the images, not
in the display. Error maps of all methods share one colour scale for the same reason. With the
scene's scores, a panel shows CrossDiff, its variants and only the few best classical methods
(``shown_methods``), so it stays readable when fifteen methods were evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from crossdiff_core.report.classical import is_crossdiff, top_classical  # noqa: E402
from crossdiff_core.report.files import save_figure_atomic  # noqa: E402
from crossdiff_core.report.panels_data import methods_of  # noqa: E402
from crossdiff_core.sensors import get_sensor  # noqa: E402

STRETCH_PERCENTILES = (2.0, 98.0)
FALSE_COLOUR = ("nir", "red", "green")
# Classical methods drawn beside CrossDiff and its variants when the scene's scores are known.
PANEL_CLASSICAL = 3


def shown_methods(
    available: Sequence[str],
    by_method: Mapping[str, Mapping[str, float]] | None = None,
    classical: int = PANEL_CLASSICAL,
) -> list[str]:
    """The methods a panel draws: every one of ``available`` when ``by_method`` (the scene's
    scores) is None; else the ``classical`` best classical methods by HQNR and Q2n (EXP excluded:
    it is the upsampled MS tile), best first, then the CrossDiff methods."""
    if by_method is None:
        return list(available)
    scored = {m: s for m, s in by_method.items() if m in available}
    best = top_classical(scored, ("hqnr", "q2n"), classical)
    return best + [m for m in available if is_crossdiff(m)]


def display_bands(sensor: str, band_names: Sequence[str]) -> tuple[tuple[int, ...], str]:
    """Band indices to show as RGB and a label: true colour when the sensor has red, green and blue,
    else a false-colour composite (NIR-red-green when present, otherwise three spread bands)."""
    names = [str(b) for b in band_names]
    try:
        registered = get_sensor(sensor, n_bands=len(names))
        if list(registered.bands) == names:
            return registered.rgb_band_indices(), "true colour (red, green, blue)"
    except ValueError:
        pass  # unregistered or generic sensor: decide from the band names alone
    if all(b in names for b in ("red", "green", "blue")):
        return tuple(
            names.index(b) for b in ("red", "green", "blue")
        ), "true colour (red, green, blue)"
    if all(b in names for b in FALSE_COLOUR):
        return tuple(names.index(b) for b in FALSE_COLOUR), "false colour (NIR, red, green)"
    if len(names) >= 3:
        picks = (len(names) - 1, len(names) // 2, 0)
        return picks, "false colour (" + ", ".join(names[i] for i in picks) + ")"
    return (0, 0, 0), f"grey ({names[0]})"


def stretch_limits(image: np.ndarray, bands: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per displayed band, the 2nd and 98th percentiles of ``image`` (B, y, x), finite only."""
    low, high = [], []
    for band in bands:
        values = image[band][np.isfinite(image[band])]
        if values.size == 0:
            low.append(0.0)
            high.append(1.0)
            continue
        lo, hi = np.percentile(values, STRETCH_PERCENTILES)
        low.append(float(lo))
        high.append(float(hi) if hi > lo else float(lo) + 1.0)
    return np.array(low), np.array(high)


def to_rgb(
    image: np.ndarray, bands: Sequence[int], low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """(B, y, x) -> (y, x, 3) in [0, 1] with the given per-band limits."""
    rgb = np.stack([image[b] for b in bands], axis=-1).astype(np.float64)
    rgb = (rgb - low) / (high - low)
    return np.clip(np.nan_to_num(rgb, nan=0.0), 0.0, 1.0)


def render_scene_panel(
    panels: Mapping[str, np.ndarray],
    path: str | Path,
    title: str = "",
    by_method: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """PAN, upsampled MS and the fusions of ``shown_methods`` on the crop, one stretch, as PNG."""
    band_names = [str(b) for b in panels["band_names"]]
    sensor = str(panels["sensor"])
    methods = shown_methods(methods_of(panels), by_method)
    bands, colour_label = display_bands(sensor, band_names)
    low, high = stretch_limits(panels["ms_up"], bands)

    pan = panels["pan"].astype(np.float64)
    pan_lo, pan_hi = np.percentile(pan[np.isfinite(pan)], STRETCH_PERCENTILES)
    tiles = [
        ("PAN", np.clip((pan - pan_lo) / max(pan_hi - pan_lo, 1e-12), 0, 1), "gray"),
        ("MS upsampled", to_rgb(panels["ms_up"], bands, low, high), None),
    ]
    tiles += [(m, to_rgb(panels[f"fused_{m}"], bands, low, high), None) for m in methods]

    columns = min(4, len(tiles))
    rows = -(-len(tiles) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    for axis, (label, picture, cmap) in zip(axes.flat, tiles, strict=False):
        axis.imshow(picture, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(label, fontsize=9)
    figure.suptitle(
        f"{title} {sensor}, {colour_label}, stretch from the upsampled MS".strip(), fontsize=10
    )
    return save_figure_atomic(figure, path)


def spectral_angle_map(reference: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Per-pixel spectral angle in degrees between (B, y, x) images; NaN at zero norm."""
    reference = reference.astype(np.float64)
    fused = fused.astype(np.float64)
    dot = np.sum(reference * fused, axis=0)
    norms = np.sqrt(np.sum(reference**2, axis=0) * np.sum(fused**2, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, dot / norms, np.nan)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def absolute_error_map(reference: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Per-pixel mean absolute error over bands (DN), (y, x)."""
    return np.mean(np.abs(fused.astype(np.float64) - reference.astype(np.float64)), axis=0)


ERROR_MAPS = {
    "sam": (spectral_angle_map, "spectral angle (degrees)"),
    "abs": (absolute_error_map, "mean absolute error (DN)"),
}


def render_error_maps(
    panels: Mapping[str, np.ndarray],
    path: str | Path,
    kind: str = "sam",
    title: str = "",
    by_method: Mapping[str, Mapping[str, float]] | None = None,
) -> Path | None:
    """Reduced-resolution error map of each of ``shown_methods`` against ``reference_rr`` on one
    colour scale (0 to the 99th percentile over those methods). Returns None when the panels hold
    no reduced products."""
    if kind not in ERROR_MAPS:
        raise ValueError(f"error map kind {kind!r} unknown: use one of {', '.join(ERROR_MAPS)}")
    methods = shown_methods(methods_of(panels, reduced=True), by_method)
    if "reference_rr" not in panels or not methods:
        return None
    compute, label = ERROR_MAPS[kind]
    maps = {m: compute(panels["reference_rr"], panels[f"fused_rr_{m}"]) for m in methods}
    pooled = np.concatenate([m[np.isfinite(m)].ravel() for m in maps.values()])
    vmax = float(np.percentile(pooled, 99)) if pooled.size else 1.0
    vmax = vmax if vmax > 0 else 1.0

    columns = min(4, len(methods))
    rows = -(-len(methods) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.2 * columns + 0.8, 3.4 * rows), squeeze=False
    )
    for axis in axes.flat:
        axis.set_axis_off()
    image = None
    for axis, method in zip(axes.flat, methods, strict=False):
        image = axis.imshow(
            maps[method], cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest"
        )
        finite = maps[method][np.isfinite(maps[method])]
        mean = float(finite.mean()) if finite.size else float("nan")
        axis.set_title(f"{method}\nmean {mean:.3g}", fontsize=9)
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=label)
    figure.suptitle(f"{title} reduced-resolution error, {label}".strip(), fontsize=10)
    return save_figure_atomic(figure, path)
