"""STAC Items beside scene stores and pansharpened outputs, validated offline with pystac's
JSON-schema validator (the extension schemas ship in tests/data/stac-schemas, see its README), and
STAC Items as ingest sources."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pystac
import pytest
from pystac.errors import STACValidationError
from pystac.stac_io import DefaultStacIO
from pystac.validation import JsonSchemaSTACValidator
from rasterio.warp import transform as warp_points

from crossdiff_core.atomic import owner_tag
from crossdiff_core.ingest import ingest_source, source_sha256
from crossdiff_core.io.errors import MissingBandError
from crossdiff_core.io.integrity import verify_store
from crossdiff_core.io.store import find_scene_stores, open_scene, read_store_attrs
from crossdiff_core.stac import (
    output_item,
    store_item_path,
    write_output_item,
    write_store_item,
)
from tests.ingest_helpers import geotiff_pair

SCHEMA_DIR = Path(__file__).parent / "data" / "stac-schemas"
SCHEMAS = {
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json": "eo-v1.1.0.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json": "projection-v2.0.0.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json": "raster-v1.1.0.json",
    "https://stac-extensions.github.io/processing/v1.0.0/schema.json": "processing-v1.0.0.json",
    "https://proj.org/schemas/v0.7/projjson.schema.json": "projjson-v0.7.json",
}


class _NoNetworkStacIO(DefaultStacIO):
    def read_text_from_href(self, href: str) -> str:
        if "://" in href:
            raise AssertionError(f"the validator tried to fetch {href}")
        return super().read_text_from_href(href)


@pytest.fixture
def validate(monkeypatch):
    """``validate(item_dict)``: pystac's JsonSchemaSTACValidator on local schemas only."""
    monkeypatch.setattr(pystac.StacIO, "_default_io", _NoNetworkStacIO)
    validator = JsonSchemaSTACValidator()
    for url, name in SCHEMAS.items():
        validator.schema_cache[url] = json.loads((SCHEMA_DIR / name).read_text())

    def run(data: dict) -> list:
        item = pystac.Item.from_dict(copy.deepcopy(data), preserve_dict=False)
        checked = item.validate(validator=validator)
        # The core schema and one per extension: nothing was skipped.
        assert len(checked) == 1 + len(data["stac_extensions"]), checked
        return checked

    return run


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("stac")
    pan, ms, _, _ = geotiff_pair(base / "in", ms_shape=(12, 16), nodata=0)
    return ingest_source((pan, ms), base / "zarr", sensor="QB", chunk_size=8).store


def test_every_ingested_store_gets_a_valid_item_beside_it(store, validate):
    path = store_item_path(store)
    assert path == store.with_name(store.name + ".stac.json") and path.is_file()
    data = json.loads(path.read_text())
    validate(data)
    attrs = read_store_attrs(store)
    scene = open_scene(store)
    props = data["properties"]
    assert data["id"] == attrs["scene_id"]
    assert props["proj:code"] == "EPSG:32616"
    assert props["proj:shape"] == list(scene.pan.shape)
    assert props["proj:transform"] == list(scene.pan.rio.transform())[:6]
    assert props["processing:software"] == {"crossdiff": attrs["software_version"]}
    assert props["crossdiff:source_sha256"] == attrs["source_sha256"]
    assert props["gsd"] == 0.5
    # bbox in WGS84 from the PAN grid's corners.
    left, bottom, right, top = scene.pan.rio.bounds()
    lon, lat = warp_points("EPSG:32616", "EPSG:4326", [left, right, right, left],
                           [top, top, bottom, bottom])
    np.testing.assert_allclose(data["bbox"], [min(lon), min(lat), max(lon), max(lat)],
                               atol=1e-8)
    assert data["geometry"]["type"] == "Polygon"
    ring = np.array(data["geometry"]["coordinates"][0])
    assert (ring[0] == ring[-1]).all() and len(ring) == 9
    x, y = ring[:, 0], ring[:, 1]
    assert np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]) > 0  # counter-clockwise (RFC 7946)
    ms_asset = data["assets"]["ms"]
    assert ms_asset["href"] == f"./{store.name}/ms" and ms_asset["type"] == "application/vnd+zarr"
    assert [b["common_name"] for b in ms_asset["eo:bands"]] == ["blue", "green", "red", "nir"]
    assert ms_asset["eo:bands"][0]["center_wavelength"] > 0.4  # QuickBird's blue, in µm
    assert ms_asset["proj:shape"] == list(scene.ms.shape[1:])
    raster = ms_asset["raster:bands"][0]
    assert raster["data_type"] == "uint16" and raster["nodata"] == 0
    assert raster["spatial_resolution"] == 2.0
    assert data["assets"]["pan"]["eo:bands"] == [{"name": "pan", "common_name": "pan"}]
    links = [link for link in data["links"] if link["rel"] == "derived_from"]
    assert [Path(link["href"]).name for link in links] == ["scene_pan.tif", "scene_mul.tif"]
    for link in links:  # relative to the Item, so the folder can move as a whole
        assert (path.parent / link["href"]).resolve().is_file()


