"""Ablation stage: the random-encoder heads the evaluation compares CrossDiff with.

``python -m flows.ablation`` (DVC stage ``ablation``) trains the fusion head with the ``adapt``
settings on random frozen twins of the encoders CrossDiff uses (same layout, timestep and
feature reading; ``nets.extractor.random_twin``): at full resolution on ``evaluate.scenes`` with
twins of ``adapt.encoders`` (or ``freeze.out``) into ``ablation.out``/full, and at reduced
resolution on the ``reduced`` stage's Wald pairs with twins of its encoders into
``ablation.out``/reduced.
"""

from __future__ import annotations

from dataclasses import replace

from prefect import flow

from crossdiff_core.config import (
    AblationParams,
    AdaptParams,
    EvaluateParams,
    ReducedParams,
    section_values,
)
from flows.params import stage_config
from tasks.adapt import adapt_task, with_encoders
from tasks.scenes import scene_stores


@flow(name="ablation")
def ablation_flow(config: AblationParams, adapt: AdaptParams, evaluate: EvaluateParams,
                  reduced: ReducedParams) -> dict[str, str]:
    """Both random-encoder heads (``adapt.encoders`` resolved); returns {resolution: folder}."""
    runs = {
        "full": replace(adapt, scenes=list(evaluate.scenes), random_encoders=True,
                        out=config.head_dir("full")),
        "reduced": replace(adapt, scenes=[reduced.wald_scenes], random_encoders=True,
                           out=config.head_dir("reduced"), encoders=reduced.encoders_dir),
    }
    return {resolution: str(adapt_task(scene_stores(run.scenes), run).out)
            for resolution, run in runs.items()}


def main() -> None:
    from flows.tracked import tracked_stage

    configs = stage_config("ablation")
    adapt = with_encoders(configs["adapt"], configs["freeze"])
    with tracked_stage("ablation", section_values(configs["ablation"])):
        ablation_flow(configs["ablation"], adapt, configs["evaluate"], configs["reduced"])


if __name__ == "__main__":
    main()
