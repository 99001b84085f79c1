"""Entry points: the crossdiff ingest command, the Prefect flow (through main()), schedulers."""

import numpy as np
import pytest
import yaml
from ingest_helpers import geotiff_pair, grip_mat, landsat_bundle, tar_folder
from typer.testing import CliRunner

from crossdiff_core.config import IngestParams
from crossdiff_core.ingest import ingest_source
from crossdiff_core.io.store import open_scene
from flows.cli import app


def test_cli_writes_then_skips(tmp_path):
    pan_path, ms_path, pan, _ = geotiff_pair(tmp_path / "d")
    runner = CliRunner()
    args = ["ingest", str(pan_path), str(ms_path), "--out", str(tmp_path / "zarr"),
            "--sensor", "QB", "--chunk-size", "32"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "wrote" in first.output and "QuickBird" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "skipped" in second.output
    store = next((tmp_path / "zarr" / "QuickBird").glob("*.zarr"))
    np.testing.assert_array_equal(open_scene(store).pan.values, pan)


@pytest.mark.parametrize("make, needle", [
    (lambda tmp: tmp / "missing.tar.gz", "missing.tar.gz"),
    (lambda tmp: (tmp / "x.rar").write_bytes(b"Rar!") and tmp / "x.rar", "x.rar"),
])
def test_cli_bad_input_is_one_line(tmp_path, make, needle):
    source = make(tmp_path)
    result = CliRunner().invoke(app, ["ingest", str(source), "--out", str(tmp_path / "zarr")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in result.output


def test_processes_scheduler(tmp_path):
    path, pan, ms = grip_mat(tmp_path / "img.mat")
    scene = open_scene(ingest_source(path, tmp_path / "zarr", chunk_size=16,
                                     scheduler="processes").store)
    np.testing.assert_array_equal(scene.pan.values, pan)
    with pytest.raises(ValueError, match="scheduler 'gpu' is not understood"):
        ingest_source(path, tmp_path / "zarr", scheduler="gpu")


def test_flow_main_reads_params(tmp_path, monkeypatch, prefect_server):
    from flows import ingest as ingest_flow_module

    folder, pan, _ = landsat_bundle(tmp_path / "bundle")
    archive = tar_folder(folder, tmp_path / "bundle.tar.gz")
    params = {"ingest": {"sources": [str(archive)], "out": str(tmp_path / "zarr"),
                         "sensor": None, "chunk_size": 16, "scheduler": "threads"}}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    monkeypatch.setenv("CROSSDIFF_PARAMS", str(params_file))
    ingest_flow_module.main()
    config = IngestParams(sources=[str(archive)], out=str(tmp_path / "zarr"), chunk_size=16)
    stores = ingest_flow_module.ingest_flow(config)
    assert stores == [str(tmp_path / "zarr" / "Landsat-8" / "LC80200392015216LGN00.zarr")]
    np.testing.assert_array_equal(open_scene(stores[0]).pan.values, pan)
