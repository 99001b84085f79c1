"""Errors raised for bad ingestion input and damaged scene stores; every message names the file
and the problem."""

from __future__ import annotations

import errno


class IngestError(ValueError):
    """Base class: an input that cannot become a scene store."""


class UnknownFormatError(IngestError):
    """The source is none of the supported formats."""


class CorruptInputError(IngestError):
    """A truncated or damaged archive, raster, HDF5 or MATLAB file."""


class UnsafeArchiveError(IngestError):
    """An archive member that would land outside the extraction folder, or is a link or device."""


class MissingBandError(IngestError):
    """The PAN or an MS band is not in the source."""


class AlignmentError(IngestError):
    """PAN and MS grids that cannot be made to nest (CRS, overlap, ratio, sub-pixel offsets)."""


class InvalidContentError(IngestError):
    """All-nodata or constant rasters, NaN, inconsistent shapes or missing keys."""


class UnknownSensorError(IngestError):
    """The sensor cannot be detected and none was given (``--sensor``)."""


class DamagedStoreError(ValueError):
    """A scene store that is incomplete or damaged (a missing or changed file, unreadable
    metadata or manifest, a chunk that cannot be decoded); re-ingesting its source repairs it."""


def is_no_space(error: BaseException) -> bool:
    """Whether ``error`` is a full disk or an exhausted quota (``ENOSPC``, ``EDQUOT``)."""
    codes = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
    return isinstance(error, OSError) and error.errno in codes


class NoSpaceError(OSError):
    """A full disk or quota (errno ``ENOSPC``), saying which folder and what was being written.

    Not an IngestError: the input is fine, so nothing rejects it; not retried either (freeing
    space is a person's job). Its message is one line, without the ``[Errno 28]`` prefix."""

    def __str__(self) -> str:
        return str(self.strerror)


def no_space_error(folder, doing: str) -> NoSpaceError:
    """The ``NoSpaceError`` for ``folder``, full while ``doing`` (e.g. "extracting x.tar")."""
    return NoSpaceError(errno.ENOSPC, f"no space left on device in {folder} while {doing}; "
                        "free space there and run again")
