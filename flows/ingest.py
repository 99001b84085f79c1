"""Ingest stage: satellite archives and rasters into Zarr scene stores.

``python -m flows.ingest`` reads the ``ingest`` section of params.yaml (DVC stage ``ingest``).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.params import load_params
from tasks.ingest import ingest_source_task


@flow(name="ingest")
def ingest_flow(
    sources: list[str | list[str]],
    out: str,
    sensor: str | None = None,
    chunk_size: int = 1024,
    scheduler: str = "threads",
    force: bool = False,
) -> list[str]:
    """Ingest every source (a path, or a [PAN, MS] GeoTIFF pair) into ``out``; returns the store
    paths, written or already present, in source order."""
    logger = get_run_logger()
    stores: list[str] = []
    for source in sources:
        result = ingest_source_task(source, out, sensor=sensor, chunk_size=chunk_size,
                                    scheduler=scheduler, force=force)
        verb = "already ingested" if result.skipped else "ingested"
        logger.info("%s %s -> %s", verb, source, result.store)
        stores.extend(str(path) for path in result.stores or (result.store,))
    return stores


def main() -> None:
    from flows.tracked import tracked_stage

    params = load_params("ingest")
    with tracked_stage("ingest", params, sensor=params.get("sensor")) as tracker:
        stores = ingest_flow(
            sources=list(params["sources"]),
            out=str(Path(params["out"])),
            sensor=params.get("sensor"),
            chunk_size=int(params.get("chunk_size", 1024)),
            scheduler=str(params.get("scheduler", "threads")),
            force=bool(params.get("force", False)),
        )
        tracker.log_metrics({"stores": len(stores)})


if __name__ == "__main__":
    main()
