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
