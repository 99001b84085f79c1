"""Adapt stage: train the fusion head, unsupervised, on the target scenes (encoders frozen).

``python -m flows.adapt`` reads the ``adapt`` section of params.yaml (encoders from
``adapt.encoders`` or else ``freeze.out``; DVC stage ``adapt``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prefect import flow, get_run_logger

from crossdiff_core.config import AdaptParams, section_values
from flows.params import stage_config
from tasks.adapt import adapt_task, with_encoders
from tasks.scenes import scene_stores, scenes_sensor


@flow(name="adapt")
def adapt_flow(config: AdaptParams,
               on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Train the head on ``config.scenes`` (stores or folders of stores) and save it to
    ``config.out``. Returns {"out", "seconds", "final"}."""
    if config.encoders is None and not config.random_encoders:
        raise ValueError("adapt needs encoders (a frozen extractor folder) or random_encoders")
    stores = scene_stores(config.scenes)
    result = adapt_task(stores, config, on_step)
    final = result.losses[-1]
    get_run_logger().info(
        "adapted %d steps in %.1f s, final loss %.4f -> %s",
        config.steps,
        result.seconds,
        final["loss"],
        result.out,
    )
    return {"out": str(result.out), "seconds": result.seconds, "final": final}


def main() -> None:
    from flows.tracked import tracked_stage

    configs = stage_config("adapt")
    config = with_encoders(configs["adapt"], configs["freeze"])
    with tracked_stage("adapt", section_values(config)) as tracker:
        result = adapt_flow(config, on_step=tracker.on_step("adapt_"))
        tracker.log_metrics({f"final_{k}": v for k, v in result["final"].items()})
        tracker.log_artifact(result["out"], "pansharpener")
        if not config.random_encoders:
            from tasks import tracking

            version = tracking.register_candidate(
                Path(result["out"]), configs["tracking"].pansharpener_model_name,
                scenes_sensor(config.scenes))
            print(f"registered pansharpener version {version} as candidate")


if __name__ == "__main__":
    main()
