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
from pathlib import Path

from prefect import flow, get_run_logger

from crossdiff_core.report.cross_sensor import CrossSensorScore
from flows.adapt import adapt_flow
from flows.freeze import freeze_flow
from flows.params import load_params
from flows.pretrain import pretrain_flow
from tasks import cross_sensor as cs_tasks

RESOLUTIONS = ("full", "reduced")
FREEZE_KEYS = ("t_feature", "noise_free", "pan_patch", "calibration_patches", "seed",
               "decoder_features")


def _folder_name(sensor: str) -> str:
    return sensor.replace(" ", "_")


@flow(name="cross-sensor")
def cross_sensor_flow(
    scenes: list[str],
    out: str,
    work_dir: str,
    max_scenes_per_sensor: int | None = None,
    max_pan_size: int = 512,
    pretrain_settings: dict | None = None,
    freeze_settings: dict | None = None,
    adapt_settings: dict | None = None,
    on_artifact: Callable[[Path], None] | None = None,
) -> Path:
    """Run every (encoder sensor, target sensor) pair at both resolutions and write
    ``<out>/cross_sensor.{csv,md,png}``; returns the Markdown path. Settings are keys of the
    pretrain, freeze and adapt sections; pairs whose encoders cannot serve the target (bands or
    ratio that do not match) are reported with the reason instead of a score."""
    logger = get_run_logger()
    work = Path(work_dir)
    groups = cs_tasks.group_scenes(scenes, max_scenes_per_sensor)
    sensors = list(groups)
    prepared = {
        sensor: [cs_tasks.prepare_scene(store, work / "scenes", max_pan_size) for store in stores]
        for sensor, stores in groups.items()
    }
    freeze_kwargs = {k: v for k, v in (freeze_settings or {}).items() if k in FREEZE_KEYS}
    if "pan_patch" not in freeze_kwargs and pretrain_settings and "pan_patch" in pretrain_settings:
        freeze_kwargs["pan_patch"] = int(pretrain_settings["pan_patch"])

    values: dict[tuple[str, str, str], dict[str, float]] = {}
    skipped: dict[tuple[str, str], str] = {}
    for resolution in RESOLUTIONS:
        index = "hqnr" if resolution == "full" else "q2n"
        for encoder_sensor in sensors:
            own = [p.store(resolution) for p in prepared[encoder_sensor]]
            base = work / resolution / _folder_name(encoder_sensor)
            pretrain_flow(scenes=own, out=str(base / "pretrain"), settings=pretrain_settings)
            encoders = freeze_flow(
                pretrain_dir=str(base / "pretrain"),
                scenes=own,
                out=str(base / "encoders"),
                **freeze_kwargs,
            )
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
                adapt_flow(
                    scenes=targets, out=str(head), encoders=encoders, settings=adapt_settings
                )
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
    written = cs_tasks.write_matrix(scores, Path(out), sensors, skipped)
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


def main(scenes: list[str] | None = None, out: str | None = None) -> Path:
    """Run the flow from the ``cross_sensor`` section; ``scenes``/``out`` override it (given
    scenes also skip the development sources)."""
    params = load_params("cross_sensor")
    if scenes is None:
        scenes = [str(s) for s in params.get("scenes", ["data/zarr"])]
        sources = _dev_sources(list(params.get("dev_sources") or []))
        if sources:
            from flows.ingest import ingest_flow

            ingest_out = str(params.get("ingest_out", "data/models/cross_sensor/dev_scenes"))
            for source, sensor in sources:
                ingest_flow(sources=[source], out=ingest_out, sensor=sensor)
            if ingest_out not in scenes:
                scenes.append(ingest_out)
    settings = {}
    for stage in ("pretrain", "freeze", "adapt"):
        section = {k: v for k, v in load_params(stage).items() if k not in ("scenes", "out")}
        section.update(params.get(stage) or {})
        settings[stage] = section
    return cross_sensor_flow(
        scenes=scenes,
        out=out or str(params.get("out", "reports/cross_sensor")),
        work_dir=str(params.get("work_dir", "data/models/cross_sensor")),
        max_scenes_per_sensor=params.get("max_scenes_per_sensor"),
        max_pan_size=int(params.get("max_pan_size", 512)),
        pretrain_settings=settings["pretrain"],
        freeze_settings=settings["freeze"],
        adapt_settings=settings["adapt"],
    )


if __name__ == "__main__":
    main()
