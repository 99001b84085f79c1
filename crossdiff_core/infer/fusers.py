"""The methods whole-scene inference runs: a saved pansharpener on a device (tiled), or a
classical method (on the whole scene, strip by strip)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
from tqdm.auto import tqdm

from crossdiff_core.infer.tiling import WindowFuser, check_scene_fits
from crossdiff_core.scene import Scene


@dataclass
class ModelFuser:
    """A ``Pansharpener`` on a device."""

    model: object  # crossdiff_core.pansharpener.Pansharpener (kept lazy: torch is heavy)
    device: str = "cpu"

    @property
    def ratio(self) -> int:
        return self.model.ratio

    @property
    def n_bands(self) -> int:
        return self.model.n_bands

    @property
    def size_multiple(self) -> int:
        return self.model.size_multiple

    @property
    def context(self) -> int:
        return self.model.context

    @property
    def band_names(self) -> list[str]:
        return self.model.band_names

    def fuse_windows(self, ms, pan, origins):
        return self.model.fuse_windows(ms, pan, origins, self.device)


@dataclass
class BaselineFuser:
    """A classical method ``fuse(ms, pan, ratio, sensor)``.

    Whole scenes go through ``iter_rows`` (as ``pansharpen_scene`` does): the method's global
    statistics over the whole scene, the same values as one in-memory call. ``fuse_windows``
    (the ``WindowFuser`` protocol, e.g. ``fuse_tiled``) fuses each window on its own, with
    statistics of that window: a stand-in for timing, not the method's result on the scene.
    """

    method: Callable
    ratio: int
    n_bands: int
    sensor: object
    context: int = 64

    @property
    def size_multiple(self) -> int:
        return self.ratio

    def fuse_windows(self, ms, pan, origins):
        return np.stack(
            [
                self.method(m.astype(np.float64), p.astype(np.float64), self.ratio, self.sensor)
                for m, p in zip(ms, pan, strict=True)
            ]
        )

    def iter_rows(
        self, ms: da.Array | np.ndarray, pan: da.Array | np.ndarray, progress: bool = False
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first scene row, fused rows (B, n, W) float32) from top to bottom: the method
        on the whole scene, computed strip by strip (``baselines.scene.iter_fused_rows``)."""
        from crossdiff_core.baselines.scene import iter_fused_rows

        check_scene_fits(tuple(pan.shape), tuple(ms.shape), self, "pansharpen")
        with tqdm(total=pan.shape[0], desc="pansharpen", unit="row",
                  disable=not progress or None) as bar:
            for first, rows in iter_fused_rows(self.method, ms, pan, self.ratio, self.sensor):
                yield first, rows.astype(np.float32)
                bar.update(rows.shape[1])


def baseline_fuser(name: str, scene: Scene) -> BaselineFuser:
    """The baseline ``name`` of ``crossdiff_core.baselines.METHODS`` for this scene's sensor."""
    from crossdiff_core.baselines import get_method

    try:
        method = get_method(name)
    except ValueError as error:
        raise ValueError(f"{error} (or give a saved pansharpener folder)") from None
    return BaselineFuser(method, scene.ratio, scene.ms.sizes["band"], scene.sensor)


def load_fuser(model: str | Path, scene: Scene, device: str = "auto") -> WindowFuser:
    """A saved pansharpener folder or a baseline name, checked against ``scene``."""
    from crossdiff_core.device import pick_device
    from crossdiff_core.pansharpener import is_pansharpener_folder, load_pansharpener

    if is_pansharpener_folder(model):
        pansharpener = load_pansharpener(model)
        if pansharpener.ratio != scene.ratio:
            raise ValueError(
                f"model {model} was adapted at ratio {pansharpener.ratio}, the "
                f"scene {scene.scene_id} has ratio {scene.ratio}"
            )
        if pansharpener.band_names != scene.band_names:
            raise ValueError(
                f"model {model} fuses bands {pansharpener.band_names}, the scene "
                f"{scene.scene_id} has {scene.band_names}: adapt a model on it"
            )
        resolved = pick_device(device)
        return ModelFuser(pansharpener.to(resolved), str(resolved))
    if Path(model).exists():
        raise ValueError(f"{model} is not a saved pansharpener folder (no CrossDiff config.json)")
    return baseline_fuser(str(model), scene)
