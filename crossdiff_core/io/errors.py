"""Errors raised for bad ingestion input and damaged scene stores; every message names the file
and the problem."""

from __future__ import annotations


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
