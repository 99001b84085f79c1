"""Scoring a pansharpening method at reduced resolution (Wald protocol) and at full resolution.

``fuse(ms, pan) -> fused`` is any callable: a baseline with its ratio and sensor bound, or a model.
Reduced resolution: ``fuse`` sees only the Wald-degraded pair; the original MS is the reference.
Full resolution: ``fuse`` sees the original pair; no reference, QNR-type and consistency indices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from crossdiff_core import metrics
from crossdiff_core.baselines import METHODS as BASELINES
from crossdiff_core.degrade import interp23tap, wald_degrade
from crossdiff_core.scene import Scene
from crossdiff_core.sensors import Sensor

REDUCED_INDICES = ("q2n", "q", "sam", "ergas", "scc")
FULL_INDICES = ("hqnr", "qnr", "d_lambda", "d_lambda_k", "d_s", "d_rho",
                "r_q2n", "r_q", "r_sam", "r_ergas")
# The toolbox's default border cut at reduced resolution (pixels dropped on each side).
TOOLBOX_BORDER_CUT = 21
# In a method list: every classical baseline registered when the list is read.
ALL_CLASSICAL = "all_classical"

Fuse = Callable[[np.ndarray, np.ndarray], np.ndarray]


def expand_methods(names: Sequence[str]) -> list[str]:
    """Method names with the keyword ``all_classical`` replaced by every baseline of
    ``crossdiff_core.baselines.METHODS`` (those added later included); duplicates dropped, first
    position kept."""
    expanded: list[str] = []
    for name in names:
        expanded += list(BASELINES) if name == ALL_CLASSICAL else [name]
    return list(dict.fromkeys(expanded))


def cut_borders(image: np.ndarray, border_cut: int) -> np.ndarray:
    """The toolbox's ``I(cut:end-cut, cut:end-cut, :)`` (1-based): drops cut - 1 rows/columns at the
    top/left and cut at the bottom/right. image (..., y, x); 0 keeps the image whole."""
    if border_cut == 0:
        return image
    if isinstance(border_cut, bool) or int(border_cut) != border_cut or border_cut < 0:
        raise ValueError(f"border_cut must be a non-negative integer, got {border_cut!r}")
    if min(image.shape[-2:]) <= 2 * border_cut:
        raise ValueError(f"image {image.shape[-2:]} is too small for a {border_cut}-pixel border "
                         "cut: use border_cut=0 or a larger crop")
    return image[..., border_cut - 1:-border_cut, border_cut - 1:-border_cut]


def score_reduced(reference_ms: np.ndarray, fused: np.ndarray, ratio: int, *,
                  block_size: int = 32, border_cut: int = 0) -> dict[str, float]:
    """Reduced-resolution indices of ``fused`` against the reference (both (B, h, w), DN).

    ``border_cut=21`` reproduces the toolbox's default protocol. Returns q2n, q, sam, ergas, scc.
    """
    reference = cut_borders(np.asarray(reference_ms, dtype=np.float64), border_cut)
    fused = cut_borders(np.asarray(fused, dtype=np.float64), border_cut)
    return {
        "q2n": metrics.q2n(reference, fused, block_size, block_size),
        "q": metrics.q_index(reference, fused, block_size),
        "sam": metrics.sam(reference, fused),
        "ergas": metrics.ergas(reference, fused, ratio),
        "scc": metrics.scc(reference, fused),
    }


def score_full(fused: np.ndarray, ms: np.ndarray, pan: np.ndarray, ratio: int,
               sensor: str | Sensor, *, block_size: int = 32) -> dict[str, float]:
    """Full-resolution indices: fused (B, H, W), ms (B, H / ratio, W / ratio), pan (H, W).

    Returns hqnr, qnr, d_lambda, d_lambda_k, d_s, d_rho, r_q2n, r_q, r_sam, r_ergas.
    """
    hybrid = metrics.hqnr(fused, ms, pan, ratio, sensor, block_size=block_size)
    classic = metrics.qnr(fused, ms, pan, ratio, block_size=block_size)
    scores = {
        "hqnr": hybrid["hqnr"],
        "qnr": classic["qnr"],
        "d_lambda": classic["d_lambda"],
        "d_lambda_k": hybrid["d_lambda_k"],
        "d_s": hybrid["d_s"],
        "d_rho": metrics.d_rho(fused, pan, ratio),
    }
    scores.update(metrics.full_resolution_consistency(fused, ms, pan, ratio, sensor,
                                                      block_size=block_size))
    return scores


def _run(fuse: Fuse, ms: np.ndarray, pan: np.ndarray, stage: str) -> np.ndarray:
    fused = np.asarray(fuse(ms, pan), dtype=np.float64)
    expected = (ms.shape[0], *pan.shape)
    if fused.shape != expected:
        raise ValueError(f"the method returned shape {fused.shape} at {stage} resolution, "
                         f"expected {expected} (bands of ms, grid of pan)")
    if not np.isfinite(fused).all():
        raise ValueError(f"the method returned NaN or inf at {stage} resolution")
    return fused


def evaluate_method(fuse: Fuse, ms: np.ndarray, pan: np.ndarray, ratio: int,
                    sensor: str | Sensor, *, block_size: int = 32, border_cut: int = 0,
                    keep_fused: bool = False, fuse_reduced: Fuse | None = None) -> dict:
    """Score ``fuse`` on one scene at both resolutions.

    ms (B, h, w) and pan (ratio h, ratio w) in DN. Reduced resolution runs ``fuse`` (or
    ``fuse_reduced`` when given: a model adapted on the degraded pair only) on
    ``wald_degrade(ms, pan)`` and compares with ``ms``; full resolution runs ``fuse`` on (ms, pan).
    Returns ``{"reduced": {...}, "full": {...}}`` and, with ``keep_fused``, also
    ``"fused_reduced"`` (B, h, w) and ``"fused_full"`` (B, H, W).
    """
    ms = np.asarray(ms, dtype=np.float64)
    pan = np.asarray(pan, dtype=np.float64)
    ms_lr, pan_lr = wald_degrade(ms, pan, ratio, sensor)
    fused_reduced = _run(fuse_reduced or fuse, ms_lr, pan_lr, "reduced")
    fused_full = _run(fuse, ms, pan, "full")
    result = {
        "reduced": score_reduced(ms, fused_reduced, ratio, block_size=block_size,
                                 border_cut=border_cut),
        "full": score_full(fused_full, ms, pan, ratio, sensor, block_size=block_size),
    }
    if keep_fused:
        result["fused_reduced"] = fused_reduced
        result["fused_full"] = fused_full
    return result


# --- whole scenes --------------------------------------------------------------------------------

Method = Callable[[np.ndarray, np.ndarray, int, str], np.ndarray]


@dataclass(frozen=True)
class PerResolution:
    """A method with one fuser per resolution, e.g. a self-supervised model whose reduced-resolution
    copy was pretrained and adapted on the Wald-degraded pair only (it never sees the reference)."""

    full: Method
    reduced: Method


@dataclass
class SceneEvaluation:
    """Scores of every method on one scene, and the arrays the report draws.

    ``scores[method]`` maps index name -> value (reduced and full indices together);
    ``fused_full[method]`` (B, H, W) and ``fused_reduced[method]`` (B, h, w); ``pan`` (H, W),
    ``ms`` (B, h, w) the evaluated crop, ``ms_up`` (B, H, W) its interp23tap expansion.
    """

    scene_id: str
    sensor: str
    ratio: int
    band_names: list[str]
    scores: dict[str, dict[str, float]]
    pan: np.ndarray
    ms: np.ndarray
    ms_up: np.ndarray
    fused_full: dict[str, np.ndarray] = field(default_factory=dict)
    fused_reduced: dict[str, np.ndarray] = field(default_factory=dict)


def centred_crop(ms_shape: tuple[int, int], ratio: int, max_pan_size: int,
                 multiple: int = 32) -> tuple[slice, slice]:
    """Centred MS-grid window of a scene: at most max_pan_size / ratio MS pixels per side, each
    side a multiple of ``multiple`` (the quality-index block) so every index applies unchanged.

    Returns the MS (row, col) slices; the PAN window is the same one scaled by ratio.
    """
    limit = max_pan_size // ratio
    sizes = [min(n, limit) // multiple * multiple for n in ms_shape]
    if min(sizes) < multiple:
        raise ValueError(f"MS grid {ms_shape} (ratio {ratio}, max_pan_size {max_pan_size}) leaves "
                         f"no {multiple} x {multiple} MS window to evaluate: raise max_pan_size or "
                         "use a larger scene")
    starts = [(n - s) // 2 for n, s in zip(ms_shape, sizes, strict=True)]
    return slice(starts[0], starts[0] + sizes[0]), slice(starts[1], starts[1] + sizes[1])


def evaluate_scene(scene: Scene, methods: Mapping[str, Method | PerResolution], *,
                   max_pan_size: int = 1024,
                   block_size: int = 32, border_cut: int = 0) -> SceneEvaluation:
    """Score each ``methods[name](ms, pan, ratio, sensor)`` on a centred crop of ``scene``.

    A :class:`PerResolution` method uses its ``reduced`` fuser on the Wald pair, ``full`` otherwise.

    Only the crop is read from the store. Returns a :class:`SceneEvaluation`.
    """
    if not methods:
        raise ValueError("no methods to evaluate: give at least one")
    ratio, sensor = scene.ratio, scene.sensor
    rows, cols = centred_crop((scene.ms.sizes["y"], scene.ms.sizes["x"]), ratio, max_pan_size,
                              block_size)
    ms = np.asarray(scene.ms.isel(y=rows, x=cols).values, dtype=np.float64)
    pan_rows = slice(rows.start * ratio, rows.stop * ratio)
    pan_cols = slice(cols.start * ratio, cols.stop * ratio)
    pan = np.asarray(scene.pan.isel(y=pan_rows, x=pan_cols).values, dtype=np.float64)
    nodata = scene.attrs.get("nodata")
    if nodata is not None and ((ms == nodata).all(axis=0).any() or (pan == nodata).any()):
        # Fill pixels would enter every index as real (black) data and distort the scores.
        raise ValueError(f"scene {scene.scene_id}: the centred evaluation crop holds nodata "
                         f"({nodata}) pixels; lower max_pan_size to evaluate a smaller crop")
    result = SceneEvaluation(scene_id=scene.scene_id, sensor=sensor.name, ratio=ratio,
                             band_names=scene.band_names, scores={}, pan=pan, ms=ms,
                             ms_up=interp23tap(ms, ratio))
    for name, method in methods.items():
        per_resolution = method if isinstance(method, PerResolution) else None
        full_method = per_resolution.full if per_resolution else method

        def fuse(ms_in: np.ndarray, pan_in: np.ndarray, method: Method = full_method) -> np.ndarray:
            return method(ms_in, pan_in, ratio, sensor.name)

        fuse_reduced = None
        if per_resolution is not None:
            def fuse_reduced(ms_in: np.ndarray, pan_in: np.ndarray,
                             method: Method = per_resolution.reduced) -> np.ndarray:
                return method(ms_in, pan_in, ratio, sensor.name)

        scored = evaluate_method(fuse, ms, pan, ratio, sensor, block_size=block_size,
                                 border_cut=border_cut, keep_fused=True,
                                 fuse_reduced=fuse_reduced)
        result.scores[name] = {**scored["reduced"], **scored["full"]}
        result.fused_full[name] = scored["fused_full"]
        result.fused_reduced[name] = scored["fused_reduced"]
    return result
