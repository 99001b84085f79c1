"""Handing a flow's tasks to an existing Dask cluster (scale-out without code changes)."""

from __future__ import annotations

import os

from prefect import Flow

DASK_ADDRESS_VARIABLE = "CROSSDIFF_DASK_ADDRESS"


def on_dask_cluster(flow: Flow, address: str | None = None) -> Flow:
    """``flow`` with a DaskTaskRunner on ``address`` (or ``$CROSSDIFF_DASK_ADDRESS``, e.g.
    ``tcp://scheduler:8786``); unchanged when neither is set. Tasks submitted by the flow (the
    P2M and M2P branches of pretraining, for instance) then run on the cluster's workers."""
    address = address or os.environ.get(DASK_ADDRESS_VARIABLE)
    if not address:
        return flow
    from prefect_dask import DaskTaskRunner

    return flow.with_options(task_runner=DaskTaskRunner(address=address))


def run_each(task, calls: list[tuple]) -> list:
    """``task(*arguments)`` for each tuple of ``calls``, results in order.

    Submitted all at once when the flow's task runner runs tasks in other processes (a Dask
    cluster, see :func:`on_dask_cluster`); one after another otherwise. Two trainings sharing this
    process's threads do not give reproducible models: torch's CPU kernels then round gradients
    differently from run to run (measured on the pretraining branches: losses differ from step 2,
    so every ``dvc repro`` trained other UNets). One after another they are bitwise reproducible,
    and on a shared CPU no slower.
    """
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    context = FlowRunContext.get()
    if context is None:  # outside a flow run: the plain functions (no task runs, no API server)
        return [task.fn(*arguments) for arguments in calls]
    if isinstance(context.task_runner, ThreadPoolTaskRunner):
        return [task.submit(*arguments).result() for arguments in calls]
    futures = [task.submit(*arguments) for arguments in calls]
    return [future.result() for future in futures]
