"""Scheduled landing flow: arrivals in data/landing/ are checked, then moved to data/landed/ (or
to data/landing/rejected/), then `dvc repro`.

data/landed/ (``ingest.landed``) is an input of the ingest stage in dvc.yaml, never a stage's
output: the ingest stage ingests ``ingest.sources`` and every archive there, so the stores of
landed scenes are rebuilt by any rerun of the stage (``dvc repro -f`` included) instead of being
deleted with data/zarr. After moving what arrived, the flow runs ``dvc repro``: DVC reruns ingest
(its input changed) and every stage after it that changes, and ``dvc.lock`` describes the models
the evaluation registers and promotes.

Nothing blocks the schedule: before an arrival lands, it is ingested for real into a hidden
scratch folder beside it (``.checking-*``, removed afterwards; the same code the ingest stage
runs, so every bad delivery the stage would refuse is found: an empty or truncated archive, an
unsafe member, a grid that does not nest, NaN pixels, an unreadable file, a scene id another
source already holds in ``ingest.out``). A bad delivery is moved to ``<landing>/rejected/`` with
``<name>.reason`` beside it (one line: the error), and the other arrivals still land in the same
run. A .h5 with several samples is all or nothing (``ingest_source``). The price is one extra
ingest of each delivery, in the landing run, instead of a bad archive in data/landed/ that every
later run of the stage would skip with a warning. Errors that are not the delivery's fault (a
full disk, a read-only file system, out of memory) fail the run and the arrival waits.

Each complete arrival (hidden files and partial uploads, ``.part``/``.tmp``, are left alone) is
moved with one rename when the two folders share a file system; otherwise it is copied under a
hidden temporary name in data/landed/ and renamed (``crossdiff_core.atomic``), so the ingest stage
never sees half a file. An arrival whose name is already in data/landed/ is dropped when it is the
same content and kept under a new name when it is not.

On a Dask cluster (``CROSSDIFF_DASK_ADDRESS=tcp://scheduler:8786`` in the environment of the
flow run: ``flows.runners.on_dask_cluster``), the checks of a round's arrivals run at once on the
cluster's workers (``check_arrival_task``, absolute paths), and so does ``dvc repro``; landing
and rejecting stay in the flow, in arrival order. Without it, everything runs in this process,
one arrival after another.

One landing run at a time: the deployment has a concurrency limit of 1 (prefect.yaml, ``crossdiff
serve``), and the flow holds the project's schedule lock (``tasks.dvc.schedule_lock``) while it
checks, moves and reproduces; a run that finds it held returns at once and the arrivals wait for
the next one, so overlapping fires land and ingest each archive once.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.atomic import atomic_folder, atomic_write
from crossdiff_core.config import ConfigError, IngestParams
from crossdiff_core.ingest import (
    ARCHIVE_SUFFIXES,
    complete_entries,
    find_ingested,
    ingest_source,
    source_sha256,
)
from crossdiff_core.io.store import read_store_attrs
from flows.params import load_config
from flows.runners import on_dask_cluster, run_each
from tasks.dvc import dvc_repro_task, schedule_lock

REJECTED = "rejected"
REASON_SUFFIX = ".reason"
SCRATCH_PREFIX = ".checking-"
# Errors of the machine, not of the delivery: the run fails and the arrival waits.
NOT_THE_DELIVERY = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOMEM)


class RejectedDelivery(ValueError):
    """A delivery that would give a store other than the one it claims (see check_delivery)."""


class StoresUnreadable(RuntimeError):
    """``ingest.out`` cannot be read: the landing run fails and the arrivals wait."""


def landing_candidates(landing: Path) -> list[Path]:
    """Archives and delivery folders in the landing zone, oldest first (hidden files, partial
    uploads and the ``rejected/`` folder skipped)."""
    return [path for path in complete_entries(landing) if path.name != REJECTED]


def _split_name(path: Path) -> tuple[str, str]:
    lower = path.name.lower()
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if path.is_file() and lower.endswith(suffix):
            return path.name[: -len(suffix)], path.name[-len(suffix):]
    return path.name, ""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _move(arrival: Path, target: Path) -> None:
    """One rename on the same file system; across file systems an atomic copy (a hidden sibling
    of ``target``, flushed, then renamed: ``crossdiff_core.atomic``), then the arrival removed."""
    try:
        os.rename(arrival, target)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    if arrival.is_dir():
        atomic_folder(target, lambda partial: shutil.copytree(arrival, partial,
                                                              dirs_exist_ok=True))
    else:
        atomic_write(target, lambda partial: shutil.copy2(arrival, partial))
    _remove(arrival)


def _free_name(folder: Path, arrival: Path, tag: str) -> Path:
    stem, suffix = _split_name(arrival)
    return folder / f"{stem}-{tag}{suffix}"


def already_landed(arrival: Path, landed: Path) -> bool:
    """Whether ``landed`` holds ``arrival`` under its name with the same content."""
    target = landed / arrival.name
    return target.exists() and source_sha256(arrival) == source_sha256(target)


def land(arrival: Path, landed: Path) -> Path | None:
    """Move one complete arrival into ``landed``; returns its new path, or None when ``landed``
    already holds it (same name, same content: the arrival is removed)."""
    landed.mkdir(parents=True, exist_ok=True)
    target = landed / arrival.name
    if target.exists():
        if already_landed(arrival, landed):
            _remove(arrival)
            return None
        target = _free_name(landed, arrival, source_sha256(arrival)[:12])
    _move(arrival, target)
    return target


def reason_line(error: BaseException) -> str:
    """The error as the one line of a ``.reason`` file."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def reject(arrival: Path, landing: Path, error: BaseException) -> Path:
    """Move ``arrival`` into ``<landing>/rejected/`` (under a new name when that one is taken)
    with ``<name>.reason`` beside it; returns its new path. The reason is written first, so a
    crash in between leaves the arrival where it was (rejected again by the next run)."""
    rejected = landing / REJECTED
    rejected.mkdir(parents=True, exist_ok=True)
    target = rejected / arrival.name
    if target.exists() or target.with_name(target.name + REASON_SUFFIX).exists():
        target = _free_name(rejected, arrival, uuid.uuid4().hex[:8])
    atomic_write(target.with_name(target.name + REASON_SUFFIX), reason_line(error) + "\n")
    _move(arrival, target)
    return target


