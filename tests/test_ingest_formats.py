"""Every input format, generated tiny and real, through ingest_source into a nested scene store."""

import numpy as np
import pytest
from ingest_helpers import (
    geotiff_pair,
    grip_mat,
    landsat_bundle,
    pancollection_h5,
    tar_folder,
    zip_folder,
)

from crossdiff_core.ingest import ingest_source
from crossdiff_core.io.store import open_scene


def assert_nested(scene):
    ratio = scene.ratio
    assert scene.pan.shape == (ratio * scene.ms.sizes["y"], ratio * scene.ms.sizes["x"])
    if scene.attrs["georeferenced"]:
        pan_t, ms_t = scene.pan.rio.transform(), scene.ms.rio.transform()
        assert (pan_t.c, pan_t.f) == pytest.approx((ms_t.c, ms_t.f))
        assert (pan_t.a * ratio, pan_t.e * ratio) == pytest.approx((ms_t.a, ms_t.e))
        assert scene.pan.rio.crs == scene.ms.rio.crs
    else:
        assert scene.pan.rio.crs is None and scene.attrs["crs"] is None


@pytest.mark.parametrize("naming, packing", [("pre", "tar.gz"), ("c2", "folder"),
                                             ("c2", "tar")])
def test_landsat_bundle(tmp_path, naming, packing):
    folder, pan, ms = landsat_bundle(tmp_path / "bundle", naming=naming,
                                     spacecraft="LANDSAT_9" if naming == "c2" else "LANDSAT_8")
    source = folder if packing == "folder" else tar_folder(folder, tmp_path / f"b.{packing}")
    result = ingest_source(source, tmp_path / "zarr", chunk_size=16)
    scene = open_scene(result.store)
    assert scene.attrs["sensor"] == ("Landsat-9" if naming == "c2" else "Landsat-8")
    assert_nested(scene)
    np.testing.assert_array_equal(scene.pan.values, pan)  # extra PAN row dropped
    np.testing.assert_array_equal(scene.ms.values, ms)
    assert scene.pan.rio.transform().c == 452475.0  # moved half a PAN pixel onto the MS origin
    alignment = scene.attrs["alignment"]
    assert alignment["rule"] == "half_pixel_shift" and alignment["pan_shift_m"] == [7.5, -7.5]
    assert alignment["pan_dropped"]["bottom"] == 1
    assert scene.attrs["nodata"] == 0.0 and scene.attrs["acquisition_time"].startswith("2015")


@pytest.mark.parametrize("packing", ["folder", "zip", "paths"])
def test_geotiff_pair(tmp_path, packing):
    pan_path, ms_path, pan, ms = geotiff_pair(tmp_path / "delivery")
    source = {"folder": tmp_path / "delivery",
              "zip": zip_folder(tmp_path / "delivery", tmp_path / "delivery.zip"),
              "paths": (pan_path, ms_path)}[packing]
    result = ingest_source(source, tmp_path / "zarr", sensor="QB", chunk_size=16)
    scene = open_scene(result.store)
    assert_nested(scene)
    np.testing.assert_array_equal(scene.pan.values, pan)
    np.testing.assert_array_equal(scene.ms.values, ms)
    assert scene.attrs["alignment"]["pan_dropped"] == {"top": 1, "left": 2, "bottom": 3,
                                                       "right": 4}
    assert result.scene_id in ("delivery", "scene")


def test_pancollection_h5(tmp_path):
    path, pan, ms = pancollection_h5(tmp_path / "test_wv3_multiExm.h5")
    result = ingest_source(path, tmp_path / "zarr", chunk_size=16)
    assert len(result.stores) == 2 and result.sensor == "WorldView-3"
    for index, store in enumerate(sorted(result.stores)):
        scene = open_scene(store)
        assert_nested(scene)
        assert scene.pan.dtype == np.float64
        np.testing.assert_array_equal(scene.pan.values, pan[index, 0])
        np.testing.assert_array_equal(scene.ms.values, ms[index])
        assert scene.attrs["scale_max"] == max(pan[index].max(), ms[index].max())
        assert scene.attrs["has_reference"] is True


