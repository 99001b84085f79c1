"""Pansharpen whole scenes with an adapted model, a registered model or a classical baseline.

``python -m flows.pansharpen`` reads the ``pansharpen`` section of params.yaml and writes one
output per scene store found in ``pansharpen.scenes``: ``<out>/<scene_id>.tif`` (or ``.zarr``).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from crossdiff_core.config import PansharpenParams
from flows.params import load_config
from tasks.infer import pansharpen_task
from tasks.models import local_model


def output_path(config: PansharpenParams, store: str | Path) -> Path:
    return Path(config.out) / f"{Path(store).stem}.{'tif' if config.format == 'cog' else 'zarr'}"


@flow(name="pansharpen")
def pansharpen_flow(config: PansharpenParams, overwrite: bool = True,
                    progress: bool = True) -> list[str]:
    """Fuse every scene store found in ``config.scenes`` with ``config.model`` (a folder, a
    registry address, downloaded once for all scenes, or a baseline name); returns the outputs."""
    from crossdiff_core.io.store import find_scene_stores

    logger = get_run_logger()
    written = []
    with local_model(config.model) as model:
        for store in find_scene_stores(config.scenes):
            out = output_path(config, store)
            out.parent.mkdir(parents=True, exist_ok=True)
            written.append(str(pansharpen_task(model, store, out, config, overwrite=overwrite,
                                               progress=progress)))
            logger.info("pansharpened %s with %s -> %s", store, config.model, out)
    return written


def main() -> None:
    pansharpen_flow(load_config("pansharpen"))


if __name__ == "__main__":
    main()
