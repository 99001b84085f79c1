"""Freeze stage: both pretrained UNets into one frozen feature-extractor artifact.

``python -m flows.freeze`` reads the ``freeze`` section of params.yaml (pretrained folders from
``pretrain.out``, calibration scenes from ``pretrain.scenes``; DVC stage ``freeze``).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.params import load_params
from tasks.adapt import freeze_task


@flow(name="freeze")
def freeze_flow(
    pretrain_dir: str,
    scenes: list[str],
    out: str,
    t_feature: int = 50,
    noise_free: bool = True,
    pan_patch: int = 64,
    calibration_patches: int = 32,
    seed: int = 0,
    decoder_features: bool = False,
) -> str:
    """Write the frozen extractor to ``out``; returns its path."""
    from crossdiff_core.io.store import find_scene_stores

    stores = [str(path) for path in find_scene_stores(scenes)]
    return str(
        freeze_task(
            Path(pretrain_dir),
            stores,
            Path(out),
            t_feature,
            noise_free,
            pan_patch,
            calibration_patches,
            seed,
            decoder_features,
        )
    )


def freeze_settings_from(freeze: dict, pretrain: dict) -> dict:
    """The freeze flow's keyword arguments from the ``freeze`` and ``pretrain`` sections."""
    return {
        "t_feature": int(freeze.get("t_feature", 50)),
        "noise_free": bool(freeze.get("noise_free", True)),
        "pan_patch": int(freeze.get("pan_patch") or pretrain.get("pan_patch", 64)),
        "calibration_patches": int(freeze.get("calibration_patches", 32)),
        "seed": int(freeze.get("seed", 0)),
        "decoder_features": bool(freeze.get("decoder_features", False)),
    }


def main() -> None:
    from flows.tracked import tracked_stage

    params = load_params("freeze")
    pretrain = load_params("pretrain")
    scenes = list(params.get("scenes") or pretrain["scenes"])
    with tracked_stage("freeze", params) as tracker:
        out = freeze_flow(
            pretrain_dir=str(pretrain["out"]),
            scenes=scenes,
            out=str(params["out"]),
            **freeze_settings_from(params, pretrain),
        )
        tracker.log_artifact(out, "extractor")
        from flows.adapt import scenes_sensor
        from tasks import tracking

        tracking.register_encoders(Path(out), load_params("tracking")["encoder_model_name"],
                                   scenes_sensor(scenes))


if __name__ == "__main__":
    main()
