"""Ingest and whole-scene pansharpening on a dask.distributed LocalCluster: the same output as
one process, bit for bit; a worker killed mid-run is survived; schedulers named by one string."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import rasterio
import xarray as xr

from crossdiff_core.infer import ModelFuser, baseline_fuser, pansharpen_scene
from crossdiff_core.infer.distributed import pansharpen_scene_distributed
from crossdiff_core.io.scheduler import (
    check_scheduler,
    cluster_client,
    is_distributed,
    local_cluster_spec,
)
from crossdiff_core.io.store import open_scene
from crossdiff_core.nets.extractor import load_extractor
from crossdiff_core.pansharpener import save_pansharpener
from crossdiff_core.synthetic import write_synthetic_store
from tests.adapt_helpers import (
    scrambled_pansharpener,
    single_torch_thread,
    tiny_extractor,
    write_tiny_pretrained,
)

one_torch_thread = pytest.fixture(autouse=True, scope="module")(single_torch_thread)

TILING = {"tile": 256, "context": 48, "blend": 16}


@pytest.fixture(scope="module")
def client():
    """Two worker processes of 1 GiB each, stopped when the module's tests are done."""
    with cluster_client("local:2:1GiB") as client:
        yield client


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A QuickBird scene of 640 x 800 PAN pixels (2 x 2 output chunks) and a tiny model."""
    root = tmp_path_factory.mktemp("cluster")
    store = write_synthetic_store(root / "zarr", "QuickBird", ms_shape=(160, 200), seed=3)
    pretrained = write_tiny_pretrained(root / "pretrain", "QuickBird")
    encoders = tiny_extractor(pretrained, store, root / "encoders")
    save_pansharpener(scrambled_pansharpener(load_extractor(encoders), "QuickBird"),
                      root / "model")
    return {"root": root, "store": store, "model": root / "model"}


def _single(scene, model, out, **tiling):
    opened = open_scene(scene["store"])
    if model == scene["model"]:
        from crossdiff_core.pansharpener import load_pansharpener

        fuser = ModelFuser(load_pansharpener(model))
    else:
        fuser = baseline_fuser(model, opened)
    return pansharpen_scene(opened, fuser, out, fmt="zarr" if out.suffix == ".zarr" else "cog",
                            progress=False, **tiling)


def _zarr_values(path) -> np.ndarray:
    return xr.open_zarr(path)["fused"].values


def test_scheduler_strings():
    assert check_scheduler("local:2:1GiB") == "local:2:1GiB"
    assert local_cluster_spec("local:2:1GiB") == (2, 1 << 30)
    assert local_cluster_spec("local:3") == (3, None)
    assert local_cluster_spec("tcp://host:8786") is None
    assert is_distributed("tcp://host:8786") and not is_distributed("threads")
    for bad in ("local:0", "local:two", "local:2:lots", "cluster"):
        with pytest.raises(ValueError, match="not understood|not a memory size"):
            check_scheduler(bad)


def _same_cog(one_path, other_path) -> None:
    with rasterio.open(one_path) as one, rasterio.open(other_path) as other:
        assert other.profile == one.profile
        assert list(other.descriptions) == list(one.descriptions)
        np.testing.assert_array_equal(other.read(), one.read())
        assert other.overviews(1) == one.overviews(1)


def test_baseline_on_the_cluster_equals_one_process(scene, client, tmp_path):
    single = _single(scene, "mtf_glp_hpm", tmp_path / "single.tif")
    cluster = pansharpen_scene_distributed(scene["store"], "mtf_glp_hpm", tmp_path / "cluster.tif",
                                           client)
    _same_cog(single, cluster)
    # Nothing but the two outputs: the scratch rows of the workers are gone.
    assert sorted(os.listdir(tmp_path)) == ["cluster.tif", "single.tif"]


@pytest.mark.slow
def test_model_on_the_cluster_equals_one_process_bit_for_bit(scene, client, tmp_path):
    single = _single(scene, scene["model"], tmp_path / "single.zarr", batch_size=2, **TILING)
    cluster = pansharpen_scene_distributed(scene["store"], scene["model"],
                                           tmp_path / "cluster.zarr", client, fmt="zarr",
                                           batch_size=2, **TILING)
    expected = _zarr_values(single)
    assert expected.shape == (4, 640, 800)
    np.testing.assert_array_equal(_zarr_values(cluster), expected)
    opened = xr.open_zarr(cluster, decode_coords="all")["fused"]
    assert opened.rio.crs == open_scene(scene["store"]).pan.rio.crs
    single = _single(scene, scene["model"], tmp_path / "single.tif", **TILING)
    cluster = pansharpen_scene_distributed(scene["store"], scene["model"],
                                           tmp_path / "cluster.tif", client, **TILING)
    _same_cog(single, cluster)
    assert sorted(os.listdir(tmp_path)) == ["cluster.tif", "cluster.zarr", "single.tif",
                                            "single.zarr"]


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_survived_with_the_same_output(scene, tmp_path):
    """SIGKILL one of two workers after the first row of output chunks: dask recomputes what it
    held, its nanny starts a new one, and the output equals the single process's."""
    big = write_synthetic_store(tmp_path / "zarr", "QuickBird", ms_shape=(400, 160), seed=5)
    expected = _zarr_values(_single({"store": big, "model": None}, "mtf_glp_hpm",
                                    tmp_path / "single.zarr"))
    model_expected = _zarr_values(_single({"store": big, "model": scene["model"]},
                                          scene["model"], tmp_path / "single-model.zarr",
                                          **TILING))
    with cluster_client("local:2:1GiB") as client:
        for model, reference in (("mtf_glp_hpm", expected), (scene["model"], model_expected)):
            before = client.run(os.getpid)
            victim = sorted(before.values())[0]
            killed = []

            def kill_after_first_row(done, total, victim=victim, killed=killed):
                if done == 1 and not killed:
                    os.kill(victim, signal.SIGKILL)
                    killed.append(total)

            out = tmp_path / f"cluster-{len(killed)}-{hash(str(model)) & 0xffff}.zarr"
            pansharpen_scene_distributed(big, model, out, client, fmt="zarr",
                                         rows_in_flight=3, on_block_row=kill_after_first_row,
                                         **TILING)
            assert killed and killed[0] >= 3  # killed with rows still to go
            np.testing.assert_array_equal(_zarr_values(out), reference)
            client.wait_for_workers(2, timeout=60)
            assert victim not in client.run(os.getpid).values()  # the nanny replaced it
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # nothing partial left


