"""The landing flow checks complete arrivals and moves them into data/landed/ (an input of the
ingest stage) or, when bad, into data/landing/rejected/ with a reason; the ingest stage ingests
the landed ones beside ``ingest.sources``."""

from __future__ import annotations

import errno
import io
import os
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from ingest_helpers import geotiff_pair, landsat_bundle, pancollection_h5, tar_folder, zip_folder

from crossdiff_core.io.store import find_scene_stores


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(
        "ingest:\n  out: data/zarr\n  chunk_size: 64\n  sources: []\n  sensor: null\n"
        "  landed: data/landed\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CROSSDIFF_PARAMS", str(tmp_path / "params.yaml"))
    (tmp_path / "data" / "landing").mkdir(parents=True)
    (tmp_path / "data" / "landed").mkdir(parents=True)
    (tmp_path / "data" / "landed" / ".gitkeep").touch()
    return tmp_path


def test_landing_moves_complete_arrivals_and_ingest_takes_them(project, prefect_server):
    from flows.ingest import ingest_flow
    from flows.landing import landing_flow
    from flows.params import load_config

    landing, landed = project / "data" / "landing", project / "data" / "landed"
    folder, _, _ = landsat_bundle(project / "bundle")
    tar_folder(folder, landing / "scene.tar.gz")
    (landing / "upload.tar.gz.part").write_bytes(b"partial upload")
    (landing / ".hidden.tar.gz").write_bytes(b"hidden")

    first = landing_flow(landing="data/landing", repro=False)
    assert first == ["data/landed/scene.tar.gz"]
    assert sorted(p.name for p in landing.iterdir()) == [".hidden.tar.gz", "upload.tar.gz.part"]
    assert landing_flow(landing="data/landing", repro=False) == []

    # The same archive again under its name: dropped; other content under that name: kept.
    shutil.copy2(landed / "scene.tar.gz", landing / "scene.tar.gz")
    assert landing_flow(landing="data/landing", repro=False) == []
    assert not (landing / "scene.tar.gz").exists()
    other, _, _ = landsat_bundle(project / "other", naming="post", seed=3)
    tar_folder(other, landing / "scene.tar.gz")
    (renamed,) = landing_flow(landing="data/landing", repro=False)
    assert renamed.startswith("data/landed/scene-") and renamed.endswith(".tar.gz")
    assert {p.name for p in landed.iterdir()} == {".gitkeep", "scene.tar.gz", Path(renamed).name}

    stores = ingest_flow(load_config("ingest"))
    assert len(stores) == 2 and len(find_scene_stores([project / "data" / "zarr"])) == 2


def test_a_bad_landed_archive_is_skipped_with_a_warning(project, prefect_server, caplog):
    from flows.ingest import ingest_flow
    from flows.params import load_config

    (project / "data" / "landed" / "broken.tar.gz").write_bytes(b"not an archive")
    assert ingest_flow(load_config("ingest")) == []
    assert "skipped landed" in caplog.text and "broken.tar.gz" in caplog.text


def test_a_move_across_file_systems_never_shows_half_a_file(project, monkeypatch):
    from flows import landing as landing_module

    arrival = project / "data" / "landing" / "scene.tar.gz"
    arrival.write_bytes(b"x" * 1000)
    renames = []
    real_rename, real_replace = os.rename, os.replace

    def rename(source, target):
        renames.append((str(source), str(target)))
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def replace(source, target):  # the shared atomic helper's rename of the finished copy
        renames.append((str(source), str(target)))
        assert os.path.basename(source).startswith(".")  # the copy, under a hidden name
        assert (project / "data" / "landed" / "scene.tar.gz").exists() is False
        real_replace(source, target)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    target = landing_module.land(arrival, project / "data" / "landed")
    monkeypatch.setattr(os, "rename", real_rename)
    assert target == project / "data" / "landed" / "scene.tar.gz"
    assert target.read_bytes() == b"x" * 1000 and not arrival.exists()
    assert len(renames) == 2
    assert sorted(p.name for p in target.parent.iterdir()) == [".gitkeep", "scene.tar.gz"]


# --------------------------------------------------------------------------- bad deliveries


def good_delivery(folder: Path, name: str, seed: int) -> Path:
    """A QuickBird PAN + MS pair zipped as ``<name>.zip`` (its scene id: ``name``)."""
    pair = folder / f".make-{name}"
    geotiff_pair(pair, seed=seed)
    archive = zip_folder(pair, folder / f"{name}.part")
    shutil.rmtree(pair)
    return archive.rename(folder / f"{name}.zip")  # complete uploads appear at once


