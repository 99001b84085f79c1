"""Safe extraction of tar, tar.gz and zip archives into a private temporary folder.

Every member is checked before anything is written: absolute paths, ``..`` components, symbolic or
hard links and device or FIFO entries are refused (UnsafeArchiveError naming the member), so an
archive can never write outside the folder it is extracted into.

A full disk is not a damaged archive: it raises ``NoSpaceError`` naming the folder (checked
before extracting, from the members' sizes, and again if the disk fills while extracting). The
temporary folder names its owner process (``crossdiff-extract-p<pid>h<host>-*``): folders left by
killed runs are removed by the next extraction, never one a live process is using.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from crossdiff_core.atomic import owner_alive, owner_tag
from crossdiff_core.io.errors import (
    CorruptInputError,
    NoSpaceError,
    UnsafeArchiveError,
    is_no_space,
    no_space_error,
)

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
ZIP_SUFFIXES = (".zip",)
EXTRACT_PREFIX = "crossdiff-extract-"
_EXTRACTED = re.compile(rf"^{EXTRACT_PREFIX}p(?P<pid>\d+)h(?P<host>[0-9a-f]{{6}})-")


def archive_kind(path: Path) -> str | None:
    """``"tar"`` or ``"zip"`` from the file name, or None when ``path`` is not an archive."""
    name = path.name.lower()
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    return None


def _check_member_name(archive: Path, name: str) -> None:
    member = PurePosixPath(name.replace("\\", "/"))
    if member.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refused")
    if ".." in member.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} escapes the archive folder; refused")


def _check_space(archive: Path, dest: Path, needed: int) -> None:
    """NoSpaceError unless ``dest`` has room for ``needed`` bytes (the members' sizes)."""
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise no_space_error(dest, f"extracting {archive} ({needed / 1e6:.1f} MB needed, "
                             f"{free / 1e6:.1f} MB free; set TMPDIR to a larger folder)")


@contextlib.contextmanager
def _extraction_errors(archive: Path, dest: Path, format_errors: tuple[type[Exception], ...]):
    """Translate what extracting ``archive`` into ``dest`` raises: a full disk is a NoSpaceError
    naming the folder; other I/O errors and the format's own errors (``format_errors``) mean a
    corrupt or truncated archive."""
    try:
        yield
    except NoSpaceError:
        raise
    except OSError as error:
        if is_no_space(error):
            raise no_space_error(dest, f"extracting {archive}") from error
        raise CorruptInputError(f"{archive}: corrupt or truncated archive ({error})") from error
    except (*format_errors, EOFError) as error:
        raise CorruptInputError(f"{archive}: corrupt or truncated archive ({error})") from error


def _extract_tar(archive: Path, dest: Path) -> None:
    with _extraction_errors(archive, dest, (tarfile.TarError,)), \
            tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member_name(archive, member.name)
            if member.issym() or member.islnk():
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} is a link; refused"
                )
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} is a device or special file; refused"
                )
        _check_space(archive, dest, sum(member.size for member in members))
        # Members were vetted above; the 'data' filter is a second, standard-library guard.
        tar.extractall(dest, members=members, filter="data")


def _extract_zip(archive: Path, dest: Path) -> None:
    with _extraction_errors(archive, dest, (zipfile.BadZipFile,)), \
            zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            _check_member_name(archive, info.filename)
            mode = info.external_attr >> 16
            file_type = mode & 0o170000
            if file_type not in (0, 0o100000, 0o040000):
                raise UnsafeArchiveError(
                    f"{archive}: member {info.filename!r} is a link or special file; refused"
                )
        bad = bundle.testzip()
        if bad is not None:
            raise CorruptInputError(f"{archive}: member {bad!r} fails its CRC check")
        _check_space(archive, dest, sum(info.file_size for info in bundle.infolist()))
        bundle.extractall(dest)


class ExtractedArchive:
    """Context manager: extracts ``archive`` into a fresh private folder, removed on exit."""

    def __init__(self, archive: str | Path) -> None:
        self.archive = Path(archive)
        self.folder: Path | None = None

    def __enter__(self) -> Path:
        kind = archive_kind(self.archive)
        if kind is None:
            raise ValueError(f"{self.archive} is not a tar, tar.gz or zip archive")
        remove_stale_extractions()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{EXTRACT_PREFIX}{owner_tag()}-"))
        try:
            (_extract_tar if kind == "tar" else _extract_zip)(self.archive, self.folder)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        return self.folder

    def __exit__(self, *exc_info) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def remove_stale_extractions(folder: str | Path | None = None) -> list[Path]:
    """Remove the extraction folders in ``folder`` (default: the temporary folder, ``$TMPDIR``)
    whose owner process died on this machine; returns them. Folders of live processes, of other
    machines, and of versions that did not name their owner are left alone."""
    folder = Path(folder or tempfile.gettempdir())
    try:
        entries = [entry for entry in os.scandir(folder) if entry.name.startswith(EXTRACT_PREFIX)]
    except OSError:
        return []
    removed = []
    for entry in entries:
        owner = _EXTRACTED.match(entry.name)
        if (owner and entry.is_dir(follow_symlinks=False)
                and not owner_alive(int(owner["pid"]), owner["host"])):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed
