"""Freeze stage: both pretrained UNets into one frozen feature-extractor artifact.

``python -m flows.freeze`` reads the ``freeze`` section of params.yaml (pretrained folders from
``pretrain.out``, calibration patches of ``pretrain.pan_patch`` pixels from ``pretrain.scenes``;
DVC stage ``freeze``).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from crossdiff_core.config import FreezeParams, section_values
from flows.params import stage_config
from tasks.freeze import freeze_task
from tasks.scenes import scene_stores, scenes_sensor


@flow(name="freeze")
def freeze_flow(config: FreezeParams, pretrain_dir: str, scenes: list[str], pan_patch: int) -> str:
    """Freeze ``<pretrain_dir>/p2m`` and ``/m2p`` into ``config.out``, calibrated on
    ``pan_patch``-pixel patches of ``scenes`` (stores or folders); returns the folder."""
    return str(freeze_task(config, Path(pretrain_dir), scene_stores(scenes), pan_patch))


def main() -> None:
    from flows.tracked import tracked_stage

    configs = stage_config("freeze")
    config, pretrain = configs["freeze"], configs["pretrain"]
    with tracked_stage("freeze", section_values(config)) as tracker:
        out = freeze_flow(config, pretrain.out, pretrain.scenes, pretrain.pan_patch)
        tracker.log_artifact(out, "extractor")
        from tasks import tracking

        tracking.register_encoders(Path(out), configs["tracking"].encoder_model_name,
                                   scenes_sensor(pretrain.scenes))


if __name__ == "__main__":
    main()
