"""The fast ingestion path: direct GeoTIFF window reads, direct chunk-file writes, deferred hash."""

import pickle

import numpy as np
import pytest
import rasterio
from affine import Affine
from ingest_helpers import geotiff_pair, write_geotiff

from crossdiff_core import ingest as ingest_module
from crossdiff_core.ingest import ingest_source, source_sha256
from crossdiff_core.io.store import open_scene, write_scene_store
from crossdiff_core.io.windows import BandFiles, BandWindows
from crossdiff_core.synthetic import synthetic_scene_arrays

GRID = Affine(1.0, 0.0, 400_000.0, 0.0, -1.0, 4_000_000.0)


def test_band_windows_read_exact_windows_across_files(tmp_path):
    rng = np.random.default_rng(5)
    stack = rng.integers(0, 4000, (3, 40, 36), dtype=np.uint16)
    multi = write_geotiff(tmp_path / "multi.tif", stack[:2], GRID)
    single = write_geotiff(tmp_path / "single.tif", stack[2], GRID)
    files = BandFiles(((multi, 2), (single, 1), (multi, 1)))
    reader = BandWindows(files, origin=(3, 5), shape=(30, 28), dtype=np.uint16)
    expected = stack[[1, 2, 0], 3:33, 5:33]
    assert reader.shape == (3, 30, 28)
    np.testing.assert_array_equal(reader[:, :, :], expected)
    np.testing.assert_array_equal(reader[1:3, 7:19, 20:28], expected[1:3, 7:19, 20:28])
    dask_array = reader.to_dask((3, 16, 16))
    np.testing.assert_array_equal(dask_array.compute(scheduler="threads"), expected)
    # Worker processes get a copy without open handles, which reopens the files.
    copy = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(copy[0:1, 0:4, 0:4], expected[0:1, 0:4, 0:4])
    reader.close()
    copy.close()
    with pytest.raises(IndexError, match="step 1"):
        reader[:, ::2, :]


def test_band_windows_squeezed_pan_and_strip_cache(tmp_path):
    rng = np.random.default_rng(6)
    pan = rng.integers(0, 4000, (48, 64), dtype=np.uint16)
    tiled = write_geotiff(tmp_path / "tiled.tif", pan, GRID)
    striped = tmp_path / "striped.tif"
    with rasterio.open(striped, "w", driver="GTiff", height=48, width=64, count=1,
                       dtype="uint16", crs="EPSG:32616", transform=GRID,
                       blockysize=4) as dataset:
        dataset.write(pan, 1)
    for path in (tiled, striped):
        reader = BandWindows(BandFiles(((path, 1),), squeeze=True), (8, 0), (40, 64), np.uint16)
        np.testing.assert_array_equal(reader.to_dask((16, 16)).compute(), pan[8:])
        reader.close()
    tiled_reader = BandWindows(BandFiles(((tiled, 1),), squeeze=True), (0, 0), (48, 64), "u2")
    striped_reader = BandWindows(BandFiles(((striped, 1),), squeeze=True), (0, 0), (48, 64),
                                 "u2")
    assert tiled_reader.strip_cache_bytes(16) == 0
    assert striped_reader.strip_cache_bytes(16) == 64 * 16 * 2  # one row of 16-row chunks
    with pytest.raises(ValueError, match="exactly one band"):
        BandWindows(BandFiles(((tiled, 1), (tiled, 1)), squeeze=True), (0, 0), (4, 4), "u2")


def test_direct_chunk_files_round_trip_edges_and_empty_chunks(tmp_path):
    pan, ms = synthetic_scene_arrays("QB", (20, 12), seed=4)  # 80 x 48 PAN: edge chunks at 32
    pan = pan.copy(data=pan.values.copy())
    pan.values[:32, :32] = 0  # one PAN chunk holding nothing but the fill value
    attrs = {"sensor": "QuickBird", "ratio": 4, "scene_id": "edges", "bit_depth": 11,
             "scale_max": 2047.0, "nodata": None}
    path = write_scene_store(pan, ms, attrs, tmp_path, chunk_size=32)
    scene = open_scene(path)
    np.testing.assert_array_equal(scene.pan.values, pan.values)
    np.testing.assert_array_equal(scene.ms.values, ms.values)
    assert scene.pan.chunks == ((32, 32, 16), (32, 16))
    assert not (path / "pan" / "pan" / "c" / "0" / "0").exists()
    assert (path / "pan" / "pan" / "c" / "2" / "1").is_file()


def test_hash_deferred_when_no_store_can_match(tmp_path, monkeypatch):
    first_pan, first_ms, _, _ = geotiff_pair(tmp_path / "a", ms_shape=(8, 8), seed=1)
    other_pan, other_ms, pan, ms = geotiff_pair(tmp_path / "b", ms_shape=(12, 8), seed=2)
    out = tmp_path / "zarr"
    first = ingest_source((first_pan, first_ms), out, sensor="QB", chunk_size=16)
    assert open_scene(first.store).attrs["source_bytes"] == sum(
        p.stat().st_size for p in (first_pan, first_ms))
    calls = []

    def counting_sha256(source):
        calls.append(source)
        return source_sha256(source)

    monkeypatch.setattr(ingest_module, "source_sha256", counting_sha256)
    # A source of another size cannot match the first store: hashed once, while writing.
    second = ingest_source((other_pan, other_ms), out / "other", sensor="QB", chunk_size=16)
    assert len(calls) == 1
    scene = open_scene(second.store)
    assert scene.attrs["source_sha256"] == source_sha256((other_pan, other_ms))
    np.testing.assert_array_equal(scene.pan.values, pan)
    np.testing.assert_array_equal(scene.ms.values, ms)
    # The same source again: a store of its size exists, so it is hashed first and skipped.
    calls.clear()
    again = ingest_source((other_pan, other_ms), out / "other", sensor="QB", chunk_size=16)
    assert again.skipped and len(calls) == 1
