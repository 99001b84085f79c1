"""Prefect task of the ingest stage: one source into scene stores (crossdiff_core.ingest)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.ingest import IngestResult, ingest_source


def _retry_on_io_error(task, task_run, state) -> bool:
    """Retry transient I/O failures only: bad input (IngestError, a ValueError) fails at once,
    and so does a missing file, which waiting will not bring back."""
    try:
        state.result(raise_on_failure=True)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    except Exception:
        return False
    return False


@task(name="ingest-source", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5,
      retry_condition_fn=_retry_on_io_error)
def ingest_source_task(
    source: str | list[str],
    out_dir: str | Path,
    sensor: str | None = None,
    chunk_size: int = 1024,
    scheduler: str = "threads",
    force: bool = False,
) -> IngestResult:
    """Ingest one source (a path, or a [PAN, MS] pair of GeoTIFF paths) into ``out_dir``."""
    return ingest_source(source if isinstance(source, str) else tuple(source), out_dir,
                         sensor=sensor, chunk_size=chunk_size, scheduler=scheduler, force=force)
