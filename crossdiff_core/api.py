"""The four calls most users need, from Python: open a scene, load a model, pansharpen, evaluate.

These are the functions the pipeline and the ``crossdiff`` command use, behind one import::

    import crossdiff_core as cd

    scene = cd.open_scene("data/zarr/Landsat-8/LC80200392015216LGN00.zarr")
    fused = cd.pansharpen(scene, "mtf_glp_hpm")        # xarray.DataArray (band, y, x), PAN grid
    scores = cd.evaluate(scene, ["mtf_glp_hpm", "gsa"])  # {method: {index: value}}

A model is a saved pansharpener folder (what ``crossdiff adapt`` writes, e.g.
``data/models/head``) or a classical method's name (``crossdiff_core.baselines.METHODS``).
Registry addresses (``models:/...``) belong to MLflow: load those with
``mlflow.pyfunc.load_model`` (see the README), or download the folder first.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from crossdiff_core.config import EvaluateParams, PansharpenParams
from crossdiff_core.io.store import open_scene as _open_scene
from crossdiff_core.scene import Scene

if TYPE_CHECKING:
    from crossdiff_core.pansharpener import Pansharpener

REGISTRY_PREFIX = "models:/"


def open_scene(path: str | Path) -> Scene:
    """Open an ingested scene store (``crossdiff ingest`` writes them) without reading pixels.

    Returns a :class:`~crossdiff_core.scene.Scene`: ``scene.pan`` (y, x) and ``scene.ms``
    (band, y, x) are lazy, georeferenced ``xarray.DataArray``\\ s (``.rio.crs``,
    ``.rio.transform()``), ``scene.attrs`` the store's attributes (sensor, ratio, scene_id...).
    The store's manifest is checked first: a damaged or incomplete store is refused with the
    command that repairs it.
    """
    return _open_scene(path)


def _check_not_registry(model: object) -> None:
    if str(model).startswith(REGISTRY_PREFIX):
        raise ValueError(
            f"{model} is an MLflow registry address: load it with "
            f'mlflow.pyfunc.load_model("{model}"), or fuse a file with '
            f"`crossdiff pansharpen --model {model} PAN MS OUT`; crossdiff_core takes a saved "
            "pansharpener folder or a classical method's name"
        )


def load_model(folder: str | Path, device: str = "cpu") -> Pansharpener:
    """Load a saved pansharpener folder (frozen encoders + fusion head + its settings).

    The result is a ``torch.nn.Module`` with ``fuse(ms, pan)``: ms (B, h, w) and pan
    (h * ratio, w * ratio) numpy arrays in DN -> fused (B, H, W) float32 in DN, and
    ``band_names``, ``ratio``, ``config``. ``device``: ``cpu``, ``cuda`` or ``auto``.
    """
    from crossdiff_core.device import pick_device
    from crossdiff_core.pansharpener import is_pansharpener_folder, load_pansharpener

    _check_not_registry(folder)
    if not is_pansharpener_folder(folder):
        raise FileNotFoundError(
            f"{folder} is not a saved pansharpener folder (it needs CrossDiff's config.json): "
            "give the folder `crossdiff adapt` wrote (default data/models/head)"
        )
    return load_pansharpener(folder).to(pick_device(device)).eval()


def pansharpen(
    scene: Scene | str | Path,
    model: str | Path = PansharpenParams.model,
    out: str | Path | None = None,
    *,
    tile: int = PansharpenParams.tile,
    blend: int = PansharpenParams.blend,
    batch_size: int = PansharpenParams.batch_size,
    device: str = PansharpenParams.device,
    overwrite: bool = False,
    progress: bool = False,
) -> xr.DataArray | Path:
    """Pansharpen a whole scene with a saved pansharpener folder or a classical method's name.

    ``scene``: a :class:`Scene` or the path of a scene store. Without ``out``, returns the fused
    image as an in-memory ``xarray.DataArray`` (band, y, x) on the PAN grid, in the MS's DN dtype,
    with the scene's CRS and transform (mind the memory: B x H x W values). With ``out``, writes
    a Cloud-Optimized GeoTIFF (``.tif``) or a Zarr store (``.zarr``), window by window in
    bounded memory, and returns its path; ``crossdiff pansharpen`` writes the same file.
    """
    from crossdiff_core.infer import load_fuser, pansharpen_scene
    from crossdiff_core.infer.writers import output_format

    _check_not_registry(model)
    opened = scene if isinstance(scene, Scene) else _open_scene(scene)
    fuser = load_fuser(model, opened, device)
    tiling = {"tile": tile, "blend": blend, "batch_size": batch_size, "progress": progress}
    if out is not None:
        fmt = output_format(out)
        return pansharpen_scene(opened, fuser, out, fmt=fmt, overwrite=overwrite, **tiling)
    with tempfile.TemporaryDirectory(prefix="crossdiff-fused-") as scratch:
        written = pansharpen_scene(opened, fuser, Path(scratch) / "fused.zarr", fmt="zarr",
                                   **tiling)
        with xr.open_zarr(written, decode_coords="all", mask_and_scale=False) as dataset:
            return dataset["fused"].load()


MethodLike = str | Path | Callable[[np.ndarray, np.ndarray], np.ndarray]


def _as_method(name: str, method: MethodLike):
    """``method`` as an evaluation method ``(ms, pan, ratio, sensor) -> fused``."""
    from crossdiff_core.baselines import get_method
    from crossdiff_core.pansharpener import Pansharpener, is_pansharpener_folder

    if isinstance(method, Pansharpener):
        model = method
    elif isinstance(method, str | Path) and is_pansharpener_folder(method):
        model = load_model(method)
    elif isinstance(method, str):
        _check_not_registry(method)
        return get_method(method)
    elif callable(method):
        return lambda ms, pan, ratio, sensor: method(ms, pan)
    else:
        raise TypeError(f"method {name!r}: give a classical method's name, a pansharpener "
                        "folder or model, or a function fuse(ms, pan); got "
                        f"{type(method).__name__}")
    return lambda ms, pan, ratio, sensor: model.fuse(ms, pan)


def evaluate(
    scene: Scene | str | Path,
    methods: Iterable[MethodLike] | Mapping[str, MethodLike] = ("mtf_glp_hpm",),
    *,
    max_pan_size: int = EvaluateParams.max_pan_size,
    block_size: int = EvaluateParams.block_size,
    border_cut: int = EvaluateParams.border_cut,
) -> dict[str, dict[str, float]]:
    """Score methods on a scene as ``crossdiff evaluate`` does: a centred crop (at most
    ``max_pan_size`` PAN pixels a side), at reduced resolution (Wald protocol: Q2n, Q, SAM,
    ERGAS, SCC against the original MS, ``border_cut`` pixels off each side) and at full
    resolution (HQNR, QNR, D_lambda, D_s...).

    ``methods``: classical method names, pansharpener folders or loaded models, or functions
    ``fuse(ms, pan) -> fused`` (DN arrays); a mapping names them. Returns
    ``{method: {index: value}}``.
    """
    from crossdiff_core.evaluation import evaluate_scene

    named = dict(methods) if isinstance(methods, Mapping) else {
        (m if isinstance(m, str) else str(getattr(m, "__name__", m))): m for m in methods}
    opened = scene if isinstance(scene, Scene) else _open_scene(scene)
    result = evaluate_scene(opened, {name: _as_method(name, m) for name, m in named.items()},
                            max_pan_size=max_pan_size, block_size=block_size,
                            border_cut=border_cut)
    return {name: {index: float(value) for index, value in scores.items()}
            for name, scores in result.scores.items()}
