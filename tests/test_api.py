"""The Python API at the top of crossdiff_core: open_scene, load_model, pansharpen, evaluate."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr

import crossdiff_core as cd
from crossdiff_core.baselines import get_method
from crossdiff_core.evaluation import evaluate_scene
from crossdiff_core.nets.extractor import load_extractor
from crossdiff_core.pansharpener import Pansharpener, save_pansharpener
from crossdiff_core.synthetic import write_synthetic_store
from tests.adapt_helpers import (
    scrambled_pansharpener,
    single_torch_thread,
    tiny_extractor,
    write_tiny_pretrained,
)

one_torch_thread = pytest.fixture(autouse=True, scope="module")(single_torch_thread)


@pytest.fixture(scope="module")
def scene_and_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    store = write_synthetic_store(root / "zarr", "QuickBird", ms_shape=(40, 48), seed=3)
    encoders = tiny_extractor(write_tiny_pretrained(root / "pre", "QuickBird"), store,
                              root / "extractor")
    model = save_pansharpener(scrambled_pansharpener(load_extractor(encoders), "QuickBird"),
                              root / "head")
    return store, model


def test_top_level_names_are_the_api_with_docstrings():
    for name in ("open_scene", "load_model", "pansharpen", "evaluate"):
        function = getattr(cd, name)
        assert function.__module__ == "crossdiff_core.api"
        assert function.__doc__ and len(function.__doc__) > 80, name
        assert name in dir(cd)
    with pytest.raises(AttributeError, match="no attribute 'fuse_everything'"):
        cd.fuse_everything  # noqa: B018


def test_pansharpen_in_memory_equals_the_written_cog(scene_and_model, tmp_path):
    store, _ = scene_and_model
    scene = cd.open_scene(store)
    fused = cd.pansharpen(scene, "mtf_glp_hpm")
    assert isinstance(fused, xr.DataArray)
    assert fused.dims == ("band", "y", "x")
    assert fused.shape == (scene.ms.sizes["band"], *scene.pan.shape)
    assert fused.dtype == scene.ms.dtype
    assert list(fused["band"].values) == scene.band_names
    assert fused.rio.crs == scene.pan.rio.crs
    assert fused.rio.transform() == scene.pan.rio.transform()
    # The method on the whole scene at once, clipped to the DN dtype as outputs are.
    reference = get_method("mtf_glp_hpm")(scene.ms.values.astype(np.float64),
                                          scene.pan.values.astype(np.float64), scene.ratio,
                                          scene.sensor)
    reference = np.clip(reference, 0, np.iinfo(scene.ms.dtype).max)
    # (the rows pass through float32: a few 1e-5 DN of its rounding on top of half a DN)
    assert np.abs(fused.values.astype(np.float64) - reference).max() <= 0.5 + 1e-3

    path = cd.pansharpen(str(store), "mtf_glp_hpm", out=tmp_path / "fused.tif")
    assert path == tmp_path / "fused.tif"
    with rasterio.open(path) as written:
        assert np.array_equal(written.read(), fused.values)
        assert written.crs == scene.pan.rio.crs
    with pytest.raises(ValueError, match=r"\.tif .*or \.zarr"):
        cd.pansharpen(scene, "mtf_glp_hpm", out=tmp_path / "fused.png")


def test_load_model_and_pansharpen_with_a_saved_folder(scene_and_model):
    store, folder = scene_and_model
    scene = cd.open_scene(store)
    model = cd.load_model(folder)
    assert isinstance(model, Pansharpener)
    assert not model.training
    direct = model.fuse(scene.ms.values, scene.pan.values)
    tiled = cd.pansharpen(scene, folder)
    assert tiled.shape == direct.shape
    # Windows blended on a fixed grid agree with one whole-image forward (see test_infer).
    assert np.abs(tiled.values.astype(np.float64) - np.rint(direct)).max() <= 1.0


def test_evaluate_scores_like_the_evaluate_stage(scene_and_model):
    store, folder = scene_and_model
    scene = cd.open_scene(store)
    scores = cd.evaluate(scene, {"mtf": "mtf_glp_hpm", "ours": folder,
                                 "upsampled": lambda ms, pan: np.repeat(np.repeat(
                                     ms, 4, axis=1), 4, axis=2).astype(np.float64)},
                         max_pan_size=128, border_cut=0)
    assert set(scores) == {"mtf", "ours", "upsampled"}
    for index in ("q2n", "sam", "ergas", "hqnr", "d_lambda", "d_s"):
        assert all(np.isfinite(s[index]) for s in scores.values()), index
    expected = evaluate_scene(scene, {"mtf": get_method("mtf_glp_hpm")}, max_pan_size=128,
                              border_cut=0).scores["mtf"]
    assert scores["mtf"] == pytest.approx(expected, rel=0, abs=0)
    # Pixel replication carries no PAN detail: its spatial distortion is the worst of the three.
    assert scores["upsampled"]["d_s"] > scores["mtf"]["d_s"]
    assert set(cd.evaluate(str(store), ["gsa"], max_pan_size=128, border_cut=0)) == {"gsa"}


def test_clear_errors_for_registry_addresses_and_other_folders(scene_and_model, tmp_path):
    store, _ = scene_and_model
    with pytest.raises(ValueError, match=r"mlflow\.pyfunc\.load_model"):
        cd.load_model("models:/crossdiff-pansharpener@champion")
    with pytest.raises(ValueError, match=r"mlflow\.pyfunc\.load_model"):
        cd.pansharpen(store, "models:/crossdiff-pansharpener@champion")
    with pytest.raises(FileNotFoundError, match="not a saved pansharpener folder"):
        cd.load_model(tmp_path)
    with pytest.raises(ValueError, match="unknown baseline 'no_such_method'"):
        cd.evaluate(store, ["no_such_method"])


def test_a_scene_with_nodata_pansharpens_to_zarr_and_memory(tmp_path):
    """Region writes of a Zarr output must not repeat the template's _FillValue (they failed on
    every scene with a nodata value, e.g. every Landsat scene)."""
    import hashlib

    from crossdiff_core.io.store import scene_attributes, write_scene_store
    from crossdiff_core.sensors import get_sensor
    from crossdiff_core.synthetic import synthetic_scene_arrays

    sensor = get_sensor("QuickBird")
    pan, ms = synthetic_scene_arrays(sensor, (32, 32), 5, True)
    pan[:8, :8] = 0
    attrs = scene_attributes(
        sensor, scene_id="holes", scale_max=float(sensor.max_dn), nodata=0,
        crs=pan.rio.crs.to_wkt(), source_name="synthetic",
        source_sha256=hashlib.sha256(pan.values.tobytes()).hexdigest(),
        alignment={"rule": "none", "reason": "generated on nested grids"})
    store = write_scene_store(pan, ms, attrs, tmp_path / "zarr", chunk_size=128)
    fused = cd.pansharpen(store, "mtf_glp_hpm")
    assert (fused.values[:, :8, :8] == 0).all()
    assert (fused.values[:, 16:, 16:] > 0).all()
    written = cd.pansharpen(store, "mtf_glp_hpm", out=tmp_path / "fused.zarr")
    with xr.open_zarr(written, mask_and_scale=False) as dataset:
        assert np.array_equal(dataset["fused"].values, fused.values)
