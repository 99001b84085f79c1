"""Every bad input of issue 2: the right error type, the file named in the message, no store."""

import gzip
import io
import shutil
import tarfile
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io
from affine import Affine
from ingest_helpers import geotiff_pair, landsat_bundle, tar_folder, write_geotiff, zip_folder

from crossdiff_core.ingest import ingest_source
from crossdiff_core.io.errors import (
    AlignmentError,
    CorruptInputError,
    InvalidContentError,
    MissingBandError,
    UnknownFormatError,
    UnknownSensorError,
    UnsafeArchiveError,
)
from crossdiff_core.synthetic import synthetic_pair


def refused(source, out, error, match, **kwargs):
    """Ingest must raise ``error`` naming the source, and leave no store (nor temporary one)."""
    with pytest.raises(error, match=match) as caught:
        ingest_source(source, out, chunk_size=16, **kwargs)
    names = [source] if not isinstance(source, tuple) else list(source)
    assert any(str(name) in str(caught.value) or name.name in str(caught.value)
               for name in names), caught.value
    assert not out.exists() or not any(out.rglob("*.zarr*"))


def test_unknown_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    refused(path, tmp_path / "zarr", UnknownFormatError, "not a known format")
    folder = tmp_path / "empty_delivery"
    folder.mkdir()
    refused(folder, tmp_path / "zarr", UnknownFormatError, "no GeoTIFF")


def test_truncated_gzip_and_tar(tmp_path):
    folder, _, _ = landsat_bundle(tmp_path / "bundle")
    archive = tar_folder(folder, tmp_path / "bundle.tar.gz")
    data = archive.read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    refused(truncated, tmp_path / "zarr", CorruptInputError, "corrupt or truncated")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(gzip.compress(b"x" * 10))
    refused(garbage, tmp_path / "zarr", CorruptInputError, "corrupt")