def ingest_to_scratch(arrival: Path, config: IngestParams, scratch: Path) -> dict[Path, str]:
    """Ingest ``arrival`` into the empty folder ``scratch`` exactly as the ingest stage will
    (``ingest.sensor``, ``ingest.chunk_size``), so any input the stage would refuse raises here
    (an ``IngestError`` naming the file, or the OSError of an unreadable one). Returns store
    path in ``ingest.out`` -> source sha256 for each store the delivery gives; ``scratch`` is
    removed. The heavy part of a check, run as a task (on a Dask cluster's workers when the
    flow has one: see ``check_arrival_task``)."""
    try:
        result = ingest_source(arrival, scratch, sensor=config.sensor,
                               chunk_size=config.chunk_size, scheduler="threads")
        stores: dict[Path, str] = {}
        for store in result.stores or (result.store,):
            digest = str(read_store_attrs(store).get("source_sha256", ""))
            stores[Path(config.out) / store.relative_to(scratch)] = digest
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return stores


def check_claims(arrival: Path, config: IngestParams, stores: dict[Path, str],
                 claimed: dict[Path, str]) -> list[Path]:
    """Refuse (``RejectedDelivery``) a scene whose store in ``ingest.out`` (or in ``claimed``:
    store path -> source sha256 of the arrivals accepted before in this run) comes from another
    source; otherwise add ``stores`` to ``claimed`` and return their paths."""
    try:
        known = ({path.resolve() for path in find_ingested(config.out, next(iter(stores.values())))}
                 if stores else set())
    except Exception as error:  # the stores of ingest.out, not the delivery: fail the run
        raise StoresUnreadable(f"cannot read the stores of {config.out}: {error}") from error
    for target, digest in stores.items():
        if claimed.get(target, digest) != digest:
            where = "an arrival landed earlier in this run"
        elif target.exists() and target.resolve() not in known:
            where = "another source"
        else:
            continue
        raise RejectedDelivery(
            f"{arrival}: its scene store {target} is already made from {where}; deliver it "
            "under another scene id, or replace the store with `crossdiff ingest SOURCE --force`")
    claimed.update(stores)
    return list(stores)


def check_delivery(arrival: Path, config: IngestParams, scratch: Path,
                   claimed: dict[Path, str] | None = None) -> list[Path]:
    """``ingest_to_scratch`` then ``check_claims``: raises for a delivery the ingest stage would
    refuse or whose scene another source holds. Returns the store paths the delivery will have
    in ``ingest.out``, added to ``claimed``; ``scratch`` is emptied."""
    claimed = {} if claimed is None else claimed
    return check_claims(arrival, config, ingest_to_scratch(arrival, config, scratch), claimed)