def nan_delivery(folder: Path, name: str) -> Path:
    pair = folder / f".make-{name}"
    _, ms_path, _, _ = geotiff_pair(pair, dtype="float32")
    with rasterio.open(ms_path, "r+") as dataset:
        band = dataset.read(1)
        band[3, 4] = np.nan
        dataset.write(band, 1)
    archive = zip_folder(pair, folder / f"{name}.zip")
    shutil.rmtree(pair)
    return archive


def wrong_grid_delivery(folder: Path, name: str) -> Path:
    pair = folder / f".make-{name}"
    _, ms_path, _, _ = geotiff_pair(pair)
    with rasterio.open(ms_path, "r+") as dataset:  # MS 0.37 of its pixel off the PAN grid
        dataset.transform = dataset.transform @ Affine.translation(0.37, 0.0)
    archive = zip_folder(pair, folder / f"{name}.zip")
    shutil.rmtree(pair)
    return archive


def escaping_delivery(folder: Path, name: str) -> Path:
    archive = folder / f"{name}.tar"
    with tarfile.open(archive, "w") as tar:
        data = b"outside"
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive


def truncated_delivery(folder: Path, name: str, seed: int = 0) -> Path:
    whole = good_delivery(folder, f".whole-{name}", seed)
    data = whole.read_bytes()
    whole.unlink()
    archive = folder / f"{name}.zip"
    archive.write_bytes(data[: len(data) // 2])
    return archive


def bad_deliveries(folder: Path, tag: str = "") -> dict[str, str]:
    """Every kind of bad delivery: {file name: a word its reason must hold}."""
    (folder / f"empty{tag}.tar.gz").write_bytes(b"")
    truncated_delivery(folder, f"quickbird_truncated{tag}")
    escaping_delivery(folder, f"escaping{tag}")
    wrong_grid_delivery(folder, f"quickbird_grid{tag}")
    nan_delivery(folder, f"quickbird_nan{tag}")
    return {f"empty{tag}.tar.gz": "archive", f"quickbird_truncated{tag}.zip": "archive",
            f"escaping{tag}.tar": "escapes", f"quickbird_grid{tag}.zip": "quickbird_grid",
            f"quickbird_nan{tag}.zip": "NaN"}


def check_rejected(landing: Path, expected: dict[str, str]) -> None:
    rejected = landing / "rejected"
    reasons = {p.name[: -len(".reason")]: p.read_text() for p in rejected.glob("*.reason")}
    assert set(reasons) == set(expected), reasons
    for name, word in expected.items():
        assert (rejected / name).exists(), name
        assert reasons[name].endswith("\n") and reasons[name].count("\n") == 1
        assert word in reasons[name] and name in reasons[name], (name, reasons[name])


def no_partials(*folders: Path) -> None:
    for folder in folders:
        hidden = [p for p in folder.rglob(".*") if p.name != ".gitkeep"]
        assert hidden == [], hidden


def test_bad_deliveries_are_rejected_with_a_reason_and_the_rest_land(project, prefect_server):
    from flows.ingest import ingest_flow
    from flows.landing import landing_flow
    from flows.params import load_config

    landing, landed = project / "data" / "landing", project / "data" / "landed"
    expected = bad_deliveries(landing)
    (landing / "quickbird_garbage.h5").write_bytes(os.urandom(2000))
    expected["quickbird_garbage.h5"] = "HDF5"
    good_delivery(landing, "quickbird_good", seed=1)
    folder, _, _ = landsat_bundle(project / "bundle")
    tar_folder(folder, landing / "scene.tar.gz")

    moved = landing_flow(landing="data/landing", repro=False)
    assert sorted(moved) == ["data/landed/quickbird_good.zip", "data/landed/scene.tar.gz"]
    check_rejected(landing, expected)
    assert sorted(p.name for p in landing.iterdir()) == ["rejected"]
    no_partials(landing, landed)
    assert not any(project.rglob("escaped.txt"))

    # Nothing left to block the next run; what was rejected stays where it is.
    assert landing_flow(landing="data/landing", repro=False) == []
    check_rejected(landing, expected)
    stores = ingest_flow(load_config("ingest"))
    assert len(stores) == 2

    # The same bad name again: kept beside the first under a new name, with its own reason.
    (landing / "empty.tar.gz").write_bytes(b"")
    assert landing_flow(landing="data/landing", repro=False) == []
    again = [p for p in (landing / "rejected").iterdir()
             if p.name.startswith("empty-") and p.name.endswith(".tar.gz")]
    assert len(again) == 1 and Path(f"{again[0]}.reason").is_file()


def test_a_delivery_of_a_scene_another_source_made_is_rejected(project, prefect_server):
    from crossdiff_core.ingest import ingest_source
    from flows.landing import landing_flow

    landing = project / "data" / "landing"
    good_delivery(project, "quickbird_a", seed=1)
    ingest_source(project / "quickbird_a.zip", project / "data" / "zarr")
    good_delivery(landing, "quickbird_a", seed=2)  # same scene id, other pixels
    assert landing_flow(landing="data/landing", repro=False) == []
    check_rejected(landing, {"quickbird_a.zip": "already made from another source"})
    # The same content as the store's source lands (the ingest stage will say "already").
    shutil.copy2(project / "quickbird_a.zip", landing / "quickbird_a.zip")
    assert landing_flow(landing="data/landing", repro=False) == ["data/landed/quickbird_a.zip"]


def test_a_multi_sample_file_is_all_or_nothing(project, prefect_server):
    import h5py

    from crossdiff_core.ingest import ingest_source
    from crossdiff_core.io.errors import InvalidContentError
    from flows.landing import landing_flow

    path, _, _ = pancollection_h5(project / "wv3_batch.h5", n_samples=3)
    with h5py.File(path, "r+") as handle:  # the second sample has a NaN pixel
        ms = handle["ms"][...]
        ms[1, 0, 2, 2] = np.nan
        handle["ms"][...] = ms
    out = project / "data" / "zarr"
    for _ in range(2):  # a rerun fails the same way: never "skipped"
        with pytest.raises(InvalidContentError, match="NaN"):
            ingest_source(path, out)
        assert not out.exists() or find_scene_stores_or_none(out) == []
    shutil.copy2(path, project / "data" / "landing" / "wv3_batch.h5")
    assert landing_flow(landing="data/landing", repro=False) == []
    check_rejected(project / "data" / "landing", {"wv3_batch.h5": "NaN"})


def find_scene_stores_or_none(folder: Path) -> list[Path]:
    try:
        return find_scene_stores(folder)
    except ValueError:
        return []


def test_the_landing_deployment_runs_one_at_a_time():
    from flows.commands.serve import deployments

    spec = yaml.safe_load((Path(__file__).parents[1] / "prefect.yaml").read_text())
    (landing,) = [d for d in spec["deployments"] if d["entrypoint"].endswith(":landing_flow")]
    assert landing["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    served = deployments()[0]
    assert served.name == "landing-every-15-min" and served.concurrency_limit == 1
    assert served.concurrency_options.collision_strategy.value == "CANCEL_NEW"


def test_a_run_that_finds_the_schedule_lock_held_leaves_the_arrivals(project, prefect_server):
    from flows.landing import landing_flow
    from tasks.dvc import schedule_lock

    good_delivery(project / "data" / "landing", "quickbird_wait", seed=4)
    with schedule_lock() as held:
        assert held
        assert landing_flow(landing="data/landing", repro=False) == []
    assert (project / "data" / "landing" / "quickbird_wait.zip").is_file()
    assert landing_flow(landing="data/landing", repro=False) == ["data/landed/quickbird_wait.zip"]


@pytest.mark.slow
def test_landing_soak_two_overlapping_runs(project, prefect_server):
    """30 deliveries (5 bad) dropped one by one while two landing runs loop at once: every good
    one lands exactly once, every bad one is in rejected/ with its reason, nothing partial."""
    from flows.ingest import ingest_flow
    from flows.landing import landing_flow
    from flows.params import load_config

    landing, landed = project / "data" / "landing", project / "data" / "landed"
    staging = project / "staging"
    staging.mkdir()
    expected = bad_deliveries(staging)
    for index in range(25):
        good_delivery(staging, f"quickbird_{index:02d}", seed=index)
    deliveries = sorted(p for p in staging.iterdir() if not p.name.startswith("."))
    order = np.random.default_rng(0).permutation(len(deliveries))
    dropped = threading.Event()
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def drop() -> None:
        for index in order:
            os.rename(deliveries[index], landing / deliveries[index].name)
            dropped.wait(0.05)
        dropped.set()

    rounds = {"first": 0, "second": 0}

    def run(which: str) -> None:
        try:
            while True:
                finished = dropped.is_set()
                results.append(landing_flow(landing="data/landing", repro=False))
                rounds[which] += 1
                if finished:
                    return
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=drop), threading.Thread(target=run, args=("first",)),
               threading.Thread(target=run, args=("second",))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    assert not errors, errors
    assert min(rounds.values()) >= 2, rounds  # both kept firing while deliveries arrived
    results.append(landing_flow(landing="data/landing", repro=False))  # whatever waited
    moved = [path for result in results for path in result]
    good = {f"quickbird_{index:02d}.zip" for index in range(25)}
    assert sorted(moved) == sorted(f"data/landed/{name}" for name in good)  # each once
    assert {p.name for p in landed.iterdir()} == good | {".gitkeep"}
    check_rejected(landing, expected)
    assert sorted(p.name for p in landing.iterdir()) == ["rejected"]
    no_partials(landing, landed)
    assert len(ingest_flow(load_config("ingest"))) == 25
