"""Every baseline on a whole scene store, chunk by chunk, equals its one-shot in-memory result.

Two whole-scene paths are checked, for a 4-band and an 8-band sensor, on a store written with
small chunks (so that statistics, filters and upsampling all cross chunk borders):

- ``crossdiff pansharpen --model <name>``: the fuser ``load_fuser`` gives for the name, written
  by ``pansharpen_scene`` into a Zarr store (the functions the pansharpen task calls; the CLI and
  its Prefect flow add only argument handling);
- ``fuse_scene``: the lazy whole-scene fusion on the scene's dask arrays.

The methods are taken from ``METHODS`` at import time, so a method added later is covered.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from crossdiff_core.baselines import METHODS
from crossdiff_core.baselines.scene import fuse_scene
from crossdiff_core.infer import load_fuser, pansharpen_scene
from crossdiff_core.io.store import open_scene, scene_attributes, write_scene_store
from crossdiff_core.sensors import get_sensor
from crossdiff_core.synthetic import synthetic_scene_arrays

SENSORS = ("QuickBird", "WorldView-3")  # 4 and 8 bands
MS_SHAPE = (24, 20)  # PAN 96 x 80: 2 x 2 chunks of 48 PAN pixels (12 MS), the last ones narrower
CHUNK = 48
RELATIVE = 1e-3


def _small_chunk_store(folder, sensor_name: str):
    sensor = get_sensor(sensor_name)
    pan, ms = synthetic_scene_arrays(sensor, MS_SHAPE, seed=7)
    attrs = scene_attributes(
        sensor, scene_id=f"chunked-{sensor.name}", scale_max=float(sensor.max_dn), nodata=None,
        crs=pan.rio.crs.to_wkt(), source_name="synthetic", source_sha256="0" * 64,
        alignment={"rule": "none", "reason": "generated on nested grids"})
    return write_scene_store(pan, ms, attrs, folder, chunk_size=CHUNK)


@pytest.fixture(scope="module", params=SENSORS)
def scene(request, tmp_path_factory):
    store = _small_chunk_store(tmp_path_factory.mktemp("scenes"), request.param)
    opened = open_scene(store)
    assert opened.pan.data.chunksize == (CHUNK, CHUNK)
    assert opened.pan.data.numblocks == (2, 2)
    return opened


def _close(found: np.ndarray, expected: np.ndarray, what: str) -> None:
    """|found - expected| <= 1e-3 of the result's magnitude (its largest |value|), everywhere."""
    scale = np.abs(expected).max()
    worst = np.abs(found.astype(np.float64) - expected).max()
    assert worst <= RELATIVE * scale, f"{what}: off by {worst:.3g} DN (scale {scale:.4g} DN)"


@pytest.mark.parametrize("name", list(METHODS))
def test_whole_scene_chunk_by_chunk_equals_one_shot(name, scene, tmp_path):
    expected = METHODS[name](scene.ms.values.astype(np.float64),
                             scene.pan.values.astype(np.float64), scene.ratio, scene.sensor)

    _close(fuse_scene(scene, name).values, expected, "fuse_scene")

    # What `crossdiff pansharpen --model <name> --format zarr` runs; windows far smaller than the
    # scene, so a window-by-window fusion would show.
    out = pansharpen_scene(scene, load_fuser(name, scene, "cpu"), tmp_path / "fused.zarr",
                           fmt="zarr", tile=72, context=16, blend=8, progress=False)
    written = xr.open_zarr(out)["fused"].values
    assert written.dtype == scene.ms.dtype and written.shape == expected.shape
    info = np.iinfo(written.dtype)
    # The output is in the scene's integer DN: compare with the result rounded and clipped alike.
    _close(written, np.clip(np.rint(expected), info.min, info.max), "pansharpen")


def test_pansharpen_computes_a_baseline_strip_by_strip(scene):
    fuser = load_fuser("gsa", scene, "cpu")
    firsts = [first for first, _ in fuser.iter_rows(scene.ms.data, scene.pan.data)]
    assert firsts == [0, CHUNK]  # one strip per chunk row of the store
