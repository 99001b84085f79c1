"""Adapt stage: train the fusion head, unsupervised, on the target scenes (encoders frozen).

``python -m flows.adapt`` reads the ``adapt`` section of params.yaml (encoders from
``adapt.encoders`` or else ``freeze.out``; DVC stage ``adapt``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prefect import flow, get_run_logger

from flows.params import load_params
from tasks.adapt import adapt_task

CONFIG_KEYS = (
    "steps",
    "batch_size",
    "pan_patch",
    "lr",
    "seed",
    "spectral_weight",
    "spatial_weight",
    "spatial_loss",
    "mode",
    "head_channels",
    "random_encoders",
    "random_channels",
    "calibration_patches",
    "normalisation",
    "lr_schedule",
    "device",
)


@flow(name="adapt")
def adapt_flow(
    scenes: list[str],
    out: str,
    encoders: str | None = None,
    settings: dict | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train the head on ``scenes`` (stores or folders of stores) and save it to ``out``.

    ``settings``: keys of ``AdaptConfig`` (see params.yaml). Returns {"out", "seconds", "final"}.
    """
    from crossdiff_core.io.store import find_scene_stores
    from crossdiff_core.train.adapt import AdaptConfig

    config = AdaptConfig(**{k: v for k, v in (settings or {}).items() if k in CONFIG_KEYS})
    if encoders is None and not config.random_encoders:
        raise ValueError("adapt needs --encoders (a frozen extractor folder) or random_encoders")
    stores = [str(path) for path in find_scene_stores(scenes)]
    result = adapt_task(stores, Path(out), Path(encoders) if encoders else None, config, on_step)
    final = result.losses[-1]
    get_run_logger().info(
        "adapted %d steps in %.1f s, final loss %.4f -> %s",
        config.steps,
        result.seconds,
        final["loss"],
        result.out,
    )
    return {"out": str(result.out), "seconds": result.seconds, "final": final}


def scenes_sensor(scenes: list[str]) -> str:
    """The sensor of the first scene store found in ``scenes`` (tags and registry names)."""
    from crossdiff_core.io.store import find_scene_stores, read_store_attrs

    stores = find_scene_stores(scenes)
    return str(read_store_attrs(stores[0])["sensor"]) if stores else "unknown"


def main() -> None:
    from flows.tracked import tracked_stage

    params = load_params("adapt")
    encoders = params.get("encoders") or load_params("freeze")["out"]
    with tracked_stage("adapt", params) as tracker:
        result = adapt_flow(
            scenes=list(params["scenes"]),
            out=str(params["out"]),
            encoders=str(encoders),
            settings=params,
            on_step=tracker.on_step("adapt_"),
        )
        tracker.log_metrics({f"final_{k}": v for k, v in result["final"].items()})
        tracker.log_artifact(result["out"], "pansharpener")
        if not params.get("random_encoders"):
            from tasks import tracking

            version = tracking.register_candidate(
                Path(result["out"]), load_params("tracking")["pansharpener_model_name"],
                scenes_sensor(params["scenes"]))
            print(f"registered pansharpener version {version} as candidate")


if __name__ == "__main__":
    main()
