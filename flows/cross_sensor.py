"""Cross-sensor matrix: encoders pretrained on each sensor (rows), the head adapted to and evaluated
on each sensor's scenes (columns), HQNR at full resolution and Q2n at reduced resolution.

Both resolutions run the whole chain (pretrain, freeze, adapt, fuse): the full-resolution chain on
each scene's evaluation crop, the reduced-resolution chain on its Wald-degraded copy only, so the
MS that serves as the Q2n reference is never seen by the method. ``python -m flows.cross_sensor``
reads the ``cross_sensor`` section of params.yaml.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from prefect import flow, get_run_logger

from crossdiff_core.config import AdaptParams, CrossSensorParams, FreezeParams, PretrainParams
from crossdiff_core.report.cross_sensor import CrossSensorScore
from flows.adapt import adapt_flow
from flows.freeze import freeze_flow
from flows.params import load_config
from flows.pretrain import pretrain_flow
from tasks import cross_sensor as cs_tasks

RESOLUTIONS = ("full", "reduced")


def _folder_name(sensor: str) -> str:
    return sensor.replace(" ", "_")


@flow(name="cross-sensor")
def cross_sensor_flow(
    config: CrossSensorParams,
    pretrain: PretrainParams,
    freeze: FreezeParams,
    adapt: AdaptParams,
    on_artifact: Callable[[Path], None] | None = None,
) -> Path:
    """Run every (encoder sensor, target sensor) pair of ``config.scenes`` at both resolutions and
    write ``<config.out>/cross_sensor.{csv,md,png}``; returns the Markdown path. ``pretrain``,
    ``freeze`` and ``adapt`` give every run's settings (their scenes and folders are the
    experiment's own, under ``config.work_dir``); pairs whose encoders cannot serve the target
    (bands or ratio that do not match) are reported with the reason instead of a score."""
    logger = get_run_logger()
    work = Path(config.work_dir)
    groups = cs_tasks.group_scenes(list(config.scenes), config.max_scenes_per_sensor)
    sensors = list(groups)
    prepared = {
        sensor: [cs_tasks.prepare_scene(store, work / "scenes", config.max_pan_size)
                 for store in stores]
        for sensor, stores in groups.items()
    }

    values: dict[tuple[str, str, str], dict[str, float]] = {}
    skipped: dict[tuple[str, str], str] = {}
    for resolution in RESOLUTIONS:
        index = "hqnr" if resolution == "full" else "q2n"
        for encoder_sensor in sensors:
            own = [p.store(resolution) for p in prepared[encoder_sensor]]
            base = work / resolution / _folder_name(encoder_sensor)
            pretrain_flow(replace(pretrain, scenes=own, out=str(base / "pretrain")))
            encoders = freeze_flow(replace(freeze, out=str(base / "encoders")),
                                   str(base / "pretrain"), own, pretrain.pan_patch)
            for target_sensor in sensors:
                if (encoder_sensor, target_sensor) in skipped:
                    continue
                head = base / f"head_{_folder_name(target_sensor)}"
                targets = [p.store(resolution) for p in prepared[target_sensor]]
                mismatch = cs_tasks.check_encoders(encoders, targets[0])
                if mismatch:
                    logger.warning(
                        "%s encoders cannot serve %s: %s", encoder_sensor, target_sensor, mismatch
                    )
                    skipped[(encoder_sensor, target_sensor)] = mismatch
                    continue
                adapt_flow(replace(adapt, scenes=targets, out=str(head), encoders=encoders))
                for scene in prepared[target_sensor]:
                    key = (encoder_sensor, target_sensor, scene.scene_id)
                    values.setdefault(key, {})[index] = cs_tasks.score_model(
                        head, scene, resolution
                    )
                    logger.info(
                        "%s -> %s %s: %s %.4f",
                        encoder_sensor,
                        target_sensor,
                        scene.scene_id,
                        index,
                        values[key][index],
                    )

    scores = [
        CrossSensorScore(
            enc, tgt, scene_id, by_index.get("hqnr", math.nan), by_index.get("q2n", math.nan)
        )
        for (enc, tgt, scene_id), by_index in values.items()
    ]
    written = cs_tasks.write_matrix(scores, Path(config.out), sensors, skipped)
    if on_artifact is not None:
        for path in written.values():
            on_artifact(path)
    return written["markdown"]


def _dev_sources(entries: list) -> list[tuple[str | list[str], str | None]]:
    """``(source, sensor)`` for each development entry that exists here: an entry is a path, a
    [PAN, MS] pair, or ``{source: ..., sensor: ...}`` for deliveries that do not name their sensor.
    The real scenes beside the project may be absent on other machines: those are skipped."""
    import logging

    kept = []
    for entry in entries:
        source, sensor = (
            (entry["source"], entry.get("sensor")) if isinstance(entry, dict) else (entry, None)
        )
        paths = source if isinstance(source, list) else [source]
        if all(Path(p).exists() for p in paths):
            kept.append((source, sensor))
        else:
            logging.getLogger("cross_sensor").warning(
                "cross_sensor.dev_sources: %s not found, skipped", source
            )
    return kept


def run(config: CrossSensorParams, path: Path | None = None) -> Path:
    """The experiment of ``config``: its development sources ingested into ``config.ingest_out``
    first (with the ``ingest`` section's settings), every run with the ``pretrain``, ``freeze``
    and ``adapt`` sections of the params file at ``path`` overridden by ``config``'s."""
    scenes = list(config.scenes)
    sources = _dev_sources(list(config.dev_sources))
    if sources:
        from flows.ingest import ingest_flow

        ingest = load_config("ingest", path, required=False)
        for source, sensor in sources:
            # Only this source: not the landed archives the ingest stage also takes.
            ingest_flow(replace(ingest, sources=[source], landed=None, out=config.ingest_out,
                                sensor=sensor))
        if config.ingest_out not in scenes:
            scenes.append(config.ingest_out)
    stages = {stage: load_config(stage, path, getattr(config, stage), required=False)
              for stage in ("pretrain", "freeze", "adapt")}
    return cross_sensor_flow(replace(config, scenes=scenes), **stages)


def main() -> Path:
    return run(load_config("cross_sensor"))


if __name__ == "__main__":
    main()
