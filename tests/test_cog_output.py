"""What a pansharpened output holds for a GIS: a valid COG with the predictor for its dtype,
overviews, tiles and compression, true-colour interpretation in the sensor's band order, band
names and wavelengths, provenance, the clip count, nodata and its mask; Zarr outputs alike."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from ingest_helpers import write_geotiff
from rasterio.enums import ColorInterp, MaskFlags
from typer.testing import CliRunner

from crossdiff_core import __version__
from crossdiff_core.baselines import get_method
from crossdiff_core.infer.provenance import read_provenance
from crossdiff_core.infer.writers import OutputValues, cog_creation_options, output_format
from crossdiff_core.sensors import get_sensor
from crossdiff_core.synthetic import synthetic_pair, write_synthetic_store
from flows.cli import app

QB = get_sensor("QB")
MS_SHAPE = (136, 136)  # PAN 544 x 544: over one 512-pixel COG tile, so it gets an overview


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """PAN + MS GeoTIFFs (uint16, nodata 0) with holes: a corner of every MS band, one pixel of
    one MS band, a PAN patch."""
    folder = tmp_path_factory.mktemp("cog")
    pan, ms = synthetic_pair("QuickBird", MS_SHAPE, seed=4)
    pan, ms = pan.astype("uint16"), ms.astype("uint16")
    ms[:, 0:3, 0:5] = 0
    ms[2, 10, 10] = 0
    pan[100:104, 200:210] = 0
    ms_t = Affine(2.0, 0.0, 400_000.0, 0.0, -2.0, 4_000_000.0)
    pan_t = Affine(0.5, 0.0, 400_000.0, 0.0, -0.5, 4_000_000.0)
    pan_path = write_geotiff(folder / "scene_pan.tif", pan, pan_t, nodata=0)
    ms_path = write_geotiff(folder / "scene_mul.tif", ms, ms_t, nodata=0)
    hole = (pan == 0) | np.repeat(np.repeat((ms == 0).any(axis=0), 4, axis=0), 4, axis=1)
    return {"pan": pan_path, "ms": ms_path, "pan_dn": pan, "ms_dn": ms, "hole": hole,
            "folder": folder}


@pytest.fixture(scope="module")
def cog(pair):
    out = pair["folder"] / "fused.tif"
    result = CliRunner().invoke(app, ["pansharpen", str(pair["pan"]), str(pair["ms"]), str(out),
                                      "--model", "gsa", "--sensor", "QB", "--clip", "input"])
    assert result.exit_code == 0, result.output
    return {"path": out, "output": result.output}


def test_output_is_a_valid_cog_with_predictor_overviews_tiles_and_compression(cog):
    from rio_cogeo.cogeo import cog_validate

    valid, errors, warnings = cog_validate(str(cog["path"]), quiet=True)
    assert valid and not errors, (errors, warnings)
    with rasterio.open(cog["path"]) as dataset:
        structure = dataset.tags(ns="IMAGE_STRUCTURE")
        assert structure["LAYOUT"] == "COG"
        assert structure["COMPRESSION"] == "DEFLATE"
        assert structure["PREDICTOR"] == "2"  # horizontal differencing: an integer dtype
        assert dataset.profile["tiled"] and set(dataset.block_shapes) == {(512, 512)}
        assert dataset.overviews(1) == [2]
        assert dataset.dtypes[0] == "uint16"


def test_bands_keep_sensor_order_with_true_colour_names_and_wavelengths(cog):
    with rasterio.open(cog["path"]) as dataset:
        assert dataset.descriptions == ("blue", "green", "red", "nir")
        assert dataset.colorinterp == (ColorInterp.blue, ColorInterp.green, ColorInterp.red,
                                       ColorInterp.undefined)
        for index, band in enumerate(QB.bands, start=1):
            tags = dataset.tags(index)
            assert float(tags["wavelength"]) == pytest.approx(QB.wavelength_um(band))
            assert float(tags["fwhm"]) == pytest.approx(QB.fwhm_um(band))
            assert tags["wavelength_units"] == "micrometers"
            imagery = dataset.tags(index, ns="IMAGERY")
            assert float(imagery["CENTRAL_WAVELENGTH_UM"]) == pytest.approx(
                QB.wavelength_um(band))
    assert [QB.wavelength_um(b) for b in QB.bands] == [0.485, 0.56, 0.66, 0.83]


def test_provenance_names_method_inputs_software_and_settings(cog, pair):
    record = read_provenance(cog["path"])
    assert record["method"] == "gsa" and record["model"] == "gsa"
    assert record["model_version"] == __version__
    assert record["software"] == "crossdiff" and record["software_version"] == __version__
    assert record["inputs"] == {
        "pan": {"path": str(pair["pan"].resolve()), "sha256": _sha256(pair["pan"])},
        "ms": {"path": str(pair["ms"].resolve()), "sha256": _sha256(pair["ms"])},
    }
    assert record["sensor"] == "QuickBird"
    parameters = record["parameters"]
    assert parameters["clip"] == "input" and parameters["format"] == "cog"
    assert parameters["creation_options"] == cog_creation_options(np.dtype("uint16"))
    with rasterio.open(cog["path"]) as dataset:
        assert dataset.tags()["TIFFTAG_SOFTWARE"] == f"crossdiff {__version__}"
    assert (cog["path"].parent / "fused.tif.stac.json").is_file()


def test_clip_count_is_printed_stored_and_right(cog, pair):
    record = read_provenance(cog["path"])
    count = record["clipped_pixels"]
    assert f"clipped {count} pixels (--clip input)" in cog["output"]
    assert len(record["clipped_per_band"]) == 4 and max(record["clipped_per_band"]) <= count
    pan, ms, hole = pair["pan_dn"], pair["ms_dn"], pair["hole"]
    valid_ms = np.where(ms == 0, np.nan, ms.astype(np.float64))
    low = np.nanmin(valid_ms, axis=(1, 2))[:, None, None]
    high = np.nanmax(valid_ms, axis=(1, 2))[:, None, None]
    with rasterio.open(cog["path"]) as dataset:
        written = dataset.read().astype(np.float64)
    # Every valid pixel lies within its band's input range ...
    assert ((written >= low) & (written <= high))[:, ~hole].all()
    # ... and the count is that of the method's values outside it (the strip-by-strip fusion
    # equals the one-shot call to 1e-3 of the scale: values that close to a bound may go
    # either way).
    fused = np.rint(get_method("gsa")(ms.astype(np.float64), pan.astype(np.float64), 4, QB))
    tolerance = 1e-3 * np.abs(fused).max()

    def outside(margin):
        out = ((fused < low - margin) | (fused > high + margin)).any(axis=0)
        return int((out & ~hole).sum())

    assert 0 < outside(tolerance) <= count <= outside(-tolerance)


def test_nodata_and_mask_come_from_the_inputs(cog, pair):
    with rasterio.open(cog["path"]) as dataset:
        assert dataset.nodata == 0
        assert dataset.mask_flag_enums[0] == [MaskFlags.nodata]
        mask = dataset.read_masks(1)
        data = dataset.read()
    hole = pair["hole"]
    np.testing.assert_array_equal(mask == 0, hole)
    assert (data[:, hole] == 0).all() and (data[:, ~hole] != 0).all()


def test_creation_options_override_the_defaults_and_bad_ones_are_refused(tmp_path):
    store = write_synthetic_store(tmp_path / "zarr", "QuickBird", ms_shape=(40, 36))
    runner = CliRunner()
    out = tmp_path / "small.tif"
    result = runner.invoke(app, ["pansharpen", "--scene", str(store), str(out), "--model",
                                 "brovey", "--co", "blocksize=128", "--co", "PREDICTOR=NO",
                                 "--co", "LEVEL=9"])
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dataset:
        assert set(dataset.block_shapes) == {(128, 128)}
        assert "PREDICTOR" not in dataset.tags(ns="IMAGE_STRUCTURE")
        assert dataset.overviews(1) == [2]  # 160 x 144 pixels over 128-pixel tiles
    assert read_provenance(out)["parameters"]["creation_options"]["LEVEL"] == "9"
    for option, needle in (("COMPRESS=FOO", "COMPRESS"), ("BLOCKSIZE=abc", "BLOCKSIZE"),
                           ("NO_SUCH_OPTION=1", "NO_SUCH_OPTION"), ("BLOCKSIZE=64", "128")):
        bad = tmp_path / "bad.tif"
        result = runner.invoke(app, ["pansharpen", "--scene", str(store), str(bad), "--model",
                                     "brovey", "--co", option])
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error: --co") and needle in result.output
        assert not bad.exists()


def test_zarr_output_carries_the_same_band_attributes_and_provenance(tmp_path):
    store = write_synthetic_store(tmp_path / "zarr", "WorldView-3", ms_shape=(32, 32))
    out = tmp_path / "fused.zarr"
    result = CliRunner().invoke(app, ["pansharpen", "--scene", str(store), str(out), "--model",
                                      "brovey", "--clip", "none"])
    assert result.exit_code == 0, result.output
    fused = xr.open_zarr(out)["fused"]
    wv3 = get_sensor("WV3")
    assert list(fused["band"].values) == list(wv3.bands)
    np.testing.assert_allclose(fused["wavelength"].values,
                               [wv3.wavelength_um(b) for b in wv3.bands])
    assert fused["wavelength"].attrs["units"] == "micrometers"
    assert fused.attrs["rgb_bands"] == ["red", "green", "blue"]
    assert fused.dtype == np.float32  # clip none: integer DN written as float, nothing lost
    record = read_provenance(out)
    assert record["method"] == "brovey" and record["parameters"]["clip"] == "none"
    assert record["clipped_pixels"] == 0 and record["inputs"]["scene"]["path"] == str(store)
    assert "clipped 0 pixels (--clip none)" in result.output


def test_dtype_clip_rounds_counts_and_keeps_valid_pixels_off_nodata():
    fused = np.array([[[-3.0, 0.2, 5.4, 70000.0]], [[1.0, 2.0, 3.0, 4.0]]], np.float32)
    hole = np.array([[False, False, False, True]])
    values = OutputValues(np.uint16, 0, (np.array([1.0, 1.0]), np.array([65535.0, 65535.0])))
    out = values.convert(fused, hole)
    np.testing.assert_array_equal(out, [[[1, 1, 5, 0]], [[1, 2, 3, 0]]])
    # -3 and 0.2 (rounds to the nodata value 0) are clipped; 70000 lies in a hole: not counted.
    assert values.summary() == {"clipped_pixels": 2, "clipped_per_band": [2, 0]}
    floats = OutputValues(np.float32, 0.0, None).convert(np.array([[[0.0, 1.5]]], np.float32))
    assert floats[0, 0, 0] != 0 and floats[0, 0, 1] == 1.5  # a valid 0.0 is not nodata


def test_format_follows_the_extension():
    assert output_format("a.TIF") == output_format("a.tiff") == "cog"
    assert output_format("a.zarr") == "zarr" and output_format("a.png", "cog") == "cog"
    with pytest.raises(ValueError, match=r"\.png.*--format"):
        output_format("a.png")
