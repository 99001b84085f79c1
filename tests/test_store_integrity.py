"""Stores that prove they are whole: the manifest ingest writes last, the cheap check on every open,
`crossdiff verify`, and re-ingest repairing a damaged store.

Damaged-store cases: missing chunk, missing group, garbage chunk, truncated chunk, garbage
metadata; each refused with one line naming the store (and the file) and the repair.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from ingest_helpers import geotiff_pair, pancollection_h5
from typer.testing import CliRunner

from crossdiff_core.ingest import ingest_source
from crossdiff_core.io.errors import DamagedStoreError
from crossdiff_core.io.integrity import MANIFEST_NAME, check_store, verify_store
from crossdiff_core.io.store import find_scene_stores, open_scene
from flows.cli import app

PAN_CHUNK = "pan/pan/c/1/1"
MS_CHUNK = "ms/ms/c/0/1/1"


@pytest.fixture(scope="module")
def delivery(tmp_path_factory):
    """A PAN + MS pair ingested with 16-pixel PAN chunks (PAN 48 x 64: 3 x 4 chunks)."""
    folder = tmp_path_factory.mktemp("integrity")
    pan, ms, _, _ = geotiff_pair(folder / "delivery")
    result = ingest_source(folder / "delivery", folder / "zarr", sensor="QB", chunk_size=16)
    return folder / "delivery", result.store


@pytest.fixture
def copy(delivery, tmp_path):
    """A fresh copy of the intact store, laid out as ``<out>/<sensor>/<scene>.zarr``."""
    _, store = delivery
    target = tmp_path / "zarr" / store.parent.name / store.name
    shutil.copytree(store, target)
    return target


def _garbage(path: Path) -> None:
    """Same size, other bytes: only a checksum or a decode can tell."""
    path.write_bytes(bytes(range(7, 256))[: 1] * path.stat().st_size)


DAMAGE = {
    "missing chunk": (lambda s: (s / PAN_CHUNK).unlink(), PAN_CHUNK),
    "missing group": (lambda s: shutil.rmtree(s / "ms"), "ms/"),
    "garbage chunk": (lambda s: _garbage(s / MS_CHUNK), MS_CHUNK),
    "truncated chunk": (lambda s: (s / PAN_CHUNK).write_bytes((s / PAN_CHUNK).read_bytes()[:40]),
                        PAN_CHUNK),
    "garbage metadata": (lambda s: _garbage(s / "zarr.json"), "zarr.json"),
    "garbage array metadata": (lambda s: (s / "pan/pan/zarr.json").write_text("{not json"),
                               "pan/pan/zarr.json"),
}


def _read(store: Path) -> None:
    scene = open_scene(store)
    scene.pan.values, scene.ms.values  # noqa: B018


def test_manifest_is_written_last_and_describes_every_array(delivery):
    _, store = delivery
    manifest = json.loads((store / MANIFEST_NAME).read_text())
    files = {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {MANIFEST_NAME}
    pan = manifest["arrays"]["pan/pan"]
    assert pan["shape"] == [48, 64] and pan["chunk_shape"] == [16, 16]
    assert pan["chunk_grid"] == [3, 4] and pan["chunk_files"] == 12
    assert manifest["arrays"]["ms/ms"]["chunk_grid"] == [1, 3, 4]
    assert manifest["store"]["source_name"] == "delivery"
    assert manifest["files"][PAN_CHUNK]["size"] == (store / PAN_CHUNK).stat().st_size
    assert check_store(store) == manifest and verify_store(store).ok


def test_intact_store_reads_the_same_through_the_checked_reader(delivery):
    _, store = delivery
    scene = open_scene(store)
    assert scene.pan.data.name.startswith("read-pan/pan-")
    plain = xr.open_zarr(store, group="ms", decode_coords="all")["ms"]
    np.testing.assert_array_equal(scene.ms.values, plain.values)
    assert scene.pan.rio.crs == plain.rio.crs and scene.pan.dtype == np.uint16


def test_float_stores_read_the_same(tmp_path):
    path, _, _ = pancollection_h5(tmp_path / "test_wv3_multiExm.h5", n_samples=1)
    store = ingest_source(path, tmp_path / "zarr", chunk_size=16).store
    scene = open_scene(store)
    plain = xr.open_zarr(store, group="pan")["pan"]
    assert scene.pan.dtype == plain.dtype == np.float64
    np.testing.assert_array_equal(scene.pan.values, plain.values)


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_store_is_refused_with_one_line(case, copy):
    damage, file = DAMAGE[case]
    damage(copy)
    with pytest.raises(DamagedStoreError) as error:
        _read(copy)
    message = str(error.value)
    assert "\n" not in message and str(copy) in message and file in message
    assert "crossdiff ingest delivery" in message and "--force" in message
    report = verify_store(copy)
    assert not report.ok and any(file in p for p in report.problems)


@pytest.mark.parametrize("case", ["missing chunk", "missing group", "garbage chunk",
                                  "garbage metadata"])
def test_cli_prints_damage_as_one_line_exit_1(case, copy, tmp_path):
    damage, file = DAMAGE[case]
    damage(copy)
    result = CliRunner().invoke(app, ["pansharpen", "--model", "gsa", "--scene", str(copy),
                                      str(tmp_path / "fused.tif")])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: scene store ")
    assert file in lines[0] and "--force" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "fused.tif").exists()


def test_chunk_removed_after_open_is_not_read_as_zeros(copy):
    scene = open_scene(copy)
    (copy / PAN_CHUNK).unlink()
    with pytest.raises(DamagedStoreError, match="pan/pan/c/1/1 is missing"):
        scene.pan.values  # noqa: B018
    scene.pan[:16, :16].values  # noqa: B018  (chunks still present read fine)


def test_store_without_manifest_is_refused_with_re_ingest(copy):
    (copy / MANIFEST_NAME).unlink()
    with pytest.raises(DamagedStoreError, match="manifest.json is missing.*crossdiff ingest "
                                                "delivery --out .* --force"):
        open_scene(copy)


def test_damaged_store_is_still_found_in_its_folder(copy):
    """A folder scan must not skip a store whose zarr.json is gone: it is listed and refused."""
    (copy / "zarr.json").unlink()
    assert copy in find_scene_stores(copy.parent.parent)
    with pytest.raises(DamagedStoreError, match="zarr.json is missing"):
        open_scene(copy)


def test_verify_exit_codes(delivery, copy, tmp_path):
    _, intact = delivery
    runner = CliRunner()
    good = runner.invoke(app, ["verify", str(intact)])
    assert good.exit_code == 0, good.output
    assert good.output.startswith("OK") and str(intact.name) in good.output
    folder = runner.invoke(app, ["verify", str(copy.parent.parent)])
    assert folder.exit_code == 0 and folder.output.count("OK") == 1
    _garbage(copy / MS_CHUNK)  # same size: only the checksum tells
    mixed = runner.invoke(app, ["verify", str(intact), str(copy)])
    assert mixed.exit_code == 1, mixed.output
    assert f"{MS_CHUNK} does not match its checksum" in mixed.output
    assert "DAMAGED" in mixed.output and "1 of 2 scene stores damaged" in mixed.output
    (copy / "extra").write_bytes(b"x")
    added = runner.invoke(app, ["verify", str(copy)])
    assert added.exit_code == 1 and "extra is not in the manifest" in added.output
    missing = runner.invoke(app, ["verify", str(tmp_path / "nowhere.zarr")])
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere.zarr'} does not exist: give scene stores or folders of them"]


@pytest.mark.parametrize("case", ["missing chunk", "missing group", "garbage chunk",
                                  "garbage metadata"])
def test_re_ingest_repairs_a_damaged_store(case, delivery, tmp_path):
    source, intact = delivery
    out = tmp_path / "zarr"
    first = ingest_source(source, out, sensor="QB", chunk_size=16)
    assert ingest_source(source, out, sensor="QB", chunk_size=16).skipped  # whole: trusted
    DAMAGE[case][0](first.store)
    again = ingest_source(source, out, sensor="QB", chunk_size=16)
    assert not again.skipped and again.store == first.store
    assert verify_store(again.store).ok
    np.testing.assert_array_equal(open_scene(again.store).ms.values, open_scene(intact).ms.values)


def test_unrecognisable_damaged_store_needs_force_which_repairs_it(delivery, tmp_path):
    source, _ = delivery
    store = ingest_source(source, tmp_path / "zarr", sensor="QB", chunk_size=16).store
    (store / MANIFEST_NAME).unlink()
    _garbage(store / "zarr.json")  # nothing left says which source made it
    with pytest.raises(FileExistsError, match="damaged or incomplete.*pass --force"):
        ingest_source(source, tmp_path / "zarr", sensor="QB", chunk_size=16)
    forced = ingest_source(source, tmp_path / "zarr", sensor="QB", chunk_size=16, force=True)
    assert forced.store == store and verify_store(store).ok
