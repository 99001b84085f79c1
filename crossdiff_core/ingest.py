"""Turn one source (Landsat bundle, PAN + MS GeoTIFF pair, PanCollection .h5, GRIP .mat, STAC
Item) into Zarr scene stores: detect the format, read lazily, align to the nesting invariant,
validate and write chunk by chunk. Each store gets a STAC Item beside it
(``<scene>.zarr.stac.json``, ``crossdiff_core.stac``).

GeoTIFFs may be remote (``https://``, ``s3://``... strings, ``crossdiff_core.io.remote``): a
pair of them, or a STAC Item (local file or URL) whose assets are the PAN and the MS
(``crossdiff_core.stac.item_pair`` says how they are told apart). Their pixels are read window by
window through GDAL; their sha256 comes from a streamed read (see ``crossdiff_core.io.remote``).

Sources are matched by sha256: ingesting the same source again is a no-op unless ``force``, or
unless its store fails the integrity check (``crossdiff_core.io.integrity``, every checksum): a
damaged or incomplete store of the source is rebuilt, never trusted. Stores
also record the source's size in bytes, so the hash is computed before writing only when some
store of the same size could match; otherwise it is computed while the chunks are written.
Content checks (all-nodata or constant rasters, NaN) use per-chunk summaries made while the chunks
are written to a hidden temporary store, which is deleted if they fail: bad input never leaves a
store behind, and every source chunk is read once.

Concurrent ingests: a scene store is written under its lock (``crossdiff_core.io.locks``), so two
runs of the same scene give one store: the second either finds the store the first finished (and
skips, when it holds the same source) or is told the scene is already being ingested. Partial
stores left by killed runs (``.<scene>.zarr.partial-p<pid>h<host>-*``) are removed by the next
ingest into the same folder, never one a live process is writing (``crossdiff_core.atomic``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from crossdiff_core.atomic import remove_stale, remove_stale_siblings
from crossdiff_core.io.align import align_pair, check_nested_shapes
from crossdiff_core.io.archive import ExtractedArchive, archive_kind, remove_stale_extractions
from crossdiff_core.io.errors import (
    AlignmentError,
    InvalidContentError,
    UnknownFormatError,
    UnknownSensorError,
    is_no_space,
    no_space_error,
)
from crossdiff_core.io.geotiff import RASTER_SUFFIXES, file_name, find_pair, read_pair
from crossdiff_core.io.integrity import recorded_identity, store_problem, verify_store
from crossdiff_core.io.landsat import find_mtl, read_landsat
from crossdiff_core.io.locks import remove_stale_locks, scene_lock
from crossdiff_core.io.matfile import read_mat
from crossdiff_core.io.names import safe_name
from crossdiff_core.io.pancollection import read_pancollection
from crossdiff_core.io.raw import RawPair
from crossdiff_core.io.remote import (
    check_remote,
    is_remote,
    iter_remote_blocks,
    public_uri,
    remote_parent_name,
    remote_size,
    remote_suffix,
)
from crossdiff_core.io.scheduler import check_scheduler, use_scheduler
from crossdiff_core.io.store import (
    find_scene_stores,
    read_store_attrs,
    scene_attributes,
    store_path,
    write_scene_store,
)
from crossdiff_core.io.windows import BandFiles, BandWindows, gdal_cache_env
from crossdiff_core.sensors import FALLBACK_MS_GAIN, Sensor, get_sensor

Source = str | Path | Sequence[str | Path]
HDF5_SUFFIXES = (".h5", ".hdf5", ".he5")
MAT_SUFFIXES = (".mat",)


@dataclass(frozen=True)
class IngestResult:
    """``store``: the scene store written (or found); ``skipped``: True when the source had been
    ingested before. PanCollection files give one store per sample: all are in ``stores``."""

    store: Path
    skipped: bool
    scene_id: str
    sensor: str
    stores: tuple[Path, ...] = ()

    @property
    def path(self) -> Path:
        """Alias of ``store``."""
        return self.store


def source_sha256(source: Source) -> str:
    """sha256 of a file; of a folder, over its sorted relative file names and contents; of a
    PAN + MS pair, over both files in that order; of a STAC Item, over its PAN and MS assets as
    a pair (so an Item and the pair it lists are one source). Remote files are streamed."""
    digest = hashlib.sha256()
    for path, name in _hash_members(source):
        digest.update(name.encode())
        if isinstance(path, str):
            for block in iter_remote_blocks(path):
                digest.update(block)
            continue
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def source_bytes(source: Source) -> int:
    """Total size of the files ``source_sha256`` hashes (equal contents need equal sizes)."""
    return sum(remote_size(path) if isinstance(path, str) else path.stat().st_size
               for path, _ in _hash_members(source))


def _member(path: str | Path) -> str | Path:
    """One file of a source: a remote file stays a string, a local one becomes a Path."""
    return path if is_remote(path) else Path(path)


def _is_stac_item(source: Source) -> bool:
    """Whether ``source`` names a STAC Item (a ``.json`` file or URL)."""
    if not isinstance(source, str | Path):
        return False
    if is_remote(source):
        return remote_suffix(source) == ".json"
    return Path(source).suffix.lower() == ".json"


def _hash_members(source: Source) -> list[tuple[Path | str, str]]:
    """The files a source's identity covers, with the name each is hashed under (remote files
    as strings)."""
    if _is_stac_item(source):
        from crossdiff_core.stac import item_pair

        pair = item_pair(source)
        return [(_member(pair.pan), "0"), (_member(pair.ms), "1")]
    if isinstance(source, str | Path):
        if is_remote(source):
            return [(source, "")]
        path = Path(source)
        if path.is_dir():
            return [(p, p.relative_to(path).as_posix())
                    for p in sorted(path.rglob("*")) if p.is_file()]
        return [(path, "")]
    return [(_member(p), str(i)) for i, p in enumerate(source)]


class SourceLabel(str):
    """How a source with remote files is named in messages, with the ``name`` of its (last) file
    like a ``Path`` label has (``Path`` would fold ``https://`` into ``https:/``)."""

    name: str

    def __new__(cls, text: str, name: str) -> SourceLabel:
        label = super().__new__(cls, text)
        label.name = name
        return label


def _label(source: Source) -> Path | SourceLabel:
    members = [source] if isinstance(source, str | Path) else list(source)
    if not any(is_remote(m) for m in members):
        return Path(" + ".join(str(p) for p in members))
    # URLs without their query string: a pre-signed URL's signature stays out of messages.
    return SourceLabel(" + ".join(source_uris(source)), file_name(_member(members[-1])))


def _check_exists(source: Source) -> None:
    """FileNotFoundError naming the first file of ``source`` (a URL: one HEAD request) that
    does not exist; for a STAC Item, the Item and then its PAN and MS assets."""
    paths = [source] if isinstance(source, str | Path) else list(source)
    for path in paths:
        if is_remote(path):
            check_remote(path)
        elif not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    if _is_stac_item(source):
        from crossdiff_core.stac import item_pair

        pair = item_pair(source)  # names the Item when it lists no PAN or MS
        _check_exists((pair.pan, pair.ms))


def _pair_scene_id(pan: Path | str, ms: Path | str) -> str:
    """The stems' common prefix (``scene_P`` + ``scene_MS`` -> ``scene``), else the PAN's folder
    (the last path component before the file, for a URL), else the PAN's stem (a URL at the root
    of its server)."""
    stems = [Path(file_name(p)).stem for p in (pan, ms)]
    prefix = os.path.commonprefix(stems).rstrip("_-. ")
    if len(prefix) >= 3:
        return prefix
    folder = remote_parent_name(pan) if is_remote(pan) else Path(pan).resolve().parent.name
    return folder or stems[0]


def source_uris(source: Source) -> list[str]:
    """The source as recorded in its stores (``source_uris``) and STAC Items: each path as
    given, each URL without its query string (which may hold credentials, e.g. a signature)."""
    members = [source] if isinstance(source, str | Path) else list(source)
    return [public_uri(m) if is_remote(m) else str(m) for m in members]


def _strip_suffixes(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem if path.is_file() else name


@contextlib.contextmanager
def _open_source(source: Source, sensor: str | None,
                 landsat_bands: dict | None) -> Iterator[list[RawPair]]:
    """Detect the format of ``source`` and yield its RawPairs (temporary files live until exit)."""
    label = _label(source)
    if not isinstance(source, str | Path):
        paths = [_member(p) for p in source]
        if len(paths) != 2 or any(Path(file_name(p)).suffix.lower() not in RASTER_SUFFIXES
                                  for p in paths):
            raise UnknownFormatError(f"{label}: a pair source is exactly two GeoTIFFs (PAN, MS)")
        yield [read_pair(paths[0], paths[1], label, _pair_scene_id(*paths), sensor)]
        return
    if _is_stac_item(source):
        from crossdiff_core.stac import item_pair

        pair = item_pair(source)
        yield [read_pair(_member(pair.pan), _member(pair.ms), label, pair.scene_id, sensor,
                         sensor_hint=pair.sensor_hint, extra_attrs=pair.extra_attrs)]
        return
    if is_remote(source):
        if remote_suffix(source) in RASTER_SUFFIXES:
            raise UnknownFormatError(
                f"{source}: a single GeoTIFF is not a scene: give the PAN and the MS GeoTIFF "
                "together (or a STAC Item listing both)"
            )
        raise UnknownFormatError(
            f"{source}: remote sources are GeoTIFFs (PAN then MS) or a STAC Item (.json); "
            "download other formats (archives, .h5, .mat) first"
        )
    path = Path(source)
    kind = archive_kind(path) if path.is_file() else None
    if path.is_dir() or kind is not None:
        context = ExtractedArchive(path) if kind else contextlib.nullcontext(path)
        with context as folder:
            yield [_read_folder(folder, label, _strip_suffixes(path), sensor, landsat_bands)]
        return
    suffix = path.suffix.lower()
    if suffix in MAT_SUFFIXES:
        yield [read_mat(path, sensor)]
    elif suffix in HDF5_SUFFIXES:
        yield list(read_pancollection(path, sensor))
    elif suffix in RASTER_SUFFIXES:
        raise UnknownFormatError(
            f"{path}: a single GeoTIFF is not a scene: give the PAN and the MS GeoTIFF together"
        )
    else:
        raise UnknownFormatError(
            f"{path}: not a known format (Landsat .tar/.tar.gz/folder, PAN + MS GeoTIFFs in a "
            "folder or .zip, PanCollection .h5, GRIP .mat, STAC Item .json)"
        )


def _read_folder(folder: Path, label: Path, name: str, sensor: str | None,
                 landsat_bands: dict | None) -> RawPair:
    if find_mtl(folder) is not None:
        return read_landsat(folder, label, sensor, **(landsat_bands or {}))
    pair = find_pair(folder, label)
    return read_pair(pair.pan, pair.ms, label, name, sensor)


def _resolve_sensor(raw: RawPair, sensor: str | None, label: Path) -> Sensor:
    name = sensor or raw.sensor_name
    if name is None:
        raise UnknownSensorError(
            f"{label}: the sensor cannot be detected; pass --sensor (e.g. WV3, QB, IKONOS, or "
            "'generic' for any other)"
        )
    n_bands = raw.ms.sizes["band"]
    ratio = raw.ratio
    if ratio is None and name.strip().lower() == "generic":
        ms_t, pan_t = raw.ms.rio.transform(), raw.pan.rio.transform()
        ratio = round(ms_t.a / pan_t.a)
    try:
        if raw.band_names is not None:
            resolved = get_sensor(name, ratio=ratio)
            if tuple(raw.band_names) != resolved.bands:
                gains = dict(zip(resolved.bands, resolved.mtf_gains_ms, strict=True))
                resolved = replace(
                    resolved, bands=tuple(raw.band_names),
                    mtf_gains_ms=tuple(gains.get(b, FALLBACK_MS_GAIN) for b in raw.band_names),
                    mtf_is_public=resolved.mtf_is_public and set(raw.band_names) <= set(gains),
                )
            return resolved
        return get_sensor(name, ratio=ratio, n_bands=n_bands)
    except ValueError as error:
        if "unknown sensor" in str(error):
            raise UnknownSensorError(f"{label}: {error}") from error
        raise InvalidContentError(f"{label}: {error}") from error


def _validator(label: Path, bands: Sequence[str], is_float: bool, digest: Callable[[], str],
               nodata: float | None = None):
    """Checks on the chunk summaries of the store being written (see write_scene_store)."""

    def finalize(summaries: dict) -> dict:
        pan, ms = summaries["pan"], summaries["ms"]
        nan = int(pan["nan"].sum() + ms["nan"].sum())
        if nan and nodata is not None and np.isnan(nodata):
            # Its nodata value is NaN already: NaN cannot be told apart from a missing value
            # downstream (nodata masks compare pixels with it), so a finite one is needed.
            raise InvalidContentError(
                f"{label}: {nan} pixels are NaN and the nodata value is NaN too, which cannot "
                "mask them; rewrite the rasters with a finite nodata value no real pixel has, "
                "e.g. `gdalwarp -srcnodata nan -dstnodata -9999 IN.tif OUT.tif`"
            )
        if nan:
            raise InvalidContentError(
                f"{label}: {nan} pixels are NaN; give the file a nodata value or fill them "
                "before ingesting"
            )
        for name, summary in (("PAN", pan), ("MS", ms)):
            if int(summary["nodata"].sum()) == int(summary["size"].sum()):
                raise InvalidContentError(f"{label}: the {name} is entirely nodata")
        if pan["min"][0] == pan["max"][0]:
            raise InvalidContentError(
                f"{label}: the PAN is constant (every pixel is {pan['min'][0]})"
            )
        for band, low, high in zip(bands, ms["min"], ms["max"], strict=True):
            if low == high:
                raise InvalidContentError(
                    f"{label}: MS band {band!r} is constant (every pixel is {low})"
                )
        added = {"source_sha256": digest()}
        if is_float:
            added["scale_max"] = float(max(pan["max"].max(), ms["max"].max()))
        return added

    return finalize


def _stores_with_attrs(out_dir: str | Path) -> list[tuple[Path, dict]]:
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    try:
        stores = find_scene_stores(out_dir)
    except ValueError:
        return []
    found = []
    for store in stores:
        try:
            attrs = read_store_attrs(store)
        except ValueError:  # unreadable zarr.json: what the manifest records, so it is repaired
            attrs = recorded_identity(store)
        found.append((store, attrs))
    return found


def find_ingested(out_dir: str | Path, digest: str) -> list[Path]:
    """Stores under ``out_dir`` whose ``source_sha256`` is ``digest``."""
    return [s for s, attrs in _stores_with_attrs(out_dir) if attrs.get("source_sha256") == digest]


def _could_match(out_dir: str | Path, size: int) -> bool:
    """Whether some store under ``out_dir`` may come from a source of ``size`` bytes (stores
    written before sizes were recorded may come from any source)."""
    return any(attrs.get("source_bytes", size) == size
               for _, attrs in _stores_with_attrs(out_dir))


ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip", *HDF5_SUFFIXES, *MAT_SUFFIXES)


def complete_entries(folder: str | Path) -> list[Path]:
    """The archives and delivery folders in ``folder`` (a landing zone, or the ``landed`` folder
    of the ingest stage), oldest first, then by name; [] when it does not exist.

    Hidden entries (``.gitkeep``, a half-moved ``.name.tmp``) and partial uploads (``.part``,
    ``.tmp``) are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if path.name.startswith(".") or path.name.endswith((".part", ".tmp")):
            continue
        if path.is_dir() or path.name.lower().endswith(ARCHIVE_SUFFIXES):
            found.append(path)
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def ingest_source(
    source: Source,
    out_dir: str | Path,
    sensor: str | None = None,
    chunk_size: int = 1024,
    scheduler: str = "threads",
    force: bool = False,
    progress: bool = False,
    landsat_bands: dict | None = None,
) -> IngestResult:
    """Ingest ``source`` (a path, or a (PAN, MS) pair of GeoTIFF paths) into ``out_dir``.

    ``sensor`` overrides detection (required when the source does not say); ``chunk_size`` is the
    PAN chunk edge (a multiple of the ratio); ``scheduler`` is threads, processes or a
    dask.distributed address; ``landsat_bands`` may set ``pan_band``/``ms_bands`` for Landsat.
    Raises an ``IngestError`` subclass (naming the file) for bad input; leaves no store then.
    """
    check_scheduler(scheduler)
    _check_exists(source)
    _remove_stale_partials(out_dir)
    # Also when this source is then skipped: a run killed while removing its extraction
    # folder leaves one that no later extraction would otherwise sweep.
    remove_stale_extractions()
    before = _existing_folders(out_dir)
    try:
        return _ingest_source(source, out_dir, sensor, chunk_size, scheduler, force, progress,
                              landsat_bands)
    except BaseException:
        _remove_new_empty_folders(out_dir, before)  # a refused source leaves nothing behind
        raise


def _existing_folders(out_dir: str | Path) -> set[Path] | None:
    """The sensor folders of ``out_dir`` now (None when ``out_dir`` does not exist)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return None
    return {entry for entry in out_dir.iterdir() if entry.is_dir()}


def _remove_new_empty_folders(out_dir: str | Path, before: set[Path] | None) -> None:
    """Remove the folders this ingest created (``out_dir``, sensor folders) that are empty."""
    out_dir = Path(out_dir)
    for folder in set(_existing_folders(out_dir) or ()) - set(before or ()):
        with contextlib.suppress(OSError):
            folder.rmdir()
    if before is None:
        with contextlib.suppress(OSError):
            out_dir.rmdir()


def _ingest_source(source: Source, out_dir: str | Path, sensor: str | None, chunk_size: int,
                   scheduler: str, force: bool, progress: bool,
                   landsat_bands: dict | None) -> IngestResult:
    label = _label(source)
    size = source_bytes(source)
    written: list[Path] = []
    stores: list[Path] = []  # written, or finished meanwhile by a concurrent run (skipped)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
        if not force and _could_match(out_dir, size):
            known = source_sha256(source)
            existing = find_ingested(out_dir, known)
            # When a store of this very source fails the full integrity check (every checksum:
            # less to read than the source just hashed), the source is ingested again and
            # replaces its stores (all of them: one file may give several).
            whole = all(verify_store(store).ok for store in existing)
            repair = frozenset() if whole else frozenset(store.resolve() for store in existing)
            if existing and not repair:
                attrs = read_store_attrs(existing[0])
                _write_items(existing, source, missing_only=True)
                return IngestResult(existing[0], True, str(attrs["scene_id"]),
                                    str(attrs["sensor"]), tuple(existing))

            def digest() -> str:
                return known

        else:
            # No store can hold this source: hash it while the chunks are being written.
            digest = hasher.submit(source_sha256, source).result
            repair = frozenset()
        with _open_source(source, sensor, landsat_bands) as raws:
            try:
                for raw in raws:
                    store, skipped = _ingest_pair(raw, label, digest, size, out_dir, sensor,
                                                  chunk_size, scheduler, force, progress, repair,
                                                  {"source_uris": source_uris(source)})
                    stores.append(store)
                    if not skipped:
                        written.append(store)
            except BaseException:
                # All or nothing: a file of several samples (PanCollection .h5) whose later
                # sample fails keeps none of its stores, so a rerun never says "skipped".
                for store in written:
                    shutil.rmtree(store, ignore_errors=True)
                raise
    # The STAC Item of each store, beside it; one a skipped store lacks is written too.
    _write_items(written, source)
    _write_items([s for s in stores if s not in written], source, missing_only=True)
    first = read_store_attrs(stores[0])
    return IngestResult(stores[0], not written, str(first["scene_id"]), str(first["sensor"]),
                        tuple(stores))


def _write_items(stores: Sequence[Path], source: Source, missing_only: bool = False) -> None:
    """Write the STAC Item beside each of ``stores`` (``crossdiff_core.stac.write_store_item``);
    with ``missing_only``, only where there is none or it describes an earlier store (stores
    written before Items existed, a run killed between a store and its Item)."""
    from crossdiff_core.stac import store_item_is_current, write_store_item

    for store in stores:
        if not (missing_only and store_item_is_current(store)):
            write_store_item(store, sources=_link_sources(source))


def _link_sources(source: Source) -> list[str]:
    """The source's files as STAC links take them: local paths absolute, URLs as recorded."""
    members = [source] if isinstance(source, str | Path) else list(source)
    return [public_uri(m) if is_remote(m) else str(Path(m).resolve()) for m in members]


def _remove_stale_partials(out_dir: str | Path) -> None:
    """Remove the partial stores (and other hidden siblings) and the lock files that killed runs
    left in the sensor folders of ``out_dir``; those of live processes stay."""
    out_dir = Path(out_dir)
    if out_dir.is_dir():
        for folder in out_dir.iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                remove_stale_siblings(folder)
                remove_stale_locks(folder)


def _chunked(array, files: BandFiles | None, dropped: dict | None,
             chunks: tuple[int, ...], readers: list[tuple[BandWindows, int]]):
    """``array`` (aligned, lazy) as dask chunks; read straight from its GeoTIFF bands when known
    (``dropped``: the pixels alignment cut from the top and left of the file). The reader made
    is added to ``readers`` with its chunks' row count."""
    if files is None or dropped is None:
        return array.chunk(dict(zip(array.dims, chunks, strict=True)))
    reader = BandWindows(files, (dropped["top"], dropped["left"]), array.shape[-2:], array.dtype)
    readers.append((reader, chunks[-2]))
    return array.copy(data=reader.to_dask(chunks))


def _ingest_pair(raw: RawPair, label: Path, digest: Callable[[], str], size: int,
                 out_dir: str | Path, sensor_override: str | None, chunk_size: int,
                 scheduler: str, force: bool, progress: bool,
                 repair: frozenset[Path] = frozenset(),
                 extra: dict | None = None) -> tuple[Path, bool]:
    """Write the store of ``raw``; returns it and whether it was skipped (a concurrent run of
    this source finished it first). ``repair``: resolved paths of damaged stores of this very
    source, replaced as if forced. ``extra``: more root attributes (``source_uris``)."""
    sensor = _resolve_sensor(raw, sensor_override, label)
    if raw.ratio is not None and raw.ratio != sensor.ratio:
        raise InvalidContentError(
            f"{label}: the file says ratio {raw.ratio} but sensor {sensor.name} has "
            f"{sensor.ratio}"
        )
    if raw.georeferenced:
        pan, ms, alignment = align_pair(raw.pan, raw.ms, sensor.ratio, raw.half_pixel_ok, label)
        crs = pan.rio.crs.to_wkt()
    else:
        alignment = check_nested_shapes(raw.pan, raw.ms, sensor.ratio, label)
        pan, ms, crs = raw.pan, raw.ms, None
    if chunk_size < sensor.ratio or chunk_size % sensor.ratio:
        raise ValueError(
            f"chunk_size {chunk_size} must be a positive multiple of the ratio {sensor.ratio}"
        )
    if pan.dtype != ms.dtype and not (pan.dtype.kind == ms.dtype.kind == "u"):
        raise InvalidContentError(f"{label}: PAN is {pan.dtype} but MS is {ms.dtype}")
    is_float = np.issubdtype(pan.dtype, np.floating)
    ms = ms.assign_coords(band=list(sensor.bands))
    ms_chunk = chunk_size // sensor.ratio
    readers: list[tuple[BandWindows, int]] = []
    pan = _chunked(pan, raw.pan_bands, alignment.get("pan_dropped"), (chunk_size, chunk_size),
                   readers)
    ms = _chunked(ms, raw.ms_bands, alignment.get("ms_dropped"),
                  (ms.sizes["band"], ms_chunk, ms_chunk), readers)
    bit_depth = raw.bit_depth or sensor.bit_depth
    try:
        # The id becomes a folder name: whatever the input's metadata says, it cannot escape.
        scene_id = safe_name(raw.scene_id, "scene id")
    except ValueError as error:
        raise InvalidContentError(f"{label}: {error}") from error
    attrs = scene_attributes(
        sensor, scene_id=scene_id, scale_max=float(2**bit_depth - 1), nodata=raw.nodata,
        # The digest is added once the chunks are written (it may still be being computed).
        crs=crs, source_name=label.name, source_sha256="", alignment=alignment,
        bit_depth=bit_depth,
        extra={"dtype": str(pan.dtype), "source_bytes": size, **raw.extra_attrs,
               **(extra or {})},
    )
    target = store_path(out_dir, sensor.name, scene_id)
    try:
        # One run at a time writes this scene (a concurrent one is told so, SceneBusyError).
        with scene_lock(target, label):
            # Under the lock no live run writes this scene: partials of earlier versions, which
            # do not name their owner, are stale too.
            remove_stale(target, unowned_too=True)
            if not force and _finished_meanwhile(target, digest, repair):
                return target, True
            # Stores of this very source being repaired (``repair``) are replaced as if forced.
            force = force or target.resolve() in repair
            if target.exists() and not force and store_problem(target):
                raise FileExistsError(
                    f"{label}: {target} already exists and is damaged or incomplete "
                    f"(`crossdiff verify {target}` says how); pass --force to replace it"
                )
            if target.exists() and not force:
                raise FileExistsError(
                    f"{label}: a different source already made {target}; pass --force "
                    "to replace it"
                )
            remote = any(str(path).startswith("/vsi") for reader, _ in readers
                         for path, _ in reader.files.bands)
            with gdal_cache_env(0, remote):  # this opens the files
                strips = sum(reader.strip_cache_bytes(rows) for reader, rows in readers)
            with gdal_cache_env(strips, remote), use_scheduler(scheduler) as distributed:
                return write_scene_store(
                    pan, ms, attrs, out_dir, chunk_size=chunk_size, overwrite=force,
                    progress=progress and not distributed,
                    finalize=_validator(label, sensor.bands, is_float, digest, raw.nodata),
                ), False
    except OSError as error:
        if is_no_space(error):
            raise no_space_error(target.parent, f"writing the store of {label}") from error
        raise
    finally:
        for reader, _ in readers:
            reader.close()


def _finished_meanwhile(target: Path, digest: Callable[[], str], repair: frozenset[Path]) -> bool:
    """Whether ``target`` is a sound store of this very source (``digest``), written by a
    concurrent run after this one looked for it (or, for one this run found damaged, repaired
    since: checked in full again)."""
    if not target.exists():
        return False
    try:
        recorded = read_store_attrs(target).get("source_sha256")
    except ValueError:
        return False
    if recorded != digest():
        return False
    if target.resolve() in repair:
        return verify_store(target).ok
    return not store_problem(target)


__all__ = ["IngestResult", "ingest_source", "source_sha256", "find_ingested", "complete_entries",
           "AlignmentError"]
