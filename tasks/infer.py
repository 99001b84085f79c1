"""Prefect task of whole-scene pansharpening (crossdiff_core.infer)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE


@task(name="pansharpen-scene", cache_policy=NO_CACHE)
def pansharpen_task(
    model: str,
    scene_path: Path,
    out: Path,
    fmt: str = "cog",
    tile: int = 640,
    blend: int = 32,
    batch_size: int = 1,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Fuse the scene store ``scene_path`` with ``model`` (a pansharpener folder or a baseline
    name) into ``out``; returns ``out``."""
    from crossdiff_core.infer import load_fuser, pansharpen_scene
    from crossdiff_core.io.store import open_scene

    scene = open_scene(scene_path)
    fuser = load_fuser(model, scene, device)
    return pansharpen_scene(
        scene,
        fuser,
        out,
        fmt=fmt,
        tile=tile,
        blend=blend,
        batch_size=batch_size,
        overwrite=overwrite,
        progress=progress,
    )
