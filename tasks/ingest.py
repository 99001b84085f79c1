"""Prefect task of the ingest stage: one source into scene stores (crossdiff_core.ingest)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.config import IngestParams
from crossdiff_core.ingest import IngestResult, ingest_source
from tasks.retry import io_retries


@task(name="ingest-source", cache_policy=NO_CACHE, **io_retries(3))
def ingest_source_task(source: str | list[str], config: IngestParams,
                       force: bool = False) -> IngestResult:
    """Ingest one source into ``config.out``: a path, a STAC Item (file or URL), or a
    [PAN, MS] pair of GeoTIFF paths or URLs (kept as strings: ``Path`` would fold ``https://``).
    Each store gets its STAC Item beside it."""
    return ingest_source(source if isinstance(source, str) else tuple(source), config.out,
                         sensor=config.sensor, chunk_size=config.chunk_size,
                         scheduler=config.scheduler, force=force)
