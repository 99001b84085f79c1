"""Pansharpen whole scenes with an adapted model or a classical baseline.

``python -m flows.pansharpen`` reads the ``pansharpen`` section of params.yaml.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.params import load_params
from tasks.infer import pansharpen_task


@flow(name="pansharpen")
def pansharpen_flow(
    model: str,
    scene: str,
    out: str,
    fmt: str = "cog",
    tile: int = 640,
    blend: int = 32,
    batch_size: int = 1,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> str:
    """Fuse one scene store with ``model`` (pansharpener folder or baseline name) into ``out``."""
    return str(
        pansharpen_task(
            model,
            Path(scene),
            Path(out),
            fmt=fmt,
            tile=tile,
            blend=blend,
            batch_size=batch_size,
            device=device,
            overwrite=overwrite,
            progress=progress,
        )
    )


def main() -> None:
    params = load_params("pansharpen")
    for scene in params["scenes"]:
        out = (
            Path(params["out"])
            / f"{Path(scene).stem}.{'tif' if params.get('format', 'cog') == 'cog' else 'zarr'}"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        pansharpen_flow(
            model=str(params["model"]),
            scene=str(scene),
            out=str(out),
            fmt=params.get("format", "cog"),
            tile=int(params.get("tile", 640)),
            blend=int(params.get("blend", 32)),
            batch_size=int(params.get("batch_size", 1)),
            device=str(params.get("device", "auto")),
            overwrite=True,
        )


if __name__ == "__main__":
    main()