@pytest.mark.parametrize("version, ms_key", [("5", "I_MS"), ("7.3", "I_MS_LR")])
def test_grip_mat(tmp_path, version, ms_key):
    path, pan, ms = grip_mat(tmp_path / "img.mat", version, ms_key)
    scene = open_scene(ingest_source(path, tmp_path / "zarr", chunk_size=16).store)
    assert scene.attrs["sensor"] == "IKONOS" and scene.attrs["bit_depth"] == 11
    assert_nested(scene)
    np.testing.assert_array_equal(scene.pan.values, pan)
    np.testing.assert_array_equal(scene.ms.values, ms)


def test_idempotent_and_force(tmp_path):
    path, _, _ = grip_mat(tmp_path / "img.mat")
    first = ingest_source(path, tmp_path / "zarr", chunk_size=16)
    marker = first.store / "zarr.json"
    written_at = marker.stat().st_mtime_ns
    second = ingest_source(path, tmp_path / "zarr", chunk_size=16)
    assert second.skipped and second.store == first.store
    assert marker.stat().st_mtime_ns == written_at
    third = ingest_source(path, tmp_path / "zarr", chunk_size=16, force=True)
    assert not third.skipped and third.store == first.store


def test_real_landsat_archive(tmp_path):
    from conftest import PROJECT_ROOT

    archive = PROJECT_ROOT / "data" / "raw" / "LC80200392015216LGN00.tar.gz"
    scene = open_scene(ingest_source(archive, tmp_path, chunk_size=512).store)
    assert scene.attrs["sensor"] == "Landsat-8" and scene.scene_id == "LC80200392015216LGN00"
    assert scene.pan.shape == (1206, 1254) and scene.ms.shape == (4, 603, 627)
    assert scene.pan.dtype == np.uint16 and scene.pan.rio.crs.to_epsg() == 32616
    assert_nested(scene)
    assert scene.attrs["scale_max"] == 65535.0 and len(scene.attrs["source_sha256"]) == 64
    # Pixel-exact window against the archive's own B8 and B4 files.
    import tarfile

    import rasterio
    from rasterio.windows import Window

    with tarfile.open(archive) as tar:
        tar.extract("LC80200392015216LGN00_B8.TIF", tmp_path, filter="data")
        tar.extract("LC80200392015216LGN00_B4.TIF", tmp_path, filter="data")
    with rasterio.open(tmp_path / "LC80200392015216LGN00_B8.TIF") as src:
        window = src.read(1, window=Window(600, 900, 64, 32))
    np.testing.assert_array_equal(scene.pan[900:932, 600:664].values, window)
    with rasterio.open(tmp_path / "LC80200392015216LGN00_B4.TIF") as src:
        red = src.read(1, window=Window(100, 500, 40, 30))
    np.testing.assert_array_equal(scene.ms.sel(band="red")[500:530, 100:140].values, red)


def test_real_worldview3_pair(tmp_path, shared_data):
    folder = shared_data / "worldview3"
    scene = open_scene(ingest_source(folder, tmp_path, sensor="WV3", chunk_size=128).store)
    assert scene.pan.shape == (572, 576) and scene.ms.shape == (8, 143, 144)
    assert scene.pan.dtype == np.float32 and scene.pan.rio.crs.to_epsg() == 32642
    assert_nested(scene)
    alignment = scene.attrs["alignment"]
    assert alignment["pan_dropped"] == {"top": 1, "left": 2, "bottom": 2, "right": 2}
    assert scene.attrs["scale_max"] == pytest.approx(float(max(scene.pan.max(),
                                                               scene.ms.max())))
    import rasterio

    with rasterio.open(folder / "pan.tif") as src:
        raw_pan = src.read(1)
    np.testing.assert_array_equal(scene.pan.values, raw_pan[1:573, 2:578])
    pan_low = scene.pan.values.reshape(143, 4, 144, 4).mean(axis=(1, 3))
    valid = (pan_low > 0) & (scene.ms.values.min(axis=0) > 0)
    corr = np.corrcoef(pan_low[valid], scene.ms.values.mean(axis=0)[valid])[0, 1]
    assert corr > 0.95  # the crop keeps PAN and MS on the same ground


def test_real_ikonos_mat(tmp_path, shared_data):
    scene = open_scene(ingest_source(shared_data / "ikonos" / "imgIK.mat", tmp_path).store)
    assert scene.attrs["sensor"] == "IKONOS" and not scene.attrs["georeferenced"]
    assert scene.pan.shape == (1280, 1280) and scene.ms.shape == (4, 320, 320)
    assert scene.pan.dtype == np.uint16 and scene.attrs["scale_max"] == 2047.0
    assert_nested(scene)
