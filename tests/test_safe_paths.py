"""Names taken from input metadata never make a path outside ``--out``."""

from __future__ import annotations

import os

import pytest
from ingest_helpers import grip_mat, landsat_bundle, tar_folder

from crossdiff_core.ingest import ingest_source
from crossdiff_core.io.errors import IngestError
from crossdiff_core.io.names import MAX_NAME_LENGTH, UnsafePathError, inside, safe_name
from crossdiff_core.io.store import open_scene, store_path


@pytest.mark.parametrize(
    ("name", "expected"),
    [("LC08_L1TP_020039_20150804_20200908_02_T1", "LC08_L1TP_020039_20150804_20200908_02_T1"),
     ("scene-1.v2", "scene-1.v2"), ("_x", "_x"), ("a..b", "a..b"),
     ("../../ESCAPED", "ESCAPED"), ("/etc/passwd", "_etc_passwd"), ("a/../b", "a_.._b"),
     ("..\\..\\win", "win"), (".hidden", "hidden"), ("-rf", "rf"), ("my scene (1)", "my_scene_1_"),
     ("a\x00b\nc", "a_b_c"), ("scène", "sc_ne")],
)
def test_safe_name_keeps_safe_names_and_reduces_others(name, expected):
    assert safe_name(name) == expected
    assert safe_name(expected) == expected


@pytest.mark.parametrize("name", ["", ".", "..", "../..", "///", "._-", "é"])
def test_names_with_nothing_usable_are_refused(name):
    with pytest.raises(ValueError, match="scene id"):
        safe_name(name, "scene id")


def test_long_names_are_capped_and_stay_distinct():
    first, second = safe_name("a" * 300 + "1"), safe_name("a" * 300 + "2")
    assert len(first) == len(second) == MAX_NAME_LENGTH
    assert first != second and safe_name(first) == first


def test_inside(tmp_path):
    assert inside(tmp_path, tmp_path / "a" / "b.zarr") == tmp_path / "a" / "b.zarr"
    for escaping in (tmp_path / "a" / ".." / ".." / "x", tmp_path.parent, tmp_path):
        with pytest.raises(UnsafePathError):
            inside(tmp_path, escaping)


def test_store_path_cannot_escape(tmp_path):
    out = tmp_path / "out"
    assert store_path(out, "Landsat-8", "../../ESCAPED") == out / "Landsat-8" / "ESCAPED.zarr"
    assert store_path(out, "../x", "s") == out / "x" / "s.zarr"
    with pytest.raises(ValueError):
        store_path(out, "..", "s")


def _hostile_landsat(tmp_path, scene_id: str):
    folder, _, _ = landsat_bundle(tmp_path / "bundle")
    mtl = next(folder.glob("*_MTL.txt"))
    text = mtl.read_text().replace('LANDSAT_SCENE_ID = "LC80200392015216LGN00"',
                                   f'LANDSAT_SCENE_ID = "{scene_id}"')
    assert scene_id in text
    mtl.write_text(text)
    return tar_folder(folder, tmp_path / "hostile.tar.gz")


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, dirs, files in os.walk(root) for f in files + dirs)


def test_hostile_mtl_writes_nothing_outside_out(tmp_path):
    archive = _hostile_landsat(tmp_path, "../../ESCAPED")
    work = tmp_path / "work"
    out = work / "deep" / "out"
    out.mkdir(parents=True)
    # What the unsanitised path out/Landsat-8/../../ESCAPED.zarr reaches: a folder --force
    # would have replaced.
    decoy = work / "deep" / "ESCAPED.zarr"
    decoy.mkdir()
    (decoy / "keep.txt").write_text("not yours")
    before = _tree(tmp_path)

    result = ingest_source(archive, out)
    assert result.store == out / "Landsat-8" / "ESCAPED.zarr"
    assert open_scene(result.store).attrs["scene_id"] == "ESCAPED"
    for _ in range(2):
        again = ingest_source(archive, out, force=True)
        assert again.store == result.store and not again.skipped

    assert (decoy / "keep.txt").read_text() == "not yours"
    after = _tree(tmp_path)
    new = [p for p in after if p not in before]
    assert new and all(p.startswith(os.path.join("work", "deep", "out")) for p in new), new
    assert sorted(os.listdir(out / "Landsat-8")) == ["ESCAPED.zarr", "ESCAPED.zarr.stac.json"]


def test_scene_id_with_nothing_usable_is_refused_naming_the_file(tmp_path):
    archive = _hostile_landsat(tmp_path, "../..")
    out = tmp_path / "out"
    with pytest.raises(IngestError, match="hostile.tar.gz.*scene id"):
        ingest_source(archive, out)
    assert not out.exists() or not any(out.rglob("*.zarr"))


def test_file_names_with_odd_characters_become_safe_scene_ids(tmp_path):
    path, _, _ = grip_mat(tmp_path / "my scene (1).mat")
    result = ingest_source(path, tmp_path / "out")
    assert result.scene_id == "my_scene_1_"
    assert result.store == tmp_path / "out" / "IKONOS" / "my_scene_1_.zarr"
