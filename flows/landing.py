"""Scheduled landing flow: arrivals in data/landing/ move to data/landed/, then `dvc repro`.

data/landed/ (``ingest.landed``) is an input of the ingest stage in dvc.yaml, never a stage's
output: the ingest stage ingests ``ingest.sources`` and every archive there, so the stores of
landed scenes are rebuilt by any rerun of the stage (``dvc repro -f`` included) instead of being
deleted with data/zarr. After moving what arrived, the flow runs ``dvc repro``: DVC reruns ingest
(its input changed) and every stage after it that changes, and ``dvc.lock`` describes the models
the evaluation registers and promotes.

Each complete arrival (hidden files and partial uploads, ``.part``/``.tmp``, are left alone) is
moved with one rename when the two folders share a file system; otherwise it is copied under a
hidden temporary name in data/landed/ and renamed, so the ingest stage never sees half a file. An
arrival whose name is already in data/landed/ is dropped when it is the same content and kept
under a new name when it is not.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from prefect import flow, get_run_logger

from crossdiff_core.config import ConfigError, IngestParams
from crossdiff_core.ingest import ARCHIVE_SUFFIXES, complete_entries, source_sha256
from flows.params import load_config
from tasks.dvc import dvc_repro_task, schedule_lock


def landing_candidates(landing: Path) -> list[Path]:
    """Archives and delivery folders in the landing zone, oldest first (hidden files and partial
    uploads skipped)."""
    return complete_entries(landing)


def _split_name(path: Path) -> tuple[str, str]:
    lower = path.name.lower()
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if path.is_file() and lower.endswith(suffix):
            return path.name[: -len(suffix)], path.name[-len(suffix):]
    return path.name, ""


def _move_atomically(arrival: Path, target: Path) -> None:
    try:
        os.rename(arrival, target)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    # Another file system: copy under a hidden name (skipped by the ingest stage), then rename.
    partial = target.with_name(f".{target.name}.tmp")
    if arrival.is_dir():
        shutil.copytree(arrival, partial)
    else:
        shutil.copy2(arrival, partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
    os.rename(partial, target)
    if arrival.is_dir():
        shutil.rmtree(arrival)
    else:
        arrival.unlink()


def land(arrival: Path, landed: Path) -> Path | None:
    """Move one complete arrival into ``landed``; returns its new path, or None when ``landed``
    already holds it (same name, same content: the arrival is removed)."""
    landed.mkdir(parents=True, exist_ok=True)
    target = landed / arrival.name
    if target.exists():
        digest = source_sha256(arrival)
        if digest == source_sha256(target):
            if arrival.is_dir():
                shutil.rmtree(arrival)
            else:
                arrival.unlink()
            return None
        stem, suffix = _split_name(arrival)
        target = landed / f"{stem}-{digest[:12]}{suffix}"
    _move_atomically(arrival, target)
    return target


@flow(name="landing")
def landing_flow(landing: str = "data/landing", config: IngestParams | None = None,
                 repro: bool = True) -> list[str]:
    """Move what arrived in ``landing`` into ``config.landed`` (default: the ``ingest`` section
    of params.yaml), then, when anything moved and ``repro``, run ``dvc repro`` in the working
    directory (the project root). Returns the landed paths of this run.

    Skips the round (arrivals wait for the next one) while another scheduled run holds the
    project's schedule lock, so nothing lands in the middle of a ``dvc repro``.
    """
    logger = get_run_logger()
    config = config or load_config("ingest")
    if not config.landed:
        raise ConfigError("ingest.landed is null: the landing flow has nowhere to put arrivals "
                          "(set it to data/landed, an input of the ingest stage)")
    with schedule_lock(wait=False) as held:
        if not held:
            logger.info("another pipeline run holds the schedule lock: arrivals wait")
            return []
        moved: list[str] = []
        for arrival in landing_candidates(Path(landing)):
            target = land(arrival, Path(config.landed))
            if target is None:
                logger.info("already landed: %s (same content; removed from %s)", arrival.name,
                            landing)
            else:
                logger.info("landed %s -> %s", arrival.name, target)
                moved.append(str(target))
        if moved and repro:
            dvc_repro_task()
    return moved


if __name__ == "__main__":
    landing_flow()
