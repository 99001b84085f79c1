"""What an output says about how it was made: the provenance record written into every COG
(dataset metadata) and Zarr output (attributes), and read back from them.

The record is a plain dict (JSON-able) with these keys:

- ``method``: ``crossdiff`` for a saved pansharpener, else the classical method's name;
- ``model``: the model as the user named it (folder, ``models:/<name>@<alias>``, baseline name);
- ``model_version``: ``sha256:<hex>`` of a pansharpener folder (the ``content_sha256`` tag the
  registry puts on the version holding it), the software version for a classical method;
- ``inputs``: ``{name: {"path": ..., "sha256": ...}}``, the PAN and MS files (sha256 of each
  local file; None for a remote one, see ``source_sha256``) or the scene store (sha256 of the
  source it was ingested from);
- ``source_sha256``: the sha256 the scene store records of its source (for a PAN + MS pair,
  over both files);
- ``scene_id``, ``sensor``;
- ``software``, ``software_version`` (``crossdiff_core.__version__``);
- ``parameters``: the settings that shaped the pixels (clip policy, tiling of a model, format,
  creation options);
- ``clipped_pixels``: pixels of which at least one band was clipped (``clip`` policy), filled in
  when the output is complete, with ``clipped_per_band`` beside it.

No time stamp: the same inputs, model and settings give the same file, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from crossdiff_core.io.integrity import file_sha256

# GeoTIFF metadata items holding JSON; every other provenance item is a plain string.
JSON_KEYS = ("inputs", "parameters", "clipped_per_band")
INT_KEYS = ("clipped_pixels",)
TAG_KEYS = ("method", "model", "model_version", "inputs", "source_sha256", "scene_id", "sensor",
            "software", "software_version", "parameters", "clipped_pixels", "clipped_per_band")
ZARR_ATTR = "provenance"


def is_remote(source: str | Path) -> bool:
    """Whether ``source`` names something GDAL reads over a network (``https://``, ``s3://``,
    ``/vsicurl/``...) rather than a local file."""
    text = str(source)
    return "://" in text or text.startswith("/vsi")


def folder_sha256(folder: str | Path) -> str:
    """sha256 over a folder's sorted relative file names and contents: the same digest the
    model registry tags each version with (``content_sha256``), so a file names its version."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def input_record(path: str | Path) -> dict[str, Any]:
    """``{"path", "sha256"}`` of one input file: its sha256 when it is local, None when remote
    (it is not downloaded a second time only to be hashed)."""
    text = str(path)
    if is_remote(text) or not Path(text).is_file():
        return {"path": text, "sha256": None}
    return {"path": str(Path(text).resolve()), "sha256": file_sha256(text)}


def to_tags(provenance: dict[str, Any]) -> dict[str, str]:
    """The record as GeoTIFF metadata items (strings; dicts and lists as JSON)."""
    tags = {}
    for key, value in provenance.items():
        if value is None:
            continue
        tags[key] = json.dumps(value, sort_keys=True) if key in JSON_KEYS or isinstance(
            value, dict | list) else str(value)
    return tags


def from_tags(tags: dict[str, str]) -> dict[str, Any]:
    """The record back from GeoTIFF metadata items (``to_tags``'s inverse for its keys)."""
    record: dict[str, Any] = {}
    for key in TAG_KEYS:
        if key not in tags:
            continue
        value = tags[key]
        record[key] = (json.loads(value) if key in JSON_KEYS
                       else int(value) if key in INT_KEYS else value)
    return record


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance record of a pansharpened output (a COG or a Zarr store)."""
    path = Path(path)
    if path.is_dir():
        import zarr

        attrs = dict(zarr.open_group(str(path), mode="r")["fused"].attrs)
        return dict(attrs.get(ZARR_ATTR, {}))
    import rasterio

    with rasterio.open(path) as dataset:
        return from_tags(dataset.tags())