@task(name="check-arrival", cache_policy=NO_CACHE)
def check_arrival_task(arrival: str, config: IngestParams,
                       scratch: str) -> tuple[dict[Path, str] | None, Exception | None]:
    """``ingest_to_scratch`` of one arrival (absolute paths: the task may run on another
    process or machine that sees the same files); returns (the stores, None) or (None, the
    error it raised), judged by the flow: a bad delivery is rejected, a machine error fails the
    run."""
    try:
        return ingest_to_scratch(Path(arrival), config, Path(scratch)), None
    except Exception as error:
        return None, error


def _not_the_delivery(error: BaseException) -> bool:
    if isinstance(error, MemoryError | StoresUnreadable):
        return True
    return isinstance(error, OSError) and error.errno in NOT_THE_DELIVERY


@dataclass
class LandingRound:
    """What one landing run did: ``landed`` (new paths in ``ingest.landed``), ``rejected``
    (new paths in ``rejected/``), ``dropped`` (arrivals already landed)."""

    landed: list[Path] = field(default_factory=list)
    rejected: list[Path] = field(default_factory=list)
    dropped: list[Path] = field(default_factory=list)


def land_arrivals(landing: Path, config: IngestParams,
                  logger: logging.Logger | logging.LoggerAdapter | None = None) -> LandingRound:
    """Check each complete arrival in ``landing`` (the scratch ingests through ``run_each``:
    one after another in this process, all at once on a Dask cluster's workers when the flow
    runs on one), then, in arrival order, land it in ``config.landed`` or reject it (reject);
    the caller holds the schedule lock. Scratch folders left by a killed run are removed
    first."""
    logger = logger or logging.getLogger(__name__)
    landing = Path(landing)
    done = LandingRound()
    if not landing.is_dir():
        return done
    for stale in landing.glob(f"{SCRATCH_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    arrivals = []
    for arrival in landing_candidates(landing):
        if already_landed(arrival, Path(config.landed)):  # nothing to check: drop it
            _remove(arrival)
            logger.info("already landed: %s (same content; removed from %s)", arrival.name,
                        landing)
            done.dropped.append(arrival)
        else:
            arrivals.append(arrival)
    checks = run_each(check_arrival_task, [
        (str(arrival.resolve()), config,
         str((landing / f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}").resolve()))
        for arrival in arrivals])
    claimed: dict[Path, str] = {}
    for arrival, (stores, failure) in zip(arrivals, checks, strict=True):
        try:
            if failure is not None:
                raise failure
            check_claims(arrival, config, stores, claimed)
        except Exception as error:
            if _not_the_delivery(error):
                raise
            target = reject(arrival, landing, error)
            logger.warning("rejected %s -> %s: %s", arrival.name, target, reason_line(error))
            done.rejected.append(target)
            continue
        target = land(arrival, Path(config.landed))
        if target is None:
            logger.info("already landed: %s (same content; removed from %s)", arrival.name,
                        landing)
            done.dropped.append(arrival)
        else:
            logger.info("landed %s -> %s", arrival.name, target)
            done.landed.append(target)
    return done


@flow(name="landing")
def landing_flow(landing: str = "data/landing", config: IngestParams | None = None,
                 repro: bool = True) -> list[str]:
    """Check what arrived in ``landing`` and move it into ``config.landed`` (default: the
    ``ingest`` section of params.yaml), bad deliveries into ``<landing>/rejected/`` with a
    ``.reason`` file; then, when anything landed and ``repro``, run ``dvc repro`` in the working
    directory (the project root). Returns the landed paths of this run.

    Skips the round (arrivals wait for the next one) while another scheduled run holds the
    project's schedule lock, so nothing lands in the middle of a ``dvc repro`` and two
    overlapping landing runs never take the same arrival.
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
        done = land_arrivals(Path(landing), config, logger)
        if done.rejected:
            logger.warning("%d deliveries rejected (see %s/*%s)", len(done.rejected),
                           Path(landing) / REJECTED, REASON_SUFFIX)
        moved = [str(path) for path in done.landed]
        if moved and repro:
            # Submitted: on a Dask cluster a worker runs it (in this project folder, by path).
            dvc_repro_task.submit(project=str(Path.cwd())).result()
    return moved


# The deployment's entrypoint: on the Dask cluster at $CROSSDIFF_DASK_ADDRESS (read when the
# flow run imports this module) when it is set; in this process otherwise.
landing_flow = on_dask_cluster(landing_flow)


if __name__ == "__main__":
    landing_flow()
