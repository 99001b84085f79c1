"""Tasks retry transient I/O failures only; a full disk is reported as one, naming the folder."""

from __future__ import annotations

import errno
import shutil
import tarfile
import tempfile
import zipfile

import pytest
from ingest_helpers import landsat_bundle, tar_folder, zip_folder
from prefect import flow, task

from crossdiff_core.ingest import ingest_source
from crossdiff_core.io.errors import IngestError, NoSpaceError
from tasks.retry import io_retries, is_transient


def _flaky(error: Exception, failures: int):
    calls = []

    @task(**{**io_retries(2), "retry_delay_seconds": 0})
    def step() -> int:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return len(calls)

    return step, calls


@pytest.mark.parametrize(
    ("error", "retried"),
    [(OSError(errno.EBUSY, "share busy"), True), (TimeoutError("object store"), True),
     (FileNotFoundError("gone.tif"), False), (PermissionError(errno.EACCES, "out/"), False),
     (OSError(errno.ENOSPC, "disk full"), False), (ValueError("gone.tif: not a scene"), False)],
)
def test_only_transient_io_errors_are_retried(prefect_server, error, retried):
    step, calls = _flaky(error, failures=1)

    @flow
    def run() -> int:
        return step()

    if retried:
        assert run() == 2
    else:
        with pytest.raises(type(error)):
            run()
        assert len(calls) == 1


@pytest.mark.parametrize(
    "error",
    [TimeoutError("read timed out"), ConnectionResetError("peer"), ConnectionRefusedError(),
     BlockingIOError(errno.EAGAIN, "scene being ingested"), InterruptedError(),
     OSError(errno.EAGAIN, "try again"), OSError(errno.EBUSY, "busy"),
     OSError(errno.EINTR, "interrupted"), OSError(errno.ETIMEDOUT, "timed out"),
     OSError(errno.ESTALE, "stale NFS handle"), OSError(errno.ECONNRESET, "reset")],
    ids=repr,
)
def test_transient(error):
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [FileNotFoundError(errno.ENOENT, "gone"), FileExistsError(errno.EEXIST, "exists"),
     PermissionError(errno.EACCES, "denied"), NotADirectoryError(errno.ENOTDIR, "not a dir"),
     IsADirectoryError(errno.EISDIR, "a dir"), OSError(errno.ENOSPC, "full"),
     NoSpaceError(errno.ENOSPC, "full"), OSError(errno.EIO, "I/O error"), OSError("no errno"),
     ValueError("bad input"), IngestError("x.tar: corrupt"), RuntimeError("NaN loss"),
     KeyboardInterrupt()],
    ids=repr,
)
def test_not_transient(error):
    assert not is_transient(error)


# A full disk is not a corrupt archive.


@pytest.fixture(params=["tar", "zip"])
def archive(request, tmp_path):
    folder, _, _ = landsat_bundle(tmp_path / "bundle")
    if request.param == "tar":
        return tar_folder(folder, tmp_path / "scene.tar.gz")
    return zip_folder(folder, tmp_path / "scene.zip")


def test_disk_full_while_extracting_names_the_folder(archive, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extractall", full)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", full)
    with pytest.raises(NoSpaceError) as caught:
        ingest_source(archive, tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"no space left on device in {tempfile.gettempdir()}")
    assert str(archive) in message and "corrupt" not in message and "\n" not in message
    assert caught.value.errno == errno.ENOSPC and not isinstance(caught.value, IngestError)
    assert not is_transient(caught.value)
    assert not list(tmp_path.glob("out/**/*.zarr"))


def test_too_little_space_is_found_before_extracting(archive, tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(NoSpaceError, match=r"no space left on device in .* MB needed"):
        ingest_source(archive, tmp_path / "out")


def test_disk_full_while_writing_a_store_names_the_folder(tmp_path, monkeypatch):
    from ingest_helpers import geotiff_pair

    from crossdiff_core.io import store

    geotiff_pair(tmp_path / "pair")

    def full(self, block, coords):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store._ChunkFiles, "write", full)
    out = tmp_path / "out"
    with pytest.raises(NoSpaceError) as caught:
        ingest_source(tmp_path / "pair", out, sensor="QB")
    assert str(caught.value).startswith(f"no space left on device in {out / 'QuickBird'} while "
                                        f"writing the store of {tmp_path / 'pair'}")
    assert not is_transient(caught.value)
    assert not out.exists()  # no partial store, nor the folders the refused ingest created
