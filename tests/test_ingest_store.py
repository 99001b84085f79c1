"""Scene stores: layout, encoding, CRS, round trip, discovery and atomic writes."""

import numpy as np
import pytest
import xarray as xr
from zarr.codecs import BloscCodec

from crossdiff_core.io import store as store_module
from crossdiff_core.io.store import find_scene_stores, open_scene, write_scene_store
from crossdiff_core.synthetic import (
    synthetic_pair,
    synthetic_scene_arrays,
    write_synthetic_store,
)


def test_synthetic_pair_is_textured_and_correlated():
    pan, ms = synthetic_pair("QuickBird", (16, 16), seed=3)
    assert pan.shape == (64, 64) and ms.shape == (4, 16, 16)
    assert pan.dtype == ms.dtype == np.uint16
    assert 0 < pan.min() and pan.max() <= 2047
    pan_low = pan.reshape(16, 4, 16, 4).mean(axis=(1, 3))
    assert np.corrcoef(pan_low.ravel(), ms.mean(axis=0).ravel())[0, 1] > 0.9
    # PAN holds detail inside each MS pixel (not a blocky upsampling).
    assert pan.astype(float).reshape(16, 4, 16, 4).std(axis=(1, 3)).mean() > 5
    again, _ = synthetic_pair("QuickBird", (16, 16), seed=3)
    other, _ = synthetic_pair("QuickBird", (16, 16), seed=4)
    assert np.array_equal(pan, again) and not np.array_equal(pan, other)


def test_store_layout_encoding_and_crs(tmp_path):
    path = write_synthetic_store(tmp_path, "WV3", (16, 24), seed=1)
    assert path == tmp_path / "WorldView-3" / "synthetic-16x24-seed1.zarr"
    pan_ds = xr.open_zarr(path, group="pan", decode_coords="all")
    assert pan_ds.pan.rio.crs.to_epsg() == 32616
    ms = xr.open_zarr(path, group="ms", decode_coords="all").ms
    assert ms.dims == ("band", "y", "x") and ms.sizes["band"] == 8
    assert [str(b) for b in ms.band.values][:2] == ["coastal", "blue"]
    codec = pan_ds.pan.encoding["compressors"][0]
    assert isinstance(codec, BloscCodec) and codec.cname.value == "zstd"
    assert codec.shuffle.value == "bitshuffle"
    pan_t, ms_t = pan_ds.pan.rio.transform(), ms.rio.transform()
    assert ms_t.a == pytest.approx(4 * pan_t.a) and (ms_t.c, ms_t.f) == (pan_t.c, pan_t.f)


def test_open_scene_round_trip(tmp_path):
    pan, ms = synthetic_scene_arrays("QB", (16, 16), seed=2)
    attrs = {"sensor": "QuickBird", "ratio": 4, "scene_id": "s", "bit_depth": 11,
             "scale_max": 2047.0, "nodata": None}
    path = write_scene_store(pan, ms, attrs, tmp_path, chunk_size=32)
    scene = open_scene(path)
    assert scene.pan.chunks == ((32, 32), (32, 32)) and scene.ms.chunks[1] == (8, 8)
    assert scene.pan.dtype == np.uint16 and scene.ms.dtype == np.uint16
    np.testing.assert_array_equal(scene.pan[5:40, 7:33].values, pan.values[5:40, 7:33])
    np.testing.assert_array_equal(scene.ms.values, ms.values)
    assert scene.sensor.name == "QuickBird" and scene.scale_max == 2047.0
    assert scene.band_names == ["blue", "green", "red", "nir"]
    with pytest.raises(FileExistsError, match="already exists"):
        write_scene_store(pan, ms, attrs, tmp_path, chunk_size=32)


def test_write_refuses_non_nested(tmp_path):
    pan, ms = synthetic_scene_arrays("QB", (8, 8), georeferenced=False)
    attrs = {"sensor": "QuickBird", "ratio": 4, "scene_id": "s", "bit_depth": 11,
             "scale_max": 2047.0}
    with pytest.raises(ValueError, match="does not nest"):
        write_scene_store(pan[:-1], ms, attrs, tmp_path, chunk_size=16)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    pan, ms = synthetic_scene_arrays("QB", (16, 16))
    attrs = {"sensor": "QuickBird", "ratio": 4, "scene_id": "s", "bit_depth": 11,
             "scale_max": 2047.0}

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated after the arrays were written)")

    monkeypatch.setattr(store_module.zarr, "consolidate_metadata", crash)
    with pytest.raises(OSError, match="disk full"):
        write_scene_store(pan, ms, attrs, tmp_path, chunk_size=32)
    assert list((tmp_path / "QuickBird").iterdir()) == []


def test_find_scene_stores(tmp_path):
    a = write_synthetic_store(tmp_path, "QB", (8, 8), seed=0)
    b = write_synthetic_store(tmp_path, "IKONOS", (8, 8), seed=1)
    (tmp_path / "QuickBird" / ".hidden.zarr.partial-1234").mkdir()
    assert find_scene_stores(tmp_path) == sorted([b, a])
    assert find_scene_stores([a, tmp_path / "QuickBird"]) == [a]
    with pytest.raises(FileNotFoundError):
        find_scene_stores(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no scene stores"):
        find_scene_stores(tmp_path / "empty")
