"""Zarr v3 scene stores: one directory per scene with a ``pan`` and an ``ms`` group.

Layout of ``<out>/<sensor>/<scene_id>.zarr``:

- group ``pan``: variable ``pan`` dims (y, x), native dtype;
- group ``ms``: variable ``ms`` dims (band, y, x), ``band`` = canonical band names;
- both carry rioxarray's ``spatial_ref`` (CRS and transform) when the scene is georeferenced;
- root attributes: sensor, ratio, bit_depth, scale_max, MTF gains, scene_id, nodata, georeferenced,
  source name and sha256, software version and the alignment that was applied.

Chunks: PAN ``chunk_size`` x ``chunk_size``, MS (all bands, ``chunk_size / ratio`` square), so a PAN
chunk and its MS chunk cover the same ground and file counts stay low. Compression: Blosc zstd
with bit-shuffle. A store is written under a hidden temporary sibling name and renamed into place
only once complete, so a failure never leaves a partial store where readers look.

Integrity (``crossdiff_core.io.integrity``): the last file written is ``manifest.json``, every
file's size and sha256 and every array's shape and chunk count. ``open_scene`` refuses a store
whose files do not match it (a cheap check: no chunk is read) and names the chunk file a read
cannot decode; ``crossdiff verify`` checks every checksum.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, BytesCodec

from crossdiff_core.atomic import atomic_folder
from crossdiff_core.io.errors import DamagedStoreError
from crossdiff_core.io.integrity import (
    MANIFEST_NAME,
    check_store,
    checked_array,
    damaged,
    write_manifest,
)
from crossdiff_core.io.names import inside, safe_name
from crossdiff_core.scene import Scene

STORE_SUFFIX = ".zarr"
_REQUIRED_ATTRS = ("sensor", "ratio", "scene_id", "bit_depth", "scale_max")
BLOSC_BLOCK_BYTES = 256 * 1024


def _compressor() -> BloscCodec:
    # Bit-shuffle makes the slowly varying high bits of DN data compress well. On textured uint16
    # imagery zstd level 1 compresses within 1 % of level 3 at about twice the speed, and
    # compression is most of the cost of an ingest. Blosc blocks of 256 KiB (instead of its
    # automatic choice, a few tens of KiB at level 1) compress a third faster, slightly smaller.
    return BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle", blocksize=BLOSC_BLOCK_BYTES)


def store_path(out_dir: str | Path, sensor: str, scene_id: str) -> Path:
    """Where the store of ``scene_id`` lives: ``<out_dir>/<sensor>/<scene_id>.zarr``.

    Both names are reduced to safe path components (``crossdiff_core.io.names.safe_name``), and
    the result is checked to lie inside ``out_dir``, whatever the input's metadata said.
    """
    path = (Path(out_dir) / safe_name(sensor, "sensor name")
            / f"{safe_name(scene_id, 'scene id')}{STORE_SUFFIX}")
    return inside(out_dir, path)


def _check_nesting(pan: xr.DataArray, ms: xr.DataArray, ratio: int) -> None:
    if pan.dims != ("y", "x"):
        raise ValueError(f"pan must have dims ('y', 'x'), got {pan.dims}")
    if ms.dims != ("band", "y", "x"):
        raise ValueError(f"ms must have dims ('band', 'y', 'x'), got {ms.dims}")
    expected = (ms.sizes["y"] * ratio, ms.sizes["x"] * ratio)
    if (pan.sizes["y"], pan.sizes["x"]) != expected:
        raise ValueError(
            f"PAN shape {pan.shape} does not nest the MS shape {ms.shape[1:]} at ratio {ratio} "
            f"(expected {expected}); align the pair first (crossdiff_core.io.align)"
        )


def _prepare(array: xr.DataArray, name: str, chunks: tuple[int, ...]) -> xr.Dataset:
    """Chunk like the target store and set the encoding in place, keeping ``grid_mapping``.

    The encoding goes into ``.encoding`` rather than ``to_zarr(encoding=...)`` because the latter
    drops rioxarray's ``grid_mapping`` entry, and with it the CRS on reading.
    """
    array = array.chunk(dict(zip(array.dims, chunks, strict=True)))
    # Fixed-width unicode has no Zarr v3 spec (zarr warns); variable-length strings do.
    text_coords = {name: coord.values.astype(object) for name, coord in array.coords.items()
                   if coord.dtype.kind == "U"}
    array = array.assign_coords(text_coords)
    dataset = array.to_dataset(name=name)
    variable = dataset[name]
    kept = {k: v for k, v in variable.encoding.items() if k == "grid_mapping"}
    variable.encoding = {**kept, "chunks": chunks, "compressors": [_compressor()]}
    for coord in dataset.coords.values():
        coord.encoding = {k: v for k, v in coord.encoding.items() if k in ("grid_mapping",)}
    return dataset


def _plain(value):
    """JSON-safe attribute values (numpy scalars and tuples become Python types)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_scene_store(
    pan: xr.DataArray,
    ms: xr.DataArray,
    attrs: dict,
    out_dir: str | Path,
    chunk_size: int = 1024,
    overwrite: bool = False,
    progress: bool = False,
    finalize: Callable[[dict], dict] | None = None,
) -> Path:
    """Write one nested PAN/MS pair as ``<out_dir>/<sensor>/<scene_id>.zarr`` and return its path.

    ``pan``: (y, x), ``ms``: (band, y, x) with PAN shape = ``attrs["ratio"]`` x MS shape; numpy- or
    dask-backed (dask arrays are written chunk by chunk on the current dask scheduler, see
    ``crossdiff_core.io.scheduler.use_scheduler``). ``attrs`` must hold sensor, ratio, scene_id,
    bit_depth and scale_max. An existing store is replaced only with ``overwrite``.

    Every chunk is summarised as it is written (per-band min, max, nodata count, NaN count,
    pixel count; nodata from ``attrs["nodata"]``): ``finalize({"pan": ..., "ms": ...})`` sees
    these summaries before the store is moved into place; it may raise (the partial store is
    removed) or return attributes to add.
    """
    missing = [key for key in _REQUIRED_ATTRS if key not in attrs]
    if missing:
        raise ValueError(f"scene attributes are missing {missing}")
    ratio = int(attrs["ratio"])
    if chunk_size < ratio or chunk_size % ratio:
        raise ValueError(
            f"chunk_size must be a positive multiple of the ratio {ratio}, got {chunk_size}"
        )
    _check_nesting(pan, ms, ratio)
    target = store_path(out_dir, str(attrs["sensor"]), str(attrs["scene_id"]))
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"scene store {target} already exists (pass overwrite/--force to replace it)"
        )
    ms_chunk = chunk_size // ratio
    pan_ds = _prepare(pan, "pan", (chunk_size, chunk_size))
    ms_ds = _prepare(ms, "ms", (ms.sizes["band"], ms_chunk, ms_chunk))
    atomic_folder(
        target,
        lambda temporary: _fill_store(temporary, pan_ds, ms_ds, attrs, progress, finalize,
                                      f"writing {target.name}"),
    )
    return target


