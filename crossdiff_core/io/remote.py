"""Inputs given as URLs: GeoTIFFs (and STAC Items) that GDAL reads over the network.

A remote source is a string (never a ``Path``: it would fold ``https://`` into ``https:/``):

- ``https://...`` / ``http://...``: read by GDAL through ``/vsicurl/`` (HTTP range requests: only
  the blocks asked for are fetched, never the whole file first);
- ``s3://bucket/key``, ``gs://bucket/key``, ``az://container/blob``: through GDAL's
  ``/vsis3/``, ``/vsigs/``, ``/vsiaz/`` (credentials as GDAL takes them: ``AWS_*`` variables...);
- any GDAL virtual path of these (``/vsicurl/https://...``, ``/vsis3/...``), taken as is.

**Identity of a remote file.** Ingestion matches sources by the sha256 of their bytes. For a
remote file that hash is computed from a streamed read of the whole file (4 MiB blocks, nothing
written to disk): ``http(s)`` with a plain GET, the cloud schemes through GDAL's own virtual file
API (so the credentials that open the raster also read it). It is the same hash the local copy of
the file gives, so a file ingested from a URL and from a download is recognised as one source.
The price is one full transfer of the file beside the windowed reads of the pixels (done while
the chunks are written, unless a store of the same size could already hold it). ETags are not
used: they are not content hashes (S3 multipart uploads, weak ETags), and an identity that cannot
tell two contents apart would let ``ingest`` skip a changed file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

BLOCK_BYTES = 1 << 22
# GDAL settings for remote rasters: no listing of the "folder" and no probing for sidecar files
# (.aux.xml, .msk, ...) on open, each of which costs a request (an S3 listing for a bucket
# prefix). Local files keep GDAL's defaults, sidecars included.
REMOTE_GDAL_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
HTTP_TIMEOUT_S = 60
# scheme -> GDAL virtual file system prefix
_SCHEMES = {"https": "/vsicurl/", "http": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/",
            "az": "/vsiaz/"}
_VSI_PREFIXES = ("/vsicurl/", "/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/",
                 "/vsiswift/", "/vsiwebhdfs/")


def is_remote(source: object) -> bool:
    """Whether ``source`` is a URL or GDAL network path (only strings can be: see above)."""
    if not isinstance(source, str):
        return False
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    return scheme in _SCHEMES or source.startswith(_VSI_PREFIXES)


def gdal_path(source: str) -> str:
    """The GDAL path that reads ``source``: ``https://h/a.tif`` -> ``/vsicurl/https://h/a.tif``,
    ``s3://b/k.tif`` -> ``/vsis3/b/k.tif``; GDAL virtual paths are returned unchanged."""
    if source.startswith("/vsi"):
        return source
    scheme, rest = source.split("://", 1)
    prefix = _SCHEMES[scheme.lower()]
    return f"{prefix}{source}" if prefix == "/vsicurl/" else f"{prefix}{rest}"


def remote_env(remote: bool = True):
    """A ``with`` context holding ``REMOTE_GDAL_OPTIONS`` (a no-op unless ``remote``)."""
    import contextlib

    import rasterio

    return rasterio.Env(**REMOTE_GDAL_OPTIONS) if remote else contextlib.nullcontext()


def http_url(source: str) -> str | None:
    """The ``http(s)://`` URL behind ``source`` (a URL or ``/vsicurl/URL``), else None."""
    url = source[len("/vsicurl/"):] if source.startswith("/vsicurl/") else source
    return url if url.lower().startswith(("http://", "https://")) else None


def public_uri(source: str) -> str:
    """``source`` without its query string and fragment (a pre-signed URL's signature)."""
    parts = urllib.parse.urlsplit(source)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _remote_path(source: str) -> PurePosixPath:
    """The path part of ``source`` (bucket and key for cloud URLs), query string left out."""
    url = http_url(source) or source
    path = urllib.parse.urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    return PurePosixPath(urllib.parse.unquote(path))


def remote_name(source: str) -> str:
    """The file name of ``source``: the last component of its path, query string left out."""
    return _remote_path(source).name


def remote_parent_name(source: str) -> str:
    """The name of the folder holding ``source`` (used for scene ids)."""
    return _remote_path(source).parent.name


def remote_suffix(source: str) -> str:
    """The lower-case suffix of ``source``'s file name (``.tif``, ``.json``...)."""
    return PurePosixPath(remote_name(source)).suffix.lower()


def join_href(base: str | Path, href: str) -> str | Path:
    """``href`` (an asset of a STAC Item at ``base``) as a source: absolute URLs and paths as
    they are, relative ones resolved against ``base``'s folder (a URL or a local path)."""
    if is_remote(href) or "://" in href:
        return href
    if isinstance(base, str) and is_remote(base):
        url = http_url(base)
        if url is not None:
            joined = urllib.parse.urljoin(url, href)
            return f"/vsicurl/{joined}" if base.startswith("/vsicurl/") else joined
        folder, _, _ = base.rpartition("/")
        return f"{folder}/{href}"
    path = Path(href)
    return path if path.is_absolute() else Path(base).parent / path


