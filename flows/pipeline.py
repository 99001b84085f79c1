"""The full-pipeline and nightly flows: ``dvc repro``, so ``dvc.lock`` describes the models.

The stages run only through DVC (``tasks.dvc.dvc_repro_task``): DVC reruns the stages whose code,
params or data changed, records their new hashes in dvc.lock, and the flow's log says which stages
it ran. Running a stage's ``main()`` directly would rewrite DVC outputs behind DVC's back.
With ``CROSSDIFF_DASK_ADDRESS`` set, ``dvc repro`` runs on a worker of that Dask cluster (which
must see the project folder at the same path).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.runners import on_dask_cluster
from tasks.dvc import dvc_repro_task, schedule_lock


def _repro(targets: list[str] | None = None, force: bool = False) -> list[str]:
    """``dvc repro`` through the flow's task runner (a Dask worker when the flow runs on a
    cluster), in this project folder given by absolute path."""
    return dvc_repro_task.submit(targets, force, project=str(Path.cwd())).result()


@flow(name="crossdiff-pipeline")
def pipeline_flow(stages: list[str] | None = None, force: bool = False) -> list[str]:
    """``dvc repro`` of ``stages`` (dvc.yaml stage names; default: every stage) in the working
    directory (the project root): what changed reruns, with the stages before it that changed;
    ``force`` reruns the named stages and the stages before them (all without names) even when
    nothing changed. Returns the stages DVC ran."""
    with schedule_lock():
        return _repro(stages, force)


@flow(name="readapt")
def readapt_flow() -> list[str]:
    """Nightly: ``dvc repro`` of what changed since the last run (new landed scenes the landing
    flow could not reproduce, edited params or code): re-adapting and re-evaluating (which may
    promote a new champion) when their inputs changed, nothing when the pipeline is up to date.
    Returns the stages DVC ran."""
    with schedule_lock():
        return _repro()


# The deployments' entrypoints run their task on the Dask cluster at $CROSSDIFF_DASK_ADDRESS
# (read when the flow run imports this module) when it is set (flows.runners.on_dask_cluster).
pipeline_flow = on_dask_cluster(pipeline_flow)
readapt_flow = on_dask_cluster(readapt_flow)


if __name__ == "__main__":
    pipeline_flow()