def _fill_store(
    folder: Path,
    pan_ds: xr.Dataset,
    ms_ds: xr.Dataset,
    attrs: dict,
    progress: bool,
    finalize: Callable[[dict], dict] | None,
    label: str,
) -> None:
    """Write the ``pan`` and ``ms`` groups, the root attributes, the consolidated metadata and,
    last, the integrity manifest into the empty folder ``folder``."""
    root = zarr.open_group(str(folder), mode="w", zarr_format=3)
    root.attrs.update(_plain(attrs))
    # xarray writes the metadata, coordinates and CRS now. The pixel chunks are written by one
    # task per chunk that also summarises it (min, max, nodata and NaN counts per band) and
    # returns only that summary: each source chunk is read once and freed at once, so memory
    # stays bounded whatever the scene size.
    for group, dataset in (("pan", pan_ds), ("ms", ms_ds)):
        dataset.to_zarr(str(folder), group=group, mode="w", zarr_format=3,
                        consolidated=False, compute=False)
    nodata = attrs.get("nodata")
    tasks = {
        name: _block_tasks(dataset[name].data,
                           _ChunkFiles(zarr.open_array(str(folder / name / name), mode="r"),
                                       folder / name / name), nodata)
        for name, dataset in (("pan", pan_ds), ("ms", ms_ds))
    }
    if progress:
        from crossdiff_core.io.progress import TqdmCallback

        with TqdmCallback(desc=label):
            pan_stats, ms_stats = dask.compute(tasks["pan"], tasks["ms"])
    else:
        pan_stats, ms_stats = dask.compute(tasks["pan"], tasks["ms"])
    if finalize is not None:
        added = finalize({"pan": _combine(pan_stats), "ms": _combine(ms_stats)}) or {}
        if added:
            zarr.open_group(str(folder), mode="r+").attrs.update(_plain(added))
    with warnings.catch_warnings():
        # Consolidated metadata lets xarray open a group without a fallback warning; zarr flags
        # it as outside the v3 spec, which is fine for stores this project reads itself.
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(str(folder))
    # Last: the manifest records the complete store (crossdiff_core.io.integrity).
    write_manifest(folder)


