"""The cross-sensor experiment's scenes and scores: one evaluation crop per scene and its Wald pair
(written by ``crossdiff_core.evaluation_crops``, which the evaluation's reduced stage uses too).

Every scene is cut once to a centred crop whose MS side is a multiple of the 32-pixel quality
block (so HQNR and Q2n need no padding) and written as a full-resolution store; its Wald-degraded
copy (MS MTF-filtered and decimated, PAN bicubic-resized) is written as a second store. The
reduced-resolution pipeline pretrains, adapts and fuses on degraded stores only, so the original
MS, which is the reference for Q2n, is never seen by the method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crossdiff_core.evaluation_crops import (  # noqa: F401 (the experiment's scene preparation)
    QUALITY_BLOCK,
    PreparedScene,
    evaluation_window,
    prepare_scene,
)
from crossdiff_core.io.store import open_scene, read_store_attrs


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
