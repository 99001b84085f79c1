"""Scheduled landing-zone flow: ingest archives dropped into data/landing/, then re-adapt.

Each archive is ingested once: the ingestion compares the source's sha256 with the stores already
written, so however often the schedule fires, a known archive is a no-op. When anything new was
ingested, the re-adaptation flow runs (adapt, evaluate, register a candidate, maybe promote).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from crossdiff_core.config import IngestParams
from flows.params import load_config
from tasks.ingest import ingest_source_task

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip", ".h5", ".mat")


def landing_candidates(landing: Path) -> list[Path]:
    """Archives and delivery folders in the landing zone, oldest first.

    Hidden files and partial uploads (``.part``, ``.tmp``) are skipped.
    """
    if not landing.is_dir():
        return []
    found = []
    for path in landing.iterdir():
        if path.name.startswith(".") or path.name.endswith((".part", ".tmp")):
            continue
        if path.is_dir() or path.name.lower().endswith(ARCHIVE_SUFFIXES):
            found.append(path)
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


@flow(name="landing")
def landing_flow(landing: str = "data/landing", config: IngestParams | None = None,
                 readapt: bool = True) -> list[str]:
    """Ingest what is new in ``landing`` with ``config`` (default: the ``ingest`` section of
    params.yaml; its ``sources`` are not read); re-adapt and re-evaluate when anything was new.

    Returns the stores written by this run (empty when nothing was new).
    """
    logger = get_run_logger()
    config = config or load_config("ingest")
    new_stores: list[str] = []
    for source in landing_candidates(Path(landing)):
        result = ingest_source_task(str(source), config)
        if result.skipped:
            logger.info("already ingested: %s", source.name)
        else:
            logger.info("ingested %s -> %s", source.name, result.path)
            new_stores.append(str(result.path))
    if new_stores and readapt:
        from flows.pipeline import readapt_flow

        readapt_flow()
    return new_stores


if __name__ == "__main__":
    landing_flow()
