"""Scene lookups the stages share: plain functions over the store metadata (no Prefect state)."""

from __future__ import annotations

from crossdiff_core.io.store import find_scene_stores, read_store_attrs


def scene_stores(scenes: list[str]) -> list[str]:
    """The scene stores named in ``scenes`` (stores or folders of ``<sensor>/<id>.zarr``)."""
    return [str(path) for path in find_scene_stores(scenes)]


def scenes_sensor(scenes: list[str]) -> str:
    """The sensor of the first scene store found in ``scenes`` (tags and registry names)."""
    stores = find_scene_stores(scenes)
    return str(read_store_attrs(stores[0])["sensor"]) if stores else "unknown"