def test_corrupt_zip_and_tiff(tmp_path):
    pan_path, ms_path, _, _ = geotiff_pair(tmp_path / "delivery")
    archive = zip_folder(tmp_path / "delivery", tmp_path / "delivery.zip")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(archive.read_bytes()[:300])
    refused(broken, tmp_path / "zarr", CorruptInputError, "corrupt")
    data = ms_path.read_bytes()
    ms_path.write_bytes(data[: len(data) // 2])
    refused((pan_path, ms_path), tmp_path / "zarr", CorruptInputError, "GeoTIFF", sensor="QB")


def test_corrupt_hdf5_and_mat(tmp_path):
    h5 = tmp_path / "bad.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)
    refused(h5, tmp_path / "zarr", CorruptInputError, "HDF5", sensor="WV3")
    mat = tmp_path / "bad.mat"
    mat.write_bytes(b"MATLAB 5.0 MAT-file" + b"\1" * 200)
    refused(mat, tmp_path / "zarr", CorruptInputError, r"\.mat")


def _tar_with(tmp_path, member: tarfile.TarInfo, payload: bytes = b"") -> object:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        tar.addfile(member, io.BytesIO(payload) if payload else None)
    return archive


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_archive_members_escaping(tmp_path, kind):
    member = tarfile.TarInfo({"dotdot": "../../escape.txt", "absolute": "/tmp/escape.txt"}.get(
        kind, "member"))
    payload = b""
    if kind in ("dotdot", "absolute"):
        payload = b"boom"
        member.size = len(payload)
    elif kind == "symlink":
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        member.type, member.linkname = tarfile.LNKTYPE, "/etc/passwd"
    else:
        member.type = tarfile.CHRTYPE
    archive = _tar_with(tmp_path, member, payload)
    refused(archive, tmp_path / "zarr", UnsafeArchiveError, "refused")
    assert not (tmp_path.parent / "escape.txt").exists()


def test_zip_member_escaping(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../escape.txt", "boom")
    refused(archive, tmp_path / "zarr", UnsafeArchiveError, "escapes")


def test_missing_bands(tmp_path):
    folder, _, _ = landsat_bundle(tmp_path / "no_pan", skip_band=8)
    refused(folder, tmp_path / "zarr", MissingBandError, "B8 is missing")
    folder, _, _ = landsat_bundle(tmp_path / "no_red", skip_band=4)
    refused(folder, tmp_path / "zarr", MissingBandError, "B4 is missing")
    pan_path, ms_path, _, _ = geotiff_pair(tmp_path / "pair")
    ms_path.unlink()
    refused(tmp_path / "pair", tmp_path / "zarr", MissingBandError, "MS", sensor="QB")


def _pair(tmp_path, pan_t, ms_t, pan_crs="EPSG:32616", ms_crs="EPSG:32616"):
    pan, ms = synthetic_pair("QB", (8, 8))
    return (write_geotiff(tmp_path / "p.tif", pan, pan_t, pan_crs),
            write_geotiff(tmp_path / "m.tif", ms, ms_t, ms_crs))


MS_GRID = Affine(2.0, 0.0, 1000.0, 0.0, -2.0, 5000.0)


def test_crs_mismatch(tmp_path):
    source = _pair(tmp_path, Affine(0.5, 0, 1000.0, 0, -0.5, 5000.0), MS_GRID,
                   ms_crs="EPSG:32617")
    refused(source, tmp_path / "zarr", AlignmentError, "CRS mismatch", sensor="QB")


def test_no_overlap(tmp_path):
    source = _pair(tmp_path, Affine(0.5, 0, 9000.0, 0, -0.5, 5000.0), MS_GRID)
    refused(source, tmp_path / "zarr", AlignmentError, "do not overlap", sensor="QB")


def test_non_integer_ratio(tmp_path):
    source = _pair(tmp_path, Affine(0.6, 0, 1000.0, 0, -0.6, 5000.0), MS_GRID)
    refused(source, tmp_path / "zarr", AlignmentError, "non-integer resolution ratio",
            sensor="QB")


def test_fractional_offset(tmp_path):
    source = _pair(tmp_path, Affine(0.5, 0, 999.9, 0, -0.5, 5000.0), MS_GRID)
    refused(source, tmp_path / "zarr", AlignmentError, "fractional offset", sensor="QB")


@pytest.mark.parametrize("fill", ["nodata", "constant_pan", "constant_band", "nan"])
def test_all_nodata_constant_or_nan(tmp_path, fill):
    dtype = "float32" if fill == "nan" else "uint16"
    pan_path, ms_path, pan, ms = geotiff_pair(tmp_path / "d", pan_margin=(0, 0, 0, 0),
                                              dtype=dtype, nodata=0)
    if fill == "nodata":
        pan, ms = np.zeros_like(pan), np.zeros_like(ms)
    elif fill == "constant_pan":
        pan = np.full_like(pan, 700)
    elif fill == "constant_band":
        ms[2] = 5
    else:
        pan[3, 3] = np.nan
    write_geotiff(pan_path, pan, Affine(0.5, 0, 400_000.0, 0, -0.5, 4_000_000.0), nodata=0)
    write_geotiff(ms_path, ms, Affine(2.0, 0, 400_000.0, 0, -2.0, 4_000_000.0), nodata=0)
    match = {"nodata": "entirely nodata", "constant_pan": "PAN is constant",
             "constant_band": "band 'red' is constant", "nan": "NaN"}[fill]
    refused((pan_path, ms_path), tmp_path / "zarr", InvalidContentError, match, sensor="QB")


def test_unknown_sensor(tmp_path):
    pan_path, ms_path, _, _ = geotiff_pair(tmp_path / "d")
    refused((pan_path, ms_path), tmp_path / "zarr", UnknownSensorError, "pass --sensor")
    refused((pan_path, ms_path), tmp_path / "zarr", UnknownSensorError, "unknown sensor",
            sensor="Pleiades")
    refused((pan_path, ms_path), tmp_path / "zarr", AlignmentError, "sensor's is 2",
            sensor="L8")


def test_mat_missing_keys_and_inconsistent_shapes(tmp_path):
    pan, ms = synthetic_pair("IKONOS", (8, 8))
    no_ms = tmp_path / "no_ms.mat"
    scipy.io.savemat(no_ms, {"I_PAN": pan, "sensor": "IKONOS"})
    refused(no_ms, tmp_path / "zarr", InvalidContentError, "I_MS")
    no_pan = tmp_path / "no_pan.mat"
    scipy.io.savemat(no_pan, {"I_MS": np.moveaxis(ms, 0, -1), "sensor": "IKONOS"})
    refused(no_pan, tmp_path / "zarr", InvalidContentError, "I_PAN")
    bad_shape = tmp_path / "bad_shape.mat"
    scipy.io.savemat(bad_shape, {"I_PAN": pan[:30], "I_MS": np.moveaxis(ms, 0, -1),
                                 "sensor": "IKONOS", "ratio": 4})
    refused(bad_shape, tmp_path / "zarr", InvalidContentError, "inconsistent shapes")


def test_h5_missing_keys_and_inconsistent_shapes(tmp_path):
    missing = tmp_path / "missing_wv3.h5"
    with h5py.File(missing, "w") as handle:
        handle["ms"] = np.ones((1, 8, 4, 4))
    refused(missing, tmp_path / "zarr", InvalidContentError, "'pan' is missing")
    shapes = tmp_path / "shapes_wv3.h5"
    with h5py.File(shapes, "w") as handle:
        handle["ms"] = np.ones((2, 8, 4, 4))
        handle["pan"] = np.ones((2, 1, 15, 16))
    refused(shapes, tmp_path / "zarr", InvalidContentError, "inconsistent shapes")


def test_single_geotiff_is_not_a_scene(tmp_path):
    pan_path, _, _, _ = geotiff_pair(tmp_path / "d")
    refused(pan_path, tmp_path / "zarr", UnknownFormatError, "single GeoTIFF")
    shutil.rmtree(tmp_path / "d")


def _nothing_left(out):
    """A refused source leaves no store, no partial and no folder it created."""
    assert not out.exists(), sorted(out.rglob("*"))


def test_empty_and_truncated_mat(tmp_path):
    from ingest_helpers import grip_mat

    empty = tmp_path / "empty.mat"
    empty.write_bytes(b"")
    refused(empty, tmp_path / "zarr", CorruptInputError, r"empty\.mat: empty \.mat file")
    _nothing_left(tmp_path / "zarr")
    good, _, _ = grip_mat(tmp_path / "good.mat")
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(good.read_bytes()[:200])
    refused(truncated, tmp_path / "zarr", CorruptInputError, "corrupt or unreadable .mat")
    _nothing_left(tmp_path / "zarr")


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_mat_larger_than_memory_is_refused_before_reading(tmp_path, monkeypatch, version):
    from ingest_helpers import grip_mat

    import crossdiff_core.io.matfile as matfile

    path, _, _ = grip_mat(tmp_path / f"v{version}.mat", version=version)
    monkeypatch.setattr(matfile, "available_memory", lambda: 1000)
    refused(path, tmp_path / "zarr", InvalidContentError, r"GiB in memory .* is available")
    _nothing_left(tmp_path / "zarr")
    monkeypatch.setattr(matfile, "available_memory", lambda: None)  # unknown: read it
    assert ingest_source(path, tmp_path / "zarr", chunk_size=16).store.is_dir()


def test_mat_reads_only_the_scene_variables(tmp_path):
    from ingest_helpers import grip_mat

    from crossdiff_core.io.matfile import load_mat

    path, _, _ = grip_mat(tmp_path / "extra.mat")
    contents = scipy.io.loadmat(path)
    contents["I_MS_upsampled"] = np.zeros((40, 32, 4))
    scipy.io.savemat(path, {k: v for k, v in contents.items() if not k.startswith("__")})
    assert set(load_mat(path)) == {"I_PAN", "I_MS", "sensor", "ratio", "L"}


def test_nan_with_nan_nodata_gets_advice_it_does_not_already_follow(tmp_path):
    pan_path, ms_path, pan, ms = geotiff_pair(tmp_path / "d", pan_margin=(0, 0, 0, 0),
                                              dtype="float32")
    pan[3, 3] = np.nan
    write_geotiff(pan_path, pan, Affine(0.5, 0, 400_000.0, 0, -0.5, 4_000_000.0),
                  nodata=float("nan"))
    write_geotiff(ms_path, ms, Affine(2.0, 0, 400_000.0, 0, -2.0, 4_000_000.0),
                  nodata=float("nan"))
    with pytest.raises(InvalidContentError) as caught:
        ingest_source((pan_path, ms_path), tmp_path / "zarr", chunk_size=16, sensor="QB")
    message = str(caught.value)
    assert "nodata value is NaN too" in message and "-dstnodata" in message
    assert "give the file a nodata value" not in message and "\n" not in message
    _nothing_left(tmp_path / "zarr")
