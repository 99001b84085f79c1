"""Ingest stage: satellite archives and rasters into Zarr scene stores.

``python -m flows.ingest`` reads the ``ingest`` section of params.yaml (DVC stage ``ingest``).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from crossdiff_core.config import IngestParams, section_values
from flows.params import stage_config
from tasks.ingest import ingest_source_task


@flow(name="ingest")
def ingest_flow(config: IngestParams, force: bool = False) -> list[str]:
    """Ingest every source of ``config`` (a path, or a [PAN, MS] GeoTIFF pair) into
    ``config.out``; returns the store paths, written or already present, in source order."""
    logger = get_run_logger()
    stores: list[str] = []
    for source in config.sources:
        result = ingest_source_task(source, config, force=force)
        verb = "already ingested" if result.skipped else "ingested"
        logger.info("%s %s -> %s", verb, source, result.store)
        stores.extend(str(path) for path in result.stores or (result.store,))
    return stores


def main() -> None:
    from flows.tracked import tracked_stage

    config = stage_config("ingest")["ingest"]
    with tracked_stage("ingest", section_values(config), sensor=config.sensor) as tracker:
        stores = ingest_flow(config)
        tracker.log_metrics({"stores": len(stores)})


if __name__ == "__main__":
    main()
