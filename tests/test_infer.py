"""Whole-scene inference: tiling invariance, georeferencing, formats, bad input, real scenes."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
from typer.testing import CliRunner

from crossdiff_core.infer import ModelFuser, fuse_tiled, pansharpen_scene
from crossdiff_core.io.store import open_scene
from crossdiff_core.nets.extractor import load_extractor
from crossdiff_core.pansharpener import save_pansharpener
from crossdiff_core.synthetic import synthetic_pair, write_synthetic_store
from flows.cli import app
from tests.adapt_helpers import (
    scrambled_pansharpener,
    single_torch_thread,
    tiny_extractor,
    write_tiny_pretrained,
)

one_torch_thread = pytest.fixture(autouse=True, scope="module")(single_torch_thread)


@pytest.fixture(scope="module")
def qb(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer")
    store = write_synthetic_store(root / "zarr", "QuickBird", ms_shape=(40, 56), seed=1)
    pretrained = write_tiny_pretrained(root / "pretrain", "QuickBird")
    encoders = tiny_extractor(pretrained, store, root / "encoders")
    noisy = tiny_extractor(pretrained, store, root / "noisy", noise_free=False)
    # freeze.decoder_features: true, the default: decoder maps read beside the encoder maps.
    decoder = tiny_extractor(pretrained, store, root / "decoder", decoder_features=True)
    model = scrambled_pansharpener(load_extractor(encoders), "QuickBird")
    save_pansharpener(model, root / "model")
    return {"root": root, "store": store, "model": model, "model_dir": root / "model",
            "noisy": scrambled_pansharpener(load_extractor(noisy), "QuickBird"),
            "decoder": scrambled_pansharpener(load_extractor(decoder), "QuickBird")}


@pytest.mark.parametrize("features", ["model", "noisy", "decoder"],
                         ids=["noise-free", "coordinate-noise", "with-decoder"])
def test_tiled_result_matches_one_shot_within_half_a_dn(qb, features):
    model = qb[features]
    noisy = features == "noisy"
    assert bool(model.extractor.config["decoder_features"]) == (features == "decoder")
    pan, ms = synthetic_pair("QuickBird", ms_shape=(32, 40), seed=2)
    one_shot = model.fuse(ms, pan)
    # The head is scrambled: the residual is far from zero, so tiling errors would show.
    assert np.abs(one_shot - ms.repeat(4, 1).repeat(4, 2)).mean() > 5
    # Windows far smaller than the scene, with half the model's default context.
    for tile, batch_size in ((176, 2),):
        tiled = fuse_tiled(ms, pan, ModelFuser(model), tile=tile, context=48, blend=16,
                           batch_size=batch_size)
        difference = np.abs(tiled - one_shot).max()
        print(f"tile {tile} batch {batch_size} noisy {noisy}: max |tiled - one-shot| = "
              f"{difference:.2e} DN")
        assert difference < 0.5


def test_cog_output_lies_on_the_pan_grid(qb, tmp_path):
    scene = open_scene(qb["store"])
    out = pansharpen_scene(scene, ModelFuser(qb["model"]), tmp_path / "fused.tif", tile=512,
                           progress=False)
    with rasterio.open(out) as dataset:
        assert dataset.crs == scene.pan.rio.crs
        assert dataset.transform == scene.pan.rio.transform()
        assert (dataset.height, dataset.width) == scene.pan.shape
        assert dataset.dtypes[0] == str(scene.ms.dtype)
        assert list(dataset.descriptions) == scene.band_names
        fused = dataset.read()
    expected = qb["model"].fuse(scene.ms.values, scene.pan.values)
    assert np.abs(fused.astype(float) - np.clip(np.rint(expected), 0, 65535)).max() <= 1
    assert [p.name for p in tmp_path.iterdir()] == ["fused.tif"]  # no temporary left behind


def test_zarr_output_and_refusing_an_existing_output(qb, tmp_path):
    scene = open_scene(qb["store"])
    out = pansharpen_scene(scene, ModelFuser(qb["model"]), tmp_path / "fused.zarr", fmt="zarr",
                           tile=512, progress=False)
    fused = xr.open_zarr(out, decode_coords="all")["fused"]
    assert fused.rio.crs == scene.pan.rio.crs
    assert fused.rio.transform() == scene.pan.rio.transform()
    assert list(fused["band"].values) == scene.band_names
    with pytest.raises(FileExistsError, match="--overwrite"):
        pansharpen_scene(scene, ModelFuser(qb["model"]), out, fmt="zarr")


def test_interrupted_write_leaves_nothing(qb, tmp_path):
    scene = open_scene(qb["store"])

    class Failing(ModelFuser):
        calls = 0

        def fuse_windows(self, ms, pan, origins):
            Failing.calls += 1
            if Failing.calls > 1:
                raise KeyboardInterrupt
            return super().fuse_windows(ms, pan, origins)

    # Windows smaller than the scene, one per call: the second call fails mid-scene.
    with pytest.raises(KeyboardInterrupt):
        pansharpen_scene(scene, Failing(qb["model"]), tmp_path / "fused.tif", tile=256,
                         batch_size=1, progress=False)
    assert Failing.calls == 2
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_are_refused(qb, tmp_path):
    runner = CliRunner()
    wv3 = write_synthetic_store(tmp_path / "zarr", "WorldView-3", ms_shape=(32, 32), seed=0)
    result = runner.invoke(app, ["pansharpen", "--model", str(qb["model_dir"]), "--scene",
                                 str(wv3), str(tmp_path / "a.tif")])
    assert result.exit_code == 1 and "bands" in result.output and "Traceback" not in result.output
    landsat = write_synthetic_store(tmp_path / "zarr", "Landsat-8", ms_shape=(32, 32), seed=0)
    result = runner.invoke(app, ["pansharpen", "--model", str(qb["model_dir"]), "--scene",
                                 str(landsat), str(tmp_path / "b.tif")])
    assert result.exit_code == 1 and "ratio" in result.output
    tiny = write_synthetic_store(tmp_path / "zarr", "QuickBird", ms_shape=(4, 4), seed=0)
    result = runner.invoke(app, ["pansharpen", "--model", "gsa", "--scene", str(tiny),
                                 str(tmp_path / "c.tif")])
    assert result.exit_code == 1 and "smaller than" in result.output
    (tmp_path / "exists.tif").write_bytes(b"")
    result = runner.invoke(app, ["pansharpen", "--model", "gsa", "--scene", str(qb["store"]),
                                 str(tmp_path / "exists.tif")])
    assert result.exit_code == 1 and "--overwrite" in result.output


@pytest.mark.slow  # ingests both real scenes, adapts and fuses them through the CLI
def test_real_scenes_pansharpen_end_to_end(shared_data, tmp_path, prefect_server):
    """WorldView-3 from its GeoTIFF pair through the CLI; IKONOS from an ingested store."""
    from crossdiff_core.ingest import ingest_source
    from crossdiff_core.train.adapt import adapt_head
    from tests.adapt_helpers import tiny_settings

    runner = CliRunner()
    ikonos = ingest_source(str(shared_data / "ikonos" / "imgIK.mat"), tmp_path / "zarr").store
    model = adapt_head([ikonos], tmp_path / "ik-model", None,
                       tiny_settings(random_encoders=True, steps=2))
    result = runner.invoke(app, ["pansharpen", "--model", str(model.out), "--scene", str(ikonos),
                                 str(tmp_path / "ikonos.tif"), "--tile", "1024"])
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "ikonos.tif") as dataset:
        assert (dataset.count, dataset.height, dataset.width) == (4, 1280, 1280)
    wv3 = shared_data / "worldview3"
    result = runner.invoke(app, ["pansharpen", "--model", "mtf_glp_hpm", str(wv3 / "pan.tif"),
                                 str(wv3 / "mul.tif"), str(tmp_path / "wv3.tif"), "--sensor",
                                 "WV3"])
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "wv3.tif") as dataset, \
            rasterio.open(wv3 / "pan.tif") as pan:
        assert dataset.count == 8 and dataset.crs == pan.crs
        fused = dataset.read()
    assert fused.dtype == np.float32 and np.isfinite(fused).all() and fused.max() > 0


def test_model_output_records_the_model_and_its_registry_content_hash(qb, tmp_path):
    """A pansharpener's output names the folder and its version as the registry tags it
    (``content_sha256``), and the tiling that shaped it."""
    from crossdiff_core.infer.provenance import read_provenance
    from tasks.tracking import folder_sha256

    out = tmp_path / "fused.tif"
    result = CliRunner().invoke(app, ["pansharpen", "--model", str(qb["model_dir"]), "--scene",
                                      str(qb["store"]), str(out), "--tile", "512",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    record = read_provenance(out)
    assert record["method"] == "crossdiff" and record["model"] == str(qb["model_dir"])
    assert record["model_version"] == f"sha256:{folder_sha256(qb['model_dir'])}"
    assert record["parameters"]["tile"] == 512 and record["parameters"]["device"] == "cpu"
    assert record["parameters"]["context"] == qb["model"].context
    assert record["inputs"]["scene"]["path"] == str(qb["store"].resolve())