class _ChunkFiles:
    """Writes whole chunks of a freshly created Zarr v3 array straight to their files.

    Zarr's own ``array[region] = block`` hands every chunk to its asyncio event loop and codec
    threads, which on 1024 x 1024 uint16 chunks costs about as much again as compressing them.
    The array's codecs are bytes (little-endian) then Blosc, so a chunk file is the Blosc
    encoding of the little-endian chunk, padded to the full chunk shape with the fill value at
    the array's far edges; the file name comes from the array's own chunk key encoding.
    """

    def __init__(self, array: zarr.Array, folder: Path) -> None:
        metadata = array.metadata
        codecs = metadata.codecs
        if (len(codecs) != 2 or not isinstance(codecs[0], BytesCodec)
                or not isinstance(codecs[1], BloscCodec)):
            raise ValueError(f"chunk files are written for bytes + Blosc arrays only, got {codecs}")
        blosc = codecs[1]
        shuffles = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE,
                    "bitshuffle": Blosc.BITSHUFFLE}
        self.codec = Blosc(cname=blosc.cname.value, clevel=blosc.clevel,
                           shuffle=shuffles[blosc.shuffle.value], blocksize=blosc.blocksize)
        self.dtype = np.dtype(array.dtype).newbyteorder("<")
        self.chunk_shape = tuple(metadata.chunk_grid.chunk_shape)
        self.fill_value = metadata.fill_value
        self.key_encoding = metadata.chunk_key_encoding
        self.folder = folder

    def write(self, block: np.ndarray, coords: tuple[int, ...]) -> None:
        """Store ``block``, the chunk at chunk-grid position ``coords`` (may be an edge chunk)."""
        if block.shape != self.chunk_shape:
            full = np.full(self.chunk_shape, self.fill_value, dtype=self.dtype)
            full[tuple(slice(0, n) for n in block.shape)] = block
            block = full
        encoded = self.codec.encode(np.ascontiguousarray(block, dtype=self.dtype))
        path = self.folder / self.key_encoding.encode_chunk_key(coords)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The whole store is a temporary folder renamed when complete: no per-file rename needed.
        path.write_bytes(encoded)


def _store_block(block: np.ndarray, target: _ChunkFiles, coords: tuple[int, ...],
                 nodata: float | None) -> dict:
    """Write one chunk at chunk-grid position ``coords`` of ``target`` and return its summary.

    ``block`` is (y, x) or (band, y, x); the summary holds per-band ``min``, ``max``, ``nodata``
    (count of pixels equal to ``nodata``) and ``nan`` counts, NaN ignored in min/max.
    """
    bands = block.reshape(-1, block.shape[-2] * block.shape[-1])
    floating = np.issubdtype(bands.dtype, np.floating)
    nan = np.isnan(bands).sum(axis=1) if floating else np.zeros(len(bands), dtype=int)
    finite = bands.size > 0 and (not floating or bool((nan < bands.shape[1]).all()))
    reduce_min, reduce_max = (np.nanmin, np.nanmax) if floating else (np.min, np.max)
    summary = {
        "min": reduce_min(bands, axis=1) if finite else np.full(len(bands), np.inf),
        "max": reduce_max(bands, axis=1) if finite else np.full(len(bands), -np.inf),
        "nodata": (bands == nodata).sum(axis=1) if nodata is not None else np.zeros(len(bands)),
        "nan": nan,
        "size": np.full(len(bands), bands.shape[1]),
    }
    # Like zarr, leave out chunks that hold nothing but the fill value (reads give it back).
    empty = finite and bool((summary["min"] == target.fill_value).all()
                            and (summary["max"] == target.fill_value).all())
    if not empty:
        target.write(block, coords)
    return summary


def _block_tasks(array: da.Array, target: _ChunkFiles, nodata: float | None) -> list:
    """One delayed ``_store_block`` per chunk of ``array`` (chunks line up with ``target``'s)."""
    from itertools import product

    blocks = array.to_delayed().ravel()
    indices = product(*(range(len(sizes)) for sizes in array.chunks))
    store = dask.delayed(_store_block, pure=False)
    return [store(block, target, index, nodata)
            for block, index in zip(blocks, indices, strict=True)]


def _combine(summaries: list[dict]) -> dict:
    """Whole-array summary from chunk summaries: per-band min/max, total nodata, NaN, size.

    MS chunks hold every band, so per-band values combine chunk-wise; PAN gives one band.
    """
    return {
        "min": np.min([s["min"] for s in summaries], axis=0),
        "max": np.max([s["max"] for s in summaries], axis=0),
        "nodata": np.sum([s["nodata"] for s in summaries], axis=0),
        "nan": np.sum([s["nan"] for s in summaries], axis=0),
        "size": np.sum([s["size"] for s in summaries], axis=0),
    }


