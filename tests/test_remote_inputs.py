"""GeoTIFF inputs given as URLs: ingested from a local HTTP server (started by the test, with
Range support as GDAL's /vsicurl/ needs), as a pair or through a STAC Item. s3:// and the other
cloud schemes are checked for their translation to GDAL paths only (no network here)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crossdiff_core.ingest import _label, _pair_scene_id, ingest_source, source_sha256, source_uris
from crossdiff_core.io import remote
from crossdiff_core.io.store import open_scene, read_store_attrs
from crossdiff_core.stac import store_item_path
from tests.ingest_helpers import geotiff_pair

SERVER = Path(__file__).with_name("range_server.py")


class _Log:
    """The requests the server logged so far: (method, path, range header or None)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self):
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        return iter(tuple(json.loads(line)) for line in lines)

    def __repr__(self) -> str:
        return repr(list(self))


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(base URL, served folder, request log) of an HTTP server with Range support on
    127.0.0.1, in its own process: GDAL holds the GIL while it opens a URL, so a server thread
    of this process could not answer."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    root = tmp_path / "served"
    root.mkdir()
    log = tmp_path / "requests.jsonl"
    process = subprocess.Popen([sys.executable, str(SERVER), str(root), str(log)],
                               stdout=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}", root, _Log(log)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_remote_pair_is_ingested_like_the_local_pair(server, tmp_path):
    base, root, log = server
    pan, ms, _, _ = geotiff_pair(root / "delivery", ms_shape=(24, 32))
    urls = (f"{base}/delivery/{pan.name}", f"{base}/delivery/{ms.name}")
    result = ingest_source(urls, tmp_path / "remote", sensor="QB", chunk_size=16)
    local = ingest_source((pan, ms), tmp_path / "local", sensor="QB", chunk_size=16)
    got, want = open_scene(result.store), open_scene(local.store)
    np.testing.assert_array_equal(got.pan.values, want.pan.values)
    np.testing.assert_array_equal(got.ms.values, want.ms.values)
    assert got.pan.rio.transform() == want.pan.rio.transform()
    attrs = read_store_attrs(result.store)
    # The streamed sha256 is the bytes' own: the local copy is the same source.
    assert attrs["source_sha256"] == read_store_attrs(local.store)["source_sha256"]
    assert attrs["source_sha256"] == source_sha256((pan, ms))
    assert attrs["source_bytes"] == pan.stat().st_size + ms.stat().st_size
    assert attrs["source_uris"] == list(urls) and attrs["source_name"] == ms.name
    assert result.scene_id == "scene"
    # GDAL read the pixels with range requests; the hash read each file once, whole.
    ranged = [r for r in log if r[0] == "GET" and r[2] and r[1].endswith(".tif")]
    assert ranged, log
    whole = [r for r in log if r[0] == "GET" and not r[2] and r[1].endswith(".tif")]
    assert sorted(r[1] for r in whole) == sorted(f"/delivery/{p.name}" for p in (pan, ms))
    links = json.loads(store_item_path(result.store).read_text())["links"]
    assert [link["href"] for link in links if link["rel"] == "derived_from"] == list(urls)
    # Ingested again: recognised by its sha256 and skipped.
    assert ingest_source(urls, tmp_path / "remote", sensor="QB", chunk_size=16).skipped


def test_remote_stac_item_with_relative_asset_hrefs(server, tmp_path):
    base, root, _ = server
    pan, ms, _, _ = geotiff_pair(root / "items")
    item = {"type": "Feature", "stac_version": "1.1.0", "id": "remote-scene",
            "geometry": None, "properties": {"datetime": "2020-01-02T03:04:05Z"}, "links": [],
            "assets": {"pan": {"href": f"./{pan.name}"}, "ms": {"href": ms.name}}}
    (root / "items" / "item.json").write_text(json.dumps(item))
    url = f"{base}/items/item.json?token=secret"  # the query never lands in the store
    result = ingest_source(url, tmp_path / "zarr", sensor="QB", chunk_size=8)
    attrs = read_store_attrs(result.store)
    assert result.scene_id == "remote-scene"
    assert attrs["source_sha256"] == source_sha256((pan, ms))
    assert attrs["source_uris"] == [f"{base}/items/item.json"]
    assert attrs["stac_item"] == f"{base}/items/item.json"
    assert "secret" not in store_item_path(result.store).read_text()


def test_missing_url_is_one_error_naming_it(server, tmp_path):
    base, root, _ = server
    pan, ms, _, _ = geotiff_pair(root / "d")
    missing = f"{base}/d/no_such_pan.tif"
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        ingest_source((missing, f"{base}/d/{ms.name}"), tmp_path / "zarr", sensor="QB")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{base}/d/gone.json")):
        ingest_source(f"{base}/d/gone.json", tmp_path / "zarr", sensor="QB")
    assert not (tmp_path / "zarr").exists()


def test_cloud_urls_become_gdal_paths():
    # No network here: the translation only. GDAL reads these with its own credentials.
    assert remote.gdal_path("s3://bucket/scene/pan.tif") == "/vsis3/bucket/scene/pan.tif"
    assert remote.gdal_path("gs://bucket/a.tif") == "/vsigs/bucket/a.tif"
    assert remote.gdal_path("https://h/a.tif?x=1") == "/vsicurl/https://h/a.tif?x=1"
    assert remote.gdal_path("/vsis3/b/k.tif") == "/vsis3/b/k.tif"
    for source in ("s3://b/k.tif", "https://h/k.tif", "/vsicurl/http://h/k.tif", "/vsis3/b/k"):
        assert remote.is_remote(source)
    assert not remote.is_remote(Path("s3:/b/k.tif")) and not remote.is_remote("data/k.tif")
    pair = ("s3://bucket/x/scene_P.tif", "s3://bucket/x/scene_MS.tif?X-Amz-Signature=abc")
    assert _pair_scene_id(*pair) == "scene"
    assert _pair_scene_id("https://h/b8.tif", "https://h/mul.tif") == "b8"  # at the root
    assert _pair_scene_id("https://h/d/p.tif", "https://h/d/m.tif") == "d"
    assert source_uris(pair) == ["s3://bucket/x/scene_P.tif", "s3://bucket/x/scene_MS.tif"]
    label = _label(pair)
    assert label == "s3://bucket/x/scene_P.tif + s3://bucket/x/scene_MS.tif"
    assert label.name == "scene_MS.tif"


def test_cloud_files_are_hashed_through_gdal():
    # The GDAL virtual-file reader that hashes s3:// sources, on an in-memory GDAL file.
    from rasterio.io import MemoryFile

    data = np.random.default_rng(0).bytes(5 * remote.BLOCK_BYTES // 2)
    with MemoryFile(data) as memory:
        assert remote.remote_size(memory.name) == len(data)
        assert remote.remote_sha256(memory.name) == hashlib.sha256(data).hexdigest()
    with pytest.raises(FileNotFoundError, match="/vsimem/missing.tif"):
        remote.check_remote("/vsimem/missing.tif")
