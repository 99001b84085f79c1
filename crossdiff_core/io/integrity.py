"""Scene stores that prove they are whole: the manifest ingest writes last, the cheap check every
reader makes on open, and the full check of ``crossdiff verify``.

The manifest is ``manifest.json`` at the root of the store (a plain file beside the root
``zarr.json``, not a Zarr attribute: it has to cover ``zarr.json`` itself). It is written after
every array, attribute and the consolidated metadata, just before the store is renamed into
place, so a store without one is incomplete (or was written before manifests existed). It holds:

- ``store``: the scene's sensor, scene_id, source_name, source_sha256 and source_bytes, so a
  damaged store whose ``zarr.json`` is unreadable still says where it came from;
- ``arrays``: per Zarr array (``pan/pan``, ``ms/ms``, ``pan/x``, ...) its ``shape``, ``dtype``,
  ``chunk_shape``, ``chunk_grid`` (chunks per dimension) and ``chunk_files``, the number of chunk
  files written (fewer than the grid when chunks holding only the fill value were left out, as
  Zarr does: those read back as the fill value by design);
- ``files``: every file of the store (metadata and chunks), relative POSIX path -> ``size`` in
  bytes and ``sha256``.

``check_store`` (cheap, on every open: one ``stat`` per file and a JSON parse of each ``zarr.json``;
no chunk is read) and ``verify_store`` (every byte hashed) turn a damaged store into a one-line
``DamagedStoreError`` naming the store, what is wrong and the repair,
``crossdiff ingest SOURCE --out OUT --force``. ``checked_array`` makes reads name the chunk file
that cannot be decoded instead of failing deep inside Blosc, and refuses a chunk file that
disappeared after the open instead of reading it as zeros.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crossdiff_core.io.errors import DamagedStoreError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "crossdiff-scene-store-manifest"
MANIFEST_VERSION = 1
METADATA_NAME = "zarr.json"
_IDENTITY = ("sensor", "scene_id", "source_name", "source_sha256", "source_bytes")
_SHOWN_PROBLEMS = 3


def file_sha256(path: str | Path) -> str:
    """sha256 of one file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` as a sorted relative POSIX path, the manifest left out."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in names:
            relative = (Path(root) / name).relative_to(folder).as_posix()
            if relative != MANIFEST_NAME:
                found.append(relative)
    return sorted(found)


def write_manifest(folder: str | Path) -> dict:
    """Hash every file of the complete store ``folder`` and write its ``manifest.json``; return it.

    Call this last, once every array, attribute and the consolidated metadata are written: the
    manifest describes the store as it is now. The file is flushed to disk before returning.
    """
    folder = Path(folder)
    files = {name: {"size": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
             for name in _files(folder)}
    arrays = {}
    for name in files:
        if not name.endswith(METADATA_NAME):
            continue
        metadata = json.loads((folder / name).read_text())
        if metadata.get("node_type") != "array":
            continue
        array = name[: -len(METADATA_NAME)].rstrip("/")
        shape = [int(n) for n in metadata["shape"]]
        chunk_shape = [int(n) for n in metadata["chunk_grid"]["configuration"]["chunk_shape"]]
        arrays[array] = {
            "shape": shape,
            "dtype": metadata["data_type"],
            "chunk_shape": chunk_shape,
            "chunk_grid": [-(-n // c) for n, c in zip(shape, chunk_shape, strict=True)],
            "chunk_files": sum(1 for f in files if f.startswith(f"{array}/")
                               and not f.endswith(METADATA_NAME)),
        }
    root_attrs = json.loads((folder / METADATA_NAME).read_text()).get("attributes", {})
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "checksum": "sha256",
        "store": {key: root_attrs.get(key) for key in _IDENTITY},
        "arrays": arrays,
        "files": files,
    }
    with open(folder / MANIFEST_NAME, "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    return manifest


def repair_hint(path: str | Path, source_name: object = None) -> str:
    """The command that rebuilds the store at ``path`` (``<out>/<sensor>/<scene_id>.zarr``)."""
    source = str(source_name) if source_name else "SOURCE"
    return f"crossdiff ingest {source} --out {Path(path).parent.parent} --force"


def _recorded_source(path: Path) -> object:
    """The source name the store records (manifest first, then ``zarr.json``), or None."""
    for name, key in ((MANIFEST_NAME, "store"), (METADATA_NAME, "attributes")):
        try:
            section = json.loads((path / name).read_text()).get(key) or {}
            if section.get("source_name"):
                return section["source_name"]
        except (OSError, ValueError, AttributeError):
            continue
    return None


def damaged(path: str | Path, problems: list[str], source_name: object = None) -> DamagedStoreError:
    """The one-line error for the store at ``path`` with ``problems`` (the first few shown)."""
    path = Path(path)
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    if len(problems) > _SHOWN_PROBLEMS:
        shown += f" (and {len(problems) - _SHOWN_PROBLEMS} more)"
    source = source_name if source_name is not None else _recorded_source(path)
    return DamagedStoreError(
        f"scene store {path} is damaged: {shown}; repair it with `{repair_hint(path, source)}`"
    )


def _safe_relative(name: object) -> bool:
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


class _ManifestProblem(Exception):
    """What is wrong with a store's manifest (internal: becomes a DamagedStoreError)."""


def _load_manifest(path: Path) -> dict:
    file = path / MANIFEST_NAME
    try:
        manifest = json.loads(file.read_bytes())
    except FileNotFoundError:
        raise _ManifestProblem(f"{MANIFEST_NAME} is missing (the store was never completed, or "
                               "was written before stores recorded one)") from None
    except (OSError, ValueError) as error:
        raise _ManifestProblem(f"{MANIFEST_NAME} cannot be read ({_reason(error)})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    arrays = manifest.get("arrays") if isinstance(manifest, dict) else None
    valid = (
        isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT
        and isinstance(files, dict) and isinstance(arrays, dict)
        and isinstance(manifest.get("store", {}), dict)
        and all(_safe_relative(name) and isinstance(entry, dict)
                and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)
                for name, entry in files.items())
        and all(isinstance(entry, dict) and isinstance(entry.get("shape"), list)
                and isinstance(entry.get("chunk_shape"), list) for entry in arrays.values())
    )
    if not valid:
        raise _ManifestProblem(f"{MANIFEST_NAME} is not a scene store manifest")
    if manifest.get("version") != MANIFEST_VERSION:
        raise _ManifestProblem(f"{MANIFEST_NAME} has version {manifest.get('version')!r}, this "
                               f"software reads version {MANIFEST_VERSION}")
    return manifest


def read_manifest(path: str | Path) -> dict:
    """The parsed manifest of the store at ``path``; DamagedStoreError when it is missing (a
    store written before manifests existed, or never completed) or unreadable."""
    try:
        return _load_manifest(Path(path))
    except _ManifestProblem as problem:
        raise damaged(path, [str(problem)]) from None


def _reason(error: BaseException) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        return "not valid JSON: not UTF-8 text"
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return " ".join(str(error).split()) or type(error).__name__


def _missing_root(path: Path, name: str) -> str:
    """The highest missing folder on the way to the missing file ``name``, or ``name``."""
    parts = name.split("/")
    for depth in range(1, len(parts)):
        folder = "/".join(parts[:depth])
        if not (path / folder).is_dir():
            return f"{folder}/"
    return name


def _missing_and_sizes(path: Path, manifest: dict) -> list[str]:
    """Problems found by one ``stat`` per file: missing files (a whole missing folder once),
    files of the wrong size."""
    problems: list[str] = []
    missing: dict[str, int] = {}
    for name, entry in manifest["files"].items():
        try:
            size = os.stat(path / name).st_size
        except (FileNotFoundError, NotADirectoryError):
            root = _missing_root(path, name)
            missing[root] = missing.get(root, 0) + 1
            continue
        except OSError as error:
            problems.append(f"{name} cannot be read ({_reason(error)})")
            continue
        if size != entry["size"]:
            problems.append(f"{name} has {size} bytes instead of {entry['size']}")
    gone = [f"{root} is missing" if count == 1 or not root.endswith("/")
            else f"{root} is missing ({count} files)" for root, count in missing.items()]
    return gone + problems


def _metadata_problems(path: Path, manifest: dict) -> list[str]:
    """Each ``zarr.json`` of the manifest that is present must parse, and an array's shape must
    be the one recorded."""
    problems = []
    for name in manifest["files"]:
        if not name.endswith(METADATA_NAME) or not (path / name).is_file():
            continue
        try:
            metadata = json.loads((path / name).read_bytes())
            if not isinstance(metadata, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            problems.append(f"{name} cannot be read ({_reason(error)})")
            continue
        array = name[: -len(METADATA_NAME)].rstrip("/")
        recorded = manifest["arrays"].get(array)
        if recorded is not None and metadata.get("shape") != recorded["shape"]:
            problems.append(f"{name} gives shape {metadata.get('shape')}, the manifest "
                            f"{recorded['shape']}")
    return problems


def check_store(path: str | Path) -> dict:
    """Cheaply check that the store at ``path`` is whole and return its manifest.

    Checks the manifest is present and parses, every file it lists is present with its recorded
    size, and every ``zarr.json`` parses and gives the recorded shape; reads no chunk. Raises a
    one-line ``DamagedStoreError`` naming the store, the problem and the repair command.
    """
    path = Path(path)
    manifest = read_manifest(path)
    problems = _missing_and_sizes(path, manifest) or _metadata_problems(path, manifest)
    if problems:
        raise damaged(path, problems, manifest.get("store", {}).get("source_name"))
    return manifest


def store_problem(path: str | Path) -> str | None:
    """None when ``check_store`` passes on ``path``, else its message."""
    try:
        check_store(path)
    except DamagedStoreError as error:
        return str(error)
    return None


def recorded_identity(path: str | Path) -> dict:
    """The sensor, scene id and source (name, sha256, bytes) the manifest of ``path`` records;
    {} when it has no readable manifest. Lets ingest recognise its own damaged stores."""
    try:
        store = json.loads((Path(path) / MANIFEST_NAME).read_bytes()).get("store")
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: v for k, v in store.items() if v is not None} if isinstance(store, dict) else {}


@dataclass
class VerifyReport:
    """What ``verify_store`` found: ``problems`` is empty for a whole store."""

    path: Path
    problems: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    source_name: object = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def error(self) -> DamagedStoreError:
        """The one-line error for this report (only meaningful when not ``ok``)."""
        return damaged(self.path, self.problems, self.source_name)


def verify_store(path: str | Path) -> VerifyReport:
    """Fully check the store at ``path``: everything ``check_store`` checks, plus the sha256 of
    every file against the manifest, and files present that the manifest does not list (a chunk
    the manifest does not know would be read instead of the fill value)."""
    path = Path(path)
    report = VerifyReport(path)
    if not path.is_dir():
        report.problems.append("it is not a folder" if path.exists() else "it does not exist")
        return report
    try:
        manifest = _load_manifest(path)
    except _ManifestProblem as problem:
        report.problems.append(str(problem))
        report.source_name = _recorded_source(path)
        return report
    report.source_name = manifest.get("store", {}).get("source_name")
    report.problems.extend(_missing_and_sizes(path, manifest))
    report.problems.extend(_metadata_problems(path, manifest))
    flagged = {p.split(" ", 1)[0] for p in report.problems}
    for name, entry in manifest["files"].items():
        file = path / name
        if name in flagged or not file.is_file():
            continue
        try:
            digest = file_sha256(file)
        except OSError as error:
            report.problems.append(f"{name} cannot be read ({_reason(error)})")
            continue
        report.files += 1
        report.bytes += entry["size"]
        if digest != entry["sha256"]:
            report.problems.append(f"{name} does not match its checksum")
    listed = set(manifest["files"])
    report.problems.extend(f"{name} is not in the manifest" for name in _files(path)
                           if name not in listed)
    return report


class CheckedChunks:
    """A Zarr array of a checked store for ``dask.array.from_array``: reads that fail name the
    chunk file, and a chunk file the manifest lists but that is gone is refused (Zarr would read
    it as the fill value).

    Pickles without the opened array (process and distributed schedulers reopen it).
    """

    def __init__(self, store: Path, name: str, shape: tuple[int, ...], dtype: np.dtype,
                 chunk_shape: tuple[int, ...], files: frozenset[str], source_name: object) -> None:
        self.store = Path(store)
        self.name = name
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.chunk_shape = tuple(chunk_shape)
        self.files = files
        self.source_name = source_name
        self._array = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}

    def _open(self):
        if self._array is None:
            import zarr

            self._array = zarr.open_array(str(self.store / self.name), mode="r")
        return self._array

    def _chunk_file(self, coords: tuple[int, ...]) -> str:
        key = self._open().metadata.chunk_key_encoding.encode_chunk_key(coords)
        return f"{self.name}/{key}"

    def _chunks(self, key: tuple) -> list[tuple[int, ...]]:
        from itertools import product

        ranges = []
        for index, size, chunk in zip(key, self.shape, self.chunk_shape, strict=False):
            start, stop, _ = index.indices(size) if isinstance(index, slice) else (
                int(index), int(index) + 1, 1)
            ranges.append(range(start // chunk, max(start // chunk + 1, -(-stop // chunk))))
        ranges += [range(-(-n // c)) for n, c in
                   zip(self.shape[len(ranges):], self.chunk_shape[len(ranges):], strict=True)]
        return list(product(*ranges))

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if not all(isinstance(k, slice | int | np.integer) for k in key):
            return self._read(key)
        coords = self._chunks(key)
        gone = [name for name in map(self._chunk_file, coords)
                if name in self.files and not (self.store / name).is_file()]
        if gone:
            raise damaged(self.store, [f"{name} is missing" for name in gone], self.source_name)
        try:
            return self._read(key)
        except Exception as error:
            bad = [c for c in coords if self._fails(c)] or coords
            files = ", ".join(self._chunk_file(c) for c in bad[:_SHOWN_PROBLEMS])
            raise damaged(self.store, [f"chunk file {files} cannot be decoded ({_reason(error)})"],
                          self.source_name) from error

    def _read(self, key):
        return self._open()[key]

    def _fails(self, coords: tuple[int, ...]) -> bool:
        try:
            self._open().get_block_selection(coords)
        except Exception:
            return True
        return False


def checked_array(variable, store: Path, name: str, manifest: dict):
    """``variable`` (an xarray DataArray opened lazily from ``store``, the Zarr array ``name``)
    with its dask data read through ``CheckedChunks``, or unchanged when xarray decodes it
    (scale, offset or a mask: reading Zarr directly would give other values)."""
    import dask.array as da
    from dask.base import tokenize

    recorded = manifest["arrays"].get(name)
    encoding = variable.encoding
    if (recorded is None or not hasattr(variable.data, "chunks")
            or any(k in encoding or k in variable.attrs
                   for k in ("scale_factor", "add_offset", "_FillValue", "missing_value"))
            or np.dtype(encoding.get("dtype", variable.dtype)) != variable.dtype):
        return variable
    files = frozenset(f for f in manifest["files"] if f.startswith(f"{name}/"))
    reader = CheckedChunks(store, name, variable.shape, variable.dtype,
                           tuple(recorded["chunk_shape"]), files,
                           manifest.get("store", {}).get("source_name"))
    token = tokenize(str(Path(store).resolve()), name, manifest["files"].get(f"{name}/zarr.json"),
                     sorted(files))
    data = da.from_array(reader, chunks=variable.data.chunks, name=f"read-{name}-{token}",
                         lock=False, asarray=True,
                         meta=np.empty((0,) * variable.ndim, dtype=variable.dtype))
    return variable.copy(deep=False, data=data)


def find_store_folders(paths) -> list[Path]:
    """Store folders for ``crossdiff verify``: each path named, when it is a ``*.zarr`` folder
    (damaged or not), else the ``*.zarr`` and ``*/*.zarr`` folders inside it (hidden ones, being
    written, left out). Raises FileNotFoundError for a path that does not exist and ValueError
    for a folder holding no store."""
    found: list[Path] = []
    for raw in [paths] if isinstance(paths, str | Path) else paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: give scene stores or folders of them")
        if path.suffix == ".zarr" or (path / MANIFEST_NAME).is_file():
            candidates = [path]
        else:
            candidates = sorted(p for pattern in ("*.zarr", "*/*.zarr") for p in path.glob(pattern)
                                if p.is_dir() and not p.name.startswith("."))
        if not candidates:
            raise ValueError(f"no scene stores in {path}")
        found.extend(c for c in candidates if c not in found)
    return found