def read_store_attrs(path: str | Path) -> dict:
    """Root attributes of a scene store, read from its metadata file only (cheap).

    Unreadable metadata raises a one-line ``DamagedStoreError`` naming the file.
    """
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        if (Path(path) / MANIFEST_NAME).is_file():
            raise damaged(path, ["zarr.json is missing"])
        raise ValueError(f"{path} is not a Zarr v3 scene store (no zarr.json)")
    try:
        attributes = json.loads(meta.read_bytes()).get("attributes", {})
        return dict(attributes)
    except (ValueError, AttributeError, TypeError) as error:
        reason = (f"{error.msg} at line {error.lineno} column {error.colno}"
                  if isinstance(error, json.JSONDecodeError) else "not a Zarr metadata object")
        raise damaged(path, [f"zarr.json is not valid Zarr metadata ({reason})"]) from None


def open_scene(path: str | Path) -> Scene:
    """Open a scene store lazily: dask-backed ``pan`` (y, x) and ``ms`` (band, y, x) DataArrays.

    Georeferenced stores give both arrays a rioxarray CRS and transform. The store is checked
    first (``crossdiff_core.io.integrity.check_store``: manifest, every file present with its
    size, metadata parses): an incomplete or damaged store, or one written before stores had a
    manifest, raises a one-line ``DamagedStoreError`` naming it and the repair
    (``crossdiff ingest SOURCE --force``). Reads that cannot decode a chunk raise one too, naming
    the chunk file; a missing chunk is never read as zeros.
    """
    path = Path(path)
    if not (path / "zarr.json").is_file() and not (path / MANIFEST_NAME).is_file():
        raise FileNotFoundError(
            f"{path} is not a scene store: run `crossdiff ingest` to create one"
        )
    manifest = check_store(path)
    attrs = read_store_attrs(path)
    missing = [key for key in _REQUIRED_ATTRS if key not in attrs]
    if missing:
        raise ValueError(f"scene store {path} lacks root attributes {missing}; re-ingest it")
    try:
        pan = xr.open_zarr(path, group="pan", decode_coords="all", chunks={})["pan"]
        ms = xr.open_zarr(path, group="ms", decode_coords="all", chunks={})["ms"]
    except DamagedStoreError:
        raise
    except (ValueError, KeyError, TypeError, OSError) as error:  # metadata Zarr cannot use
        raise damaged(path, [f"its metadata cannot be opened ({type(error).__name__}: "
                             f"{' '.join(str(error).split())[:200]})"]) from error
    pan = checked_array(pan, path, "pan/pan", manifest)
    ms = checked_array(ms, path, "ms/ms", manifest)
    return Scene(pan=pan, ms=ms, attrs=attrs)


def _is_store(path: Path) -> bool:
    # A store with a manifest but no zarr.json is a damaged store, found so that it is refused.
    return path.is_dir() and path.suffix == STORE_SUFFIX and (
        (path / "zarr.json").is_file() or (path / MANIFEST_NAME).is_file())


def find_scene_stores(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Scene stores named directly or found in folders holding ``<sensor>/<scene_id>.zarr``.

    Hidden names (temporary stores being written) are skipped. Raises FileNotFoundError for a path
    that does not exist and ValueError for one that holds no store.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: give scene stores or folders of them")
        if _is_store(path):
            candidates = [path]
        else:
            candidates = sorted(
                p for pattern in (f"*{STORE_SUFFIX}", f"*/*{STORE_SUFFIX}")
                for p in path.glob(pattern)
                if _is_store(p) and not p.name.startswith(".")
            )
        if not candidates:
            raise ValueError(
                f"no scene stores in {path}: run `crossdiff ingest SOURCE --out {path}`"
            )
        found.extend(c for c in candidates if c not in found)
    return found


def scene_attributes(
    sensor,
    scene_id: str,
    scale_max: float,
    nodata: float | None,
    crs: str | None,
    source_name: str,
    source_sha256: str,
    alignment: dict,
    bit_depth: int | None = None,
    extra: dict | None = None,
) -> dict:
    """The root attributes every scene store carries; ``sensor`` is a ``sensors.Sensor``.

    ``crs`` is the WKT of the scene's CRS, or None for inputs without georeferencing.
    """
    from crossdiff_core import __version__

    attrs = sensor.as_attrs()
    if bit_depth is not None:
        attrs["bit_depth"] = int(bit_depth)
    attrs.update(
        scene_id=scene_id,
        scale_max=float(scale_max),
        nodata=None if nodata is None else float(nodata),
        georeferenced=crs is not None,
        crs=crs,
        source_name=source_name,
        source_sha256=source_sha256,
        software_version=__version__,
        alignment=alignment,
    )
    attrs.update(extra or {})
    return attrs
