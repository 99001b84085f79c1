"""Direct windowed reads of GeoTIFF bands as dask arrays, for fast chunk-by-chunk ingestion.

Going through xarray's lazy indexing layers and rioxarray's per-read file handling costs more than
the read itself on fast storage. A ``BandWindows`` reads exactly the window each chunk asks for,
one ``rasterio`` read per band per chunk, reusing one open file handle per thread and file.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import rasterio
from rasterio.windows import Window

from crossdiff_core.io.remote import REMOTE_GDAL_OPTIONS

# GDAL's block cache defaults to 5 % of RAM and fills with every block read, so without a cap the
# memory of an ingest grows with the scene. Chunks are read once, so tiled files need next to no
# cache; files stored in strips (blocks as wide as the raster) get room for one row of chunks on
# top, or each strip would be decompressed again for every chunk across it.
GDAL_CACHE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class BandFiles:
    """Where an array's pixels live: ``(path, 1-based band index)`` per band, in order.

    ``squeeze``: the array is 2-D (y, x) (a PAN), so it must hold exactly one band.
    """

    bands: tuple[tuple[Path | str, int], ...]  # str: a GDAL path (``/vsicurl/...``)
    squeeze: bool = False


class BandWindows:
    """An array-like over a window of ``files``: shape (band, y, x), or (y, x) when squeezed.

    ``origin`` is the (row, col) of the window's first pixel in the files; ``shape`` its (y, x)
    size. Indexing with slices reads only the pixels asked for. Open file handles (one per thread
    and file) stay open until ``close()``; pickling drops them (worker processes reopen).
    """

    def __init__(self, files: BandFiles, origin: tuple[int, int], shape: tuple[int, int],
                 dtype: np.dtype) -> None:
        if files.squeeze and len(files.bands) != 1:
            raise ValueError(f"a 2-D array reads exactly one band, got {len(files.bands)}")
        self.files = files
        self.origin = (int(origin[0]), int(origin[1]))
        self.dtype = np.dtype(dtype)
        size = (int(shape[0]), int(shape[1]))
        self.shape = size if files.squeeze else (len(files.bands), *size)
        self.ndim = len(self.shape)
        self._handles: dict[tuple[int, Path | str], rasterio.DatasetReader] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _dataset(self, path: Path | str) -> rasterio.DatasetReader:
        key = (threading.get_ident(), path)
        with self._lock:
            dataset = self._handles.get(key)
            if dataset is None:
                dataset = self._handles[key] = rasterio.open(path)
        return dataset

    def __getitem__(self, key: Sequence[slice]) -> np.ndarray:
        key = tuple(key) if isinstance(key, tuple) else (key,)
        if len(key) != self.ndim or not all(isinstance(k, slice) for k in key):
            raise IndexError(f"BandWindows takes {self.ndim} slices, got {key!r}")
        bounds = [k.indices(n) for k, n in zip(key, self.shape, strict=True)]
        if any(step != 1 for _, _, step in bounds):
            raise IndexError("BandWindows reads contiguous windows only (slice step 1)")
        (row0, row1, _), (col0, col1, _) = bounds[-2:]
        band0, band1 = (0, 1) if self.files.squeeze else bounds[0][:2]
        rows, cols = max(row1 - row0, 0), max(col1 - col0, 0)
        out = np.empty((max(band1 - band0, 0), rows, cols), dtype=self.dtype)
        if out.size:
            window = Window(self.origin[1] + col0, self.origin[0] + row0, cols, rows)
            for index, (path, band) in enumerate(self.files.bands[band0:band1]):
                self._dataset(path).read(band, window=window, out=out[index])
        return out[0] if self.files.squeeze else out

    def to_dask(self, chunks: tuple[int, ...]) -> da.Array:
        """This window as a dask array with ``chunks`` (one read per band per chunk)."""
        return da.from_array(self, chunks=chunks, lock=False, asarray=False, fancy=False,
                             meta=np.empty((0,) * self.ndim, dtype=self.dtype))

    def strip_cache_bytes(self, chunk_rows: int) -> int:
        """GDAL cache needed to decode each strip once when reading ``chunk_rows``-row chunks
        left to right: the bytes of one row of chunks of every striped file (0 for tiled)."""
        total = 0
        for path in dict.fromkeys(path for path, _ in self.files.bands):
            with rasterio.open(path) as dataset:
                block_rows, block_cols = dataset.block_shapes[0]
                if block_cols >= dataset.width:
                    rows = max(chunk_rows, block_rows)
                    total += dataset.width * rows * dataset.count * self.dtype.itemsize
        return total

    def close(self) -> None:
        """Close every file handle opened so far."""
        with self._lock:
            handles, self._handles = list(self._handles.values()), {}
        for dataset in handles:
            dataset.close()


def gdal_cache_env(extra_bytes: int = 0, remote: bool = False) -> rasterio.Env:
    """A ``with`` context capping GDAL's (process-wide) block cache during an ingest at
    ``GDAL_CACHE_BYTES`` plus ``extra_bytes`` (see ``BandWindows.strip_cache_bytes``); with
    ``remote``, also the settings for remote rasters (``crossdiff_core.io.remote``)."""
    options = REMOTE_GDAL_OPTIONS if remote else {}
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES + int(extra_bytes), **options)
