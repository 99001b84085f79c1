"""The landing flow moves complete arrivals into data/landed/ (an input of the ingest stage), and
the ingest stage ingests them beside ``ingest.sources``."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from ingest_helpers import landsat_bundle, tar_folder

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
    real_rename = os.rename

    def rename(source, target):
        renames.append((str(source), str(target)))
        if len(renames) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        assert os.path.basename(source).startswith(".")  # the copy, under a hidden name
        real_rename(source, target)

    monkeypatch.setattr(landing_module.os, "rename", rename)
    target = landing_module.land(arrival, project / "data" / "landed")
    assert target == project / "data" / "landed" / "scene.tar.gz"
    assert target.read_bytes() == b"x" * 1000 and not arrival.exists()
    assert len(renames) == 2
