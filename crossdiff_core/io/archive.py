"""Safe extraction of tar, tar.gz and zip archives into a private temporary folder.

Every member is checked before anything is written: absolute paths, ``..`` components, symbolic or
hard links and device or FIFO entries are refused (UnsafeArchiveError naming the member), so an
archive can never write outside the folder it is extracted into.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from crossdiff_core.io.errors import CorruptInputError, UnsafeArchiveError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
ZIP_SUFFIXES = (".zip",)


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


def _extract_tar(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
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
            # Members were vetted above; the 'data' filter is a second, standard-library guard.
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise CorruptInputError(f"{archive}: corrupt or truncated archive ({error})") from error


def _extract_zip(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle:
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
            bundle.extractall(dest)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise CorruptInputError(f"{archive}: corrupt or truncated archive ({error})") from error


class ExtractedArchive:
    """Context manager: extracts ``archive`` into a fresh private folder, removed on exit."""

    def __init__(self, archive: str | Path) -> None:
        self.archive = Path(archive)
        self.folder: Path | None = None

    def __enter__(self) -> Path:
        kind = archive_kind(self.archive)
        if kind is None:
            raise ValueError(f"{self.archive} is not a tar, tar.gz or zip archive")
        self.folder = Path(tempfile.mkdtemp(prefix="crossdiff-extract-"))
        try:
            (_extract_tar if kind == "tar" else _extract_zip)(self.archive, self.folder)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        return self.folder

    def __exit__(self, *exc_info) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