def _http_error(url: str, error: Exception) -> OSError:
    """A one-line error naming ``url``: FileNotFoundError for 404/410 (not retried), an
    ordinary OSError otherwise (connection errors and 5xx: transient)."""
    if isinstance(error, urllib.error.HTTPError):
        if error.code in (404, 410):
            return FileNotFoundError(f"{url}: no such file on the server (HTTP {error.code})")
        if error.code in (401, 403):
            return PermissionError(f"{url}: access refused (HTTP {error.code})")
        return ConnectionError(f"{url}: the server answered HTTP {error.code} {error.reason}")
    reason = getattr(error, "reason", error)
    return ConnectionError(f"{url}: cannot be reached ({reason})")


def _request(url: str, method: str = "GET"):
    request = urllib.request.Request(url, method=method,
                                     headers={"User-Agent": "crossdiff", "Accept-Encoding":
                                              "identity"})
    try:
        return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)  # noqa: S310
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise _http_error(url, error) from error


def check_remote(source: str) -> None:
    """FileNotFoundError naming ``source`` when it does not exist (HTTP: a HEAD request; other
    schemes: GDAL opens it)."""
    url = http_url(source)
    if url is not None:
        with _request(url, "HEAD"):
            return
    with _VsiFile(gdal_path(source)):
        return


def remote_size(source: str) -> int:
    """Size in bytes of the remote file (HTTP ``Content-Length``, else counted while reading)."""
    url = http_url(source)
    if url is not None:
        with _request(url, "HEAD") as response:
            length = response.headers.get("Content-Length")
        if length is not None and length.isdigit():
            return int(length)
        return sum(len(block) for block in iter_remote_blocks(source))
    with _VsiFile(gdal_path(source)) as handle:
        return handle.size()


def iter_remote_blocks(source: str) -> Iterator[bytes]:
    """The bytes of the remote file, streamed in blocks of at most ``BLOCK_BYTES``."""
    url = http_url(source)
    if url is not None:
        with _request(url) as response:
            try:
                yield from iter(lambda: response.read(BLOCK_BYTES), b"")
            except (OSError, TimeoutError) as error:
                raise ConnectionError(f"{url}: reading interrupted ({error})") from error
        return
    with _VsiFile(gdal_path(source)) as handle:
        yield from iter(lambda: handle.read(BLOCK_BYTES), b"")


def remote_sha256(source: str) -> str:
    """sha256 of the remote file's bytes, from a streamed read (see the module docstring)."""
    digest = hashlib.sha256()
    for block in iter_remote_blocks(source):
        digest.update(block)
    return digest.hexdigest()


def read_remote_bytes(source: str, limit: int = 64 * 1024 * 1024) -> bytes:
    """The whole remote file (a STAC Item), refused beyond ``limit`` bytes."""
    data = bytearray()
    for block in iter_remote_blocks(source):
        data += block
        if len(data) > limit:
            raise ValueError(f"{source}: larger than {limit} bytes; not a STAC Item")
    return bytes(data)


# ------------------------------------------------------------ GDAL's virtual file API (ctypes)


def _gdal_library() -> ctypes.CDLL:
    """The GDAL library rasterio uses (already loaded into this process by importing it)."""
    import rasterio  # noqa: F401  (loads GDAL)

    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if line.strip() else ""
                if "libgdal" in os.path.basename(path):
                    return ctypes.CDLL(path)
    except OSError:
        pass
    found = ctypes.util.find_library("gdal")
    if found is None:
        raise OSError("cannot find the GDAL library to read remote files with")
    return ctypes.CDLL(found)


_GDAL: ctypes.CDLL | None = None


def _gdal() -> ctypes.CDLL:
    global _GDAL
    if _GDAL is None:
        lib = _gdal_library()
        lib.VSIFOpenL.restype = ctypes.c_void_p
        lib.VSIFOpenL.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.VSIFReadL.restype = ctypes.c_size_t
        lib.VSIFReadL.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                                  ctypes.c_void_p]
        lib.VSIFSeekL.restype = ctypes.c_int
        lib.VSIFSeekL.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int]
        lib.VSIFTellL.restype = ctypes.c_uint64
        lib.VSIFTellL.argtypes = [ctypes.c_void_p]
        lib.VSIFCloseL.restype = ctypes.c_int
        lib.VSIFCloseL.argtypes = [ctypes.c_void_p]
        lib.CPLGetLastErrorMsg.restype = ctypes.c_char_p
        _GDAL = lib
    return _GDAL


class _VsiFile:
    """A file read through GDAL's virtual file systems (``/vsis3/``, ``/vsimem/``, ...)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.handle: int | None = None

    def __enter__(self) -> _VsiFile:
        lib = _gdal()
        self.handle = lib.VSIFOpenL(self.path.encode(), b"rb")
        if not self.handle:
            message = (lib.CPLGetLastErrorMsg() or b"").decode(errors="replace")
            raise FileNotFoundError(
                f"{self.path}: cannot be opened{f' ({message})' if message else ''}"
            )
        return self

    def size(self) -> int:
        lib = _gdal()
        lib.VSIFSeekL(self.handle, 0, os.SEEK_END)
        size = int(lib.VSIFTellL(self.handle))
        lib.VSIFSeekL(self.handle, 0, os.SEEK_SET)
        return size

    def read(self, count: int) -> bytes:
        buffer = ctypes.create_string_buffer(count)
        got = _gdal().VSIFReadL(buffer, 1, count, self.handle)
        return buffer.raw[:got]

    def __exit__(self, *exc_info) -> None:
        if self.handle:
            _gdal().VSIFCloseL(self.handle)
            self.handle = None
