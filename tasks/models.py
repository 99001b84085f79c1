"""Whole-scene fusion for every entry point: the model address resolved in one place, the scene
fused with the model loaded and checked once.

Plain functions without Prefect: the pansharpen flow runs ``fuse_store`` as a task
(tasks/infer.py) and ``crossdiff pansharpen`` calls it directly, so a one-shot command starts no
Prefect server (and imports no MLflow unless the model is a registry address).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from crossdiff_core.config import PansharpenParams

REGISTRY_PREFIX = "models:/"


@contextlib.contextmanager
def local_model(model: str | Path) -> Iterator[str]:
    """``model`` as ``fuse_store`` takes it. A registry address (``models:/<name>@<alias>`` or
    ``models:/<name>/<version>``) is downloaded into a temporary folder, removed on exit; a
    pansharpener folder or a baseline name passes through unchanged.

    The registry is the MLflow store where the command runs (``MLFLOW_TRACKING_URI``, else
    ``mlflow.db`` in the current folder); the lookup prints nothing and creates no store: without
    one it raises ``tasks.tracking.StoreNotFoundError`` (an OSError) naming the path and how to
    make one."""
    if not str(model).startswith(REGISTRY_PREFIX):
        yield str(model)
        return
    from tasks.tracking import resolve_model_uri

    with tempfile.TemporaryDirectory(prefix="crossdiff-model-") as download:
        yield str(resolve_model_uri(str(model), Path(download)))


def fuse_store(model: str, scene: str | Path, out: str | Path, config: PansharpenParams,
               overwrite: bool = False, progress: bool = True,
               inputs: dict[str, dict] | None = None, scheduler: str | None = None) -> Path:
    """Fuse the scene store ``scene`` with ``model`` (a local pansharpener folder or a baseline
    name: see ``local_model``) into ``out`` with the tiling, format, clip policy, creation
    options and device of ``config``; returns ``out``.

    The output records its provenance (``crossdiff_core.infer.provenance``): the method, the
    model as ``config.model`` names it when that is a registry address (``model`` is then its
    download), else ``model``; its version (``sha256:`` of a pansharpener folder, the registry's
    ``content_sha256`` tag of that version; the software version for a classical method); the
    ``inputs`` the caller fused (e.g. the PAN and MS files; default: the scene store and the
    sha256 of its source), the software version, the settings and the clip count. A STAC Item
    describing it is written beside it (``crossdiff_core.stac.write_output_item``).

    ``scheduler``: None fuses in this process; a dask.distributed address (``tcp://host:8786``)
    or ``local:N[:MEMORY]`` (a LocalCluster started for the call) fuses on the cluster's workers
    (``crossdiff_core.infer.distributed``), which gives the same file bit for bit.
    """
    from crossdiff_core.infer import load_fuser, pansharpen_scene
    from crossdiff_core.infer.fusers import ModelFuser
    from crossdiff_core.infer.provenance import folder_sha256, read_provenance
    from crossdiff_core.io.store import open_scene
    from crossdiff_core.stac import write_output_item

    opened = open_scene(scene)
    fuser = load_fuser(model, opened, config.device)
    named = config.model if str(config.model).startswith(REGISTRY_PREFIX) else str(model)
    provenance: dict = {
        "model": named,
        "inputs": inputs or {"scene": {"path": str(Path(scene).resolve()),
                                       "sha256": opened.attrs.get("source_sha256")}},
    }
    if isinstance(fuser, ModelFuser):
        provenance["model_version"] = f"sha256:{folder_sha256(model)}"
        provenance["parameters"] = {"device": fuser.device}
    else:
        provenance["method"] = str(model).strip().lower().replace("-", "_")
    output = {"clip": config.clip, "creation_options": config.creation_options or None,
              "provenance": provenance}
    if scheduler is None:
        written = pansharpen_scene(opened, fuser, out, fmt=config.format, tile=config.tile,
                                   blend=config.blend, batch_size=config.batch_size,
                                   overwrite=overwrite, progress=progress, **output)
    else:
        from crossdiff_core.infer.distributed import pansharpen_scene_distributed
        from crossdiff_core.io.scheduler import cluster_client

        with cluster_client(scheduler) as client:
            written = pansharpen_scene_distributed(
                scene, model, out, client, fmt=config.format, tile=config.tile,
                blend=config.blend, batch_size=config.batch_size,
                device=getattr(fuser, "device", "cpu"), overwrite=overwrite, **output)
    # The Item says what the file says: the record as written, with its clip count.
    write_output_item(written, read_provenance(written))
    return written
