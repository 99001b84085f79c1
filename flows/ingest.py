"""Ingest stage: satellite archives and rasters into Zarr scene stores.

``python -m flows.ingest`` reads the ``ingest`` section of params.yaml (DVC stage ``ingest``): it
ingests ``ingest.sources``, then every archive of ``ingest.landed`` (data/landed/, where the landing
flow moves arrivals; a dependency of the stage), so stores of landed scenes are rebuilt by every
rerun of the stage instead of being deleted with its output.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from crossdiff_core.config import IngestParams, section_values
from crossdiff_core.ingest import complete_entries
from crossdiff_core.io.errors import IngestError
from flows.params import stage_config
from tasks.ingest import ingest_source_task


@flow(name="ingest")
def ingest_flow(config: IngestParams, force: bool = False) -> list[str]:
    """Ingest every source of ``config`` (a path, or a [PAN, MS] GeoTIFF pair), then every
    archive in ``config.landed``, into ``config.out``; returns the store paths, written or already
    present, in that order.

    A landed archive that cannot be ingested (bad content, a scene id another source already
    holds) is skipped with a warning naming it, so one bad delivery does not stop the scheduled
    pipeline; a listed source that fails stops the stage.
    """
    logger = get_run_logger()
    stores: list[str] = []
    landed = complete_entries(config.landed) if config.landed else []
    for source in [*config.sources, *(str(path) for path in landed)]:
        try:
            result = ingest_source_task(source, config, force=force)
        except (IngestError, FileExistsError) as error:
            if source in config.sources:
                raise
            logger.warning("skipped landed %s: %s", source, error)
            continue
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