def test_a_failing_run_leaves_nothing(scene, client, tmp_path):
    with pytest.raises(ValueError, match="not understood|unknown|baseline|method"):
        pansharpen_scene_distributed(scene["store"], "no_such_method", tmp_path / "x.tif",
                                     client)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_ingest_on_the_cluster_writes_the_same_store(client, tmp_path):
    """A GeoTIFF pair with nodata holes, ingested by a local cluster of two 1 GiB workers started
    for the call: every chunk file equals the threaded ingest's; pansharpened on the cluster,
    the holes stay nodata exactly as in one process."""
    from crossdiff_core.ingest import ingest_source
    from tests.ingest_helpers import geotiff_pair

    pan, ms, _, _ = geotiff_pair(tmp_path / "pair", ms_shape=(200, 150), nodata=0)
    for path, window in ((pan, (slice(100, 180), slice(300, 420))),
                         (ms, (slice(120, 140), slice(10, 30)))):
        with rasterio.open(path, "r+") as dataset:
            data = dataset.read()
            data[(slice(None), *window)] = 0
            dataset.write(data)
    one = ingest_source((str(pan), str(ms)), tmp_path / "threads", sensor="QuickBird",
                        chunk_size=256)
    two = ingest_source((str(pan), str(ms)), tmp_path / "cluster", sensor="QuickBird",
                        chunk_size=256, scheduler="local:2:1GiB")
    chunks = sorted(p.relative_to(one.store) for p in one.store.rglob("*")
                    if p.is_file() and "/c/" in p.as_posix())
    assert len(chunks) > 4
    for relative in chunks:
        assert (two.store / relative).read_bytes() == (one.store / relative).read_bytes()
    assert open_scene(two.store).attrs["nodata"] == 0
    single = pansharpen_scene(open_scene(one.store),
                              baseline_fuser("gsa", open_scene(one.store)),
                              tmp_path / "single.tif", progress=False)
    cluster = pansharpen_scene_distributed(two.store, "gsa", tmp_path / "cluster.tif", client)
    _same_cog(single, cluster)
    with rasterio.open(cluster) as dataset:
        assert dataset.nodata == 0
        assert (dataset.read() == 0).sum() > 80 * 120 * 4


def test_the_command_fuses_on_a_cluster_into_the_same_file(scene, client, tmp_path):
    """`crossdiff pansharpen --scheduler ADDRESS` gives the bytes of the in-process command."""
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    common = ["pansharpen", "--scene", str(scene["store"]), "--model", "mtf_glp_hpm", "-q"]
    here = runner.invoke(app, [*common, str(tmp_path / "here.tif")])
    assert here.exit_code == 0, here.output
    def transitions() -> int:
        return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)

    before = transitions()
    there = runner.invoke(app, [*common, str(tmp_path / "there.tif"), "--scheduler",
                                client.scheduler.address])
    assert there.exit_code == 0, there.output
    assert transitions() > before  # the workers did the fusing
    assert (tmp_path / "here.tif").read_bytes() == (tmp_path / "there.tif").read_bytes()
    refused = runner.invoke(app, [*common, str(tmp_path / "x.tif"), "--scheduler", "threads"])
    assert refused.exit_code == 2 and "no cluster" in refused.output
