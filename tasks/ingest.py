"""Prefect task of the ingest stage: one source into scene stores (crossdiff_core.ingest)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.ingest import IngestResult, ingest_source
from tasks.retry import io_retries


@task(name="ingest-source", cache_policy=NO_CACHE, **io_retries(3))
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
