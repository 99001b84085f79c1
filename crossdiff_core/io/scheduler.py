"""Choosing where dask computes: local threads, local processes or a dask.distributed cluster.

A scheduler is named by one string (``ingest.scheduler``, ``--scheduler``):

- ``threads``, ``processes``, ``synchronous``: dask's local schedulers in this process;
- ``tcp://host:8786`` (any ``scheme://``): an existing dask.distributed scheduler; its workers
  must see the same file system paths as this process (inputs, stores and outputs);
- ``local:N`` or ``local:N:LIMIT`` (``local:2:1GiB``): a dask.distributed ``LocalCluster`` of N
  worker processes of one thread each, started for the command and stopped after it, each with
  the memory limit LIMIT (dask's units: ``1GiB``, ``512MiB``, ``2GB``; default: dask's share of
  this machine's memory). A worker over 95 % of its limit is restarted by its nanny and its tasks
  recomputed elsewhere, so the limit is enforced, not advisory.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import dask

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
_LOCAL_CLUSTER = re.compile(r"^local:(?P<workers>\d+)(?::(?P<memory>[0-9.]+\s*[A-Za-z]*))?$")


def check_scheduler(scheduler: str) -> str:
    """Return ``scheduler`` if it names a local scheduler, a local cluster or a distributed
    address, else raise ValueError."""
    if scheduler in LOCAL_SCHEDULERS or "://" in scheduler:
        return scheduler
    match = _LOCAL_CLUSTER.match(scheduler)
    if match and int(match["workers"]) >= 1:
        if match["memory"]:
            _memory_bytes(match["memory"], scheduler)
        return scheduler
    raise ValueError(
        f"scheduler {scheduler!r} is not understood: use one of {', '.join(LOCAL_SCHEDULERS)}, "
        "a dask.distributed address such as tcp://host:8786, or local:N[:MEMORY] (a local "
        "cluster of N worker processes, e.g. local:2:1GiB)"
    )


def _memory_bytes(text: str, scheduler: str) -> int:
    from dask.utils import parse_bytes

    try:
        value = parse_bytes(text)
    except (ValueError, KeyError):
        raise ValueError(f"scheduler {scheduler!r}: {text!r} is not a memory size such as "
                         "1GiB or 512MiB") from None
    if value <= 0:
        raise ValueError(f"scheduler {scheduler!r}: the memory limit must be positive")
    return value


def is_distributed(scheduler: str) -> bool:
    """Whether ``scheduler`` runs on dask.distributed (an address or a local cluster)."""
    return check_scheduler(scheduler) not in LOCAL_SCHEDULERS


def local_cluster_spec(scheduler: str) -> tuple[int, int | None] | None:
    """(workers, memory limit in bytes or None) of a ``local:N[:LIMIT]`` scheduler, else None."""
    match = _LOCAL_CLUSTER.match(check_scheduler(scheduler))
    if not match:
        return None
    memory = match["memory"]
    return int(match["workers"]), _memory_bytes(memory, scheduler) if memory else None


@contextlib.contextmanager
def local_cluster(workers: int, memory_limit: int | str | None = None):
    """A ``LocalCluster`` of ``workers`` processes (one thread each; the dashboard, when bokeh
    is installed, on a free port), closed on exit."""
    import logging

    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      memory_limit=memory_limit if memory_limit is not None else "auto",
                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster:
        yield cluster


@contextlib.contextmanager
def cluster_client(scheduler: str):
    """A dask.distributed ``Client`` on ``scheduler`` (an address, or ``local:N[:LIMIT]``,
    started here and stopped on exit), set as dask's default while the block runs."""
    from distributed import Client

    spec = local_cluster_spec(scheduler)
    if spec is None:
        if not is_distributed(scheduler):
            raise ValueError(f"scheduler {scheduler!r} is not a dask.distributed cluster")
        with Client(scheduler, set_as_default=True) as client:
            yield client
        return
    workers, memory = spec
    with local_cluster(workers, memory) as cluster, Client(cluster, set_as_default=True) as client:
        yield client


@contextlib.contextmanager
def use_scheduler(scheduler: str = "threads") -> Iterator[bool]:
    """Run the dask computations of the ``with`` block on ``scheduler``.

    Yields True when a distributed client is in use (its tasks then run remotely, so local progress
    callbacks see nothing and the caller should not rely on them).
    """
    check_scheduler(scheduler)
    if scheduler in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=scheduler):
            yield False
        return
    with cluster_client(scheduler):
        yield True
