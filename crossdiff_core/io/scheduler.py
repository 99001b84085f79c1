"""Choosing where dask computes: local threads, local processes or a dask.distributed cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dask

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


def check_scheduler(scheduler: str) -> str:
    """Return ``scheduler`` if it names a local scheduler or a distributed address, else raise."""
    if scheduler in LOCAL_SCHEDULERS or "://" in scheduler:
        return scheduler
    raise ValueError(
        f"scheduler {scheduler!r} is not understood: use one of {', '.join(LOCAL_SCHEDULERS)} "
        "or a dask.distributed address such as tcp://host:8786"
    )


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
    from distributed import Client

    with Client(scheduler, set_as_default=True):
        yield True