def test_validator_refuses_a_broken_item(store, validate):
    data = json.loads(store_item_path(store).read_text())
    broken = copy.deepcopy(data)
    broken["assets"]["ms"]["raster:bands"][0]["data_type"] = "uint17"  # raster extension
    with pytest.raises(STACValidationError, match="raster"):
        validate(broken)
    broken = copy.deepcopy(data)
    broken["properties"]["proj:shape"] = "48x64"  # projection extension
    with pytest.raises(STACValidationError):
        validate(broken)
    broken = copy.deepcopy(data)
    del broken["properties"]["processing:software"], broken["properties"]["processing:lineage"]
    with pytest.raises(STACValidationError, match="processing"):
        validate(broken)


def test_sidecar_is_no_store_and_leaves_verify_and_force_alone(tmp_path):
    pan, ms, _, _ = geotiff_pair(tmp_path / "in")
    out = tmp_path / "zarr"
    result = ingest_source((pan, ms), out, sensor="QB", chunk_size=8)
    item = store_item_path(result.store)
    assert find_scene_stores(out) == [result.store]  # the Item is not taken for a store
    assert verify_store(result.store).ok
    # A store ingested before Items existed gets one when its source is skipped, and so does
    # one whose Item describes an earlier store (a run killed between the two).
    item.unlink()
    again = ingest_source((pan, ms), out, sensor="QB", chunk_size=8)
    assert again.skipped and item.is_file()
    data = json.loads(item.read_text())
    item.write_text(json.dumps({**data, "properties": {
        **data["properties"], "crossdiff:source_sha256": "0" * 64}}))
    assert ingest_source((pan, ms), out, sensor="QB", chunk_size=8).skipped
    rewritten = json.loads(item.read_text())["properties"]["crossdiff:source_sha256"]
    assert rewritten == data["properties"]["crossdiff:source_sha256"] != "0" * 64
    # --force rewrites store and Item; the killed writer's temporary Item is swept.
    stale = item.with_name(f".{item.name}.p999999h{owner_tag()[-6:]}-0123abcd.tmp")
    stale.write_text("{")
    before = item.stat().st_mtime_ns
    ingest_source((pan, ms), out, sensor="QB", chunk_size=8, force=True)
    assert item.stat().st_mtime_ns != before and json.loads(item.read_text())["id"] == "scene"
    assert not stale.exists()
    assert verify_store(result.store).ok


def test_output_item_of_a_cog_and_a_zarr_output(tmp_path, validate):
    from crossdiff_core.infer import load_fuser, pansharpen_scene

    pan, ms, _, _ = geotiff_pair(tmp_path / "in", ms_shape=(12, 16))
    store = ingest_source((pan, ms), tmp_path / "zarr", sensor="QB", chunk_size=8).store
    scene = open_scene(store)
    fuser = load_fuser("mtf_glp_hpm", scene, "cpu")
    provenance = {
        "method": "mtf_glp_hpm", "model": "mtf_glp_hpm", "model_version": None,
        "inputs": {"scene": {"path": str(store), "sha256": "ab" * 32}},
        "software_version": "0.1.0", "parameters": {"tile": 64}, "clipped_pixels": 3,
    }
    for fmt, name in (("cog", "fused.tif"), ("zarr", "fused.zarr")):
        out = pansharpen_scene(scene, fuser, tmp_path / name, fmt=fmt, progress=False)
        path = write_output_item(out, provenance)
        assert path == Path(out).with_name(Path(out).name + ".stac.json")
        data = json.loads(path.read_text())
        validate(data)
        props = data["properties"]
        assert props["proj:shape"] == list(scene.pan.shape) and props["proj:code"] == "EPSG:32616"
        assert props["crossdiff:method"] == "mtf_glp_hpm" and props["crossdiff:clipped_pixels"] == 3
        assert props["processing:software"] == {"crossdiff": "0.1.0"}
        asset = data["assets"]["data"]
        assert [b["name"] for b in asset["eo:bands"]] == ["blue", "green", "red", "nir"]
        assert asset["raster:bands"][0]["data_type"] == "uint16"
        (link,) = [link for link in data["links"] if link["rel"] == "derived_from"]
        assert link["crossdiff:sha256"] == "ab" * 32
        assert (Path(out).parent / link["href"]).resolve() == store.resolve()
    # Missing provenance keys are left out, not invented.
    bare = output_item(tmp_path / "fused.tif", {}).to_dict()
    assert "crossdiff:method" not in bare["properties"]
    assert not [link for link in bare["links"] if link["rel"] == "derived_from"]


