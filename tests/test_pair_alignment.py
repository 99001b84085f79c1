"""A PAN + MS GeoTIFF pair with Landsat's geometry (ratio 2, MS origin half a PAN pixel off the
PAN origin) is aligned by the Landsat rule; other fractional offsets stay refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from crossdiff_core.ingest import ingest_source
from crossdiff_core.io.errors import AlignmentError
from crossdiff_core.io.store import open_scene, read_store_attrs
from tests.ingest_helpers import write_geotiff

MS_SHAPE = (6, 7)


def _pair(folder: Path, ratio: int, offset: tuple[float, float], pan_extra: int = 1,
          seed: int = 3) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """PAN + MS GeoTIFFs whose MS origin is ``offset`` (row, col) PAN pixels from the PAN
    origin (down and right), the PAN ``pan_extra`` pixels larger on every side than needed."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ms = rng.integers(1, 4000, size=(4, *MS_SHAPE), dtype=np.uint16)
    pan_shape = (MS_SHAPE[0] * ratio + 2 * pan_extra, MS_SHAPE[1] * ratio + 2 * pan_extra)
    pan = rng.integers(1, 4000, size=pan_shape, dtype=np.uint16)
    pan_px = 15.0
    ms_t = Affine(pan_px * ratio, 0.0, 300_000.0, 0.0, -pan_px * ratio, 4_000_000.0)
    pan_t = Affine(pan_px, 0.0, 300_000.0 - offset[1] * pan_px, 0.0, -pan_px,
                   4_000_000.0 + offset[0] * pan_px)
    pan_path = write_geotiff(folder / "scene_pan.tif", pan, pan_t)
    ms_path = write_geotiff(folder / "scene_ms.tif", ms, ms_t)
    return pan_path, ms_path, pan, ms


def test_landsat_half_pixel_pair_is_aligned_by_the_landsat_rule(tmp_path):
    # Landsat: the PAN grid starts half a PAN pixel up and left of the MS grid (7.5 m at 15 m).
    pan_path, ms_path, pan, ms = _pair(tmp_path / "in", ratio=2, offset=(1.5, 1.5))
    result = ingest_source((pan_path, ms_path), tmp_path / "zarr", sensor="L8", chunk_size=8)
    attrs = read_store_attrs(result.store)
    alignment = attrs["alignment"]
    assert alignment["rule"] == "half_pixel_shift"
    assert alignment["convention"].startswith("landsat-half-pixel")
    assert alignment["declared_by"] == "geometry"
    assert alignment["ms_origin_in_pan_pixels"] == [1.5, 1.5]
    assert alignment["pan_dropped"]["top"] == 1 and alignment["pan_dropped"]["left"] == 1
    scene = open_scene(result.store)
    # PAN = the whole PAN pixels after the first one, moved half a pixel onto the MS origin.
    np.testing.assert_array_equal(scene.pan.values,
                                  pan[1:1 + MS_SHAPE[0] * 2, 1:1 + MS_SHAPE[1] * 2])
    np.testing.assert_array_equal(scene.ms.values, ms)
    pan_t, ms_t = scene.pan.rio.transform(), scene.ms.rio.transform()
    assert (pan_t.c, pan_t.f) == (ms_t.c, ms_t.f) == (300_000.0, 4_000_000.0)
    assert pan_t.a * 2 == ms_t.a


def test_landsat_bundle_records_that_its_source_declares_the_rule(tmp_path):
    from tests.ingest_helpers import landsat_bundle

    bundle, _, _ = landsat_bundle(tmp_path / "bundle")
    result = ingest_source(bundle, tmp_path / "zarr", chunk_size=8)
    alignment = read_store_attrs(result.store)["alignment"]
    assert alignment["rule"] == "half_pixel_shift" and alignment["declared_by"] == "source"


@pytest.mark.parametrize(("ratio", "offset", "sensor"), [
    (4, (1.5, 1.5), "QB"),    # half a PAN pixel, but not Landsat's ratio
    (2, (1.25, 1.25), "L8"),  # a quarter pixel: only resampling could fix it
    (2, (1.5, 1.0), "L8"),    # half a pixel on one axis only
])
def test_other_fractional_offsets_stay_refused(tmp_path, ratio, offset, sensor):
    pan_path, ms_path, _, _ = _pair(tmp_path / "in", ratio=ratio, offset=offset)
    with pytest.raises(AlignmentError, match="fractional offset") as caught:
        ingest_source((pan_path, ms_path), tmp_path / "zarr", sensor=sensor, chunk_size=8)
    assert "scene_pan.tif" in str(caught.value)
    assert not (tmp_path / "zarr").exists()
