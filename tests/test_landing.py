"""The landing-zone flow ingests a dropped archive once, however often it runs."""

from __future__ import annotations

import pytest
from ingest_helpers import landsat_bundle, tar_folder

from crossdiff_core.io.store import find_scene_stores


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(
        "ingest:\n  out: data/zarr\n  chunk_size: 64\n  sources: []\n  sensor: null\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CROSSDIFF_PARAMS", str(tmp_path / "params.yaml"))
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    return tmp_path


def test_landing_ingests_a_dropped_archive_once(project, prefect_server):
    from flows.landing import landing_flow

    folder, _, _ = landsat_bundle(project / "bundle")
    tar_folder(folder, project / "data" / "landing" / "LC80200392015216LGN00.tar.gz")
    (project / "data" / "landing" / "upload.tar.gz.part").write_bytes(b"partial upload")

    first = landing_flow(landing="data/landing", readapt=False)
    second = landing_flow(landing="data/landing", readapt=False)

    assert len(first) == 1 and second == []
    assert len(find_scene_stores([project / "data" / "zarr"])) == 1