def _item(folder: Path, assets: dict, item_id: str = "stac-scene") -> Path:
    data = {
        "type": "Feature", "stac_version": "1.1.0", "id": item_id,
        "geometry": None, "properties": {"datetime": "2021-03-04T05:06:07Z",
                                          "platform": "quickbird"},
        "links": [], "assets": assets,
    }
    path = folder / "item.json"
    path.write_text(json.dumps(data))
    return path


def test_stac_item_source_is_the_pair_it_lists(tmp_path):
    pan, ms, _, _ = geotiff_pair(tmp_path / "in")
    tif = "image/tiff; application=geotiff"
    item = _item(tmp_path / "in", {
        "thumbnail": {"href": "thumb.png", "type": "image/png"},
        "pan": {"href": pan.name, "type": tif}, "ms": {"href": ms.name, "type": tif}})
    result = ingest_source(str(item), tmp_path / "zarr", chunk_size=8)  # sensor: the platform
    attrs = read_store_attrs(result.store)
    assert result.scene_id == "stac-scene" and result.sensor == "QuickBird"
    assert attrs["acquisition_time"].startswith("2021-03-04T05:06:07")
    # Its identity is the pair's: ingesting the pair itself afterwards is recognised.
    assert attrs["source_sha256"] == source_sha256((pan, ms)) == source_sha256(item)
    data = json.loads(store_item_path(result.store).read_text())
    assert data["properties"]["datetime"] == "2021-03-04T05:06:07Z"
    assert data["properties"]["crossdiff:datetime_is"] == "acquisition"


@pytest.mark.parametrize("style", ["roles", "bands"])
def test_stac_item_assets_found_by_roles_or_bands(tmp_path, style):
    pan, ms, _, _ = geotiff_pair(tmp_path / "in")
    if style == "roles":
        assets = {"a": {"href": str(pan), "roles": ["data", "panchromatic"]},
                  "b": {"href": str(ms), "roles": ["data", "multispectral"]}}
    else:
        assets = {"b8": {"href": os.path.relpath(pan, tmp_path / "in"),
                         "eo:bands": [{"name": "B8", "common_name": "pan"}]},
                  "bgrn": {"href": ms.name, "eo:bands": [{"name": n} for n in "bgrn"]}}
    item = _item(tmp_path / "in", assets)
    result = ingest_source(item, tmp_path / "zarr", sensor="QB", chunk_size=8)
    np.testing.assert_array_equal(open_scene(result.store).ms.shape, (4, 12, 16))


def test_stac_item_without_a_recognisable_pair_is_refused_naming_it(tmp_path):
    pan, ms, _, _ = geotiff_pair(tmp_path / "in")
    item = _item(tmp_path / "in", {"one": {"href": pan.name}, "two": {"href": ms.name}})
    with pytest.raises(MissingBandError, match=r"item\.json: cannot tell which GeoTIFF asset"):
        ingest_source(item, tmp_path / "zarr", sensor="QB", chunk_size=8)
    missing = _item(tmp_path / "in", {"pan": {"href": "gone_pan.tif"}, "ms": {"href": ms.name}})
    with pytest.raises(FileNotFoundError, match="gone_pan.tif"):
        ingest_source(missing, tmp_path / "zarr", sensor="QB", chunk_size=8)
    assert not (tmp_path / "zarr").exists()


def test_write_store_item_can_be_called_on_its_own(store, tmp_path):
    path = write_store_item(store)  # links from the store's source_uris
    data = json.loads(path.read_text())
    assert len([link for link in data["links"] if link["rel"] == "derived_from"]) == 2
