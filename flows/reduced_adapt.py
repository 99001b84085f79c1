"""Reduced-adapt stage: the head of the evaluation's reduced-resolution chain.

``python -m flows.reduced_adapt`` (DVC stage ``reduced_adapt``) trains the fusion head with the
``adapt`` settings on the Wald-degraded pairs the ``reduced`` stage wrote, on that stage's frozen
encoders, into ``reduced.out``/head: the CrossDiff model the evaluation scores at reduced
resolution.
"""

from __future__ import annotations

from dataclasses import replace

from prefect import flow

from crossdiff_core.config import AdaptParams, ReducedParams, section_values
from flows.params import stage_config
from tasks.adapt import adapt_task
from tasks.scenes import scene_stores


@flow(name="reduced-adapt")
def reduced_adapt_flow(config: ReducedParams, adapt: AdaptParams) -> str:
    """Adapt the head on ``config.wald_scenes`` with ``config.encoders_dir``; returns its folder."""
    adapt = replace(adapt, scenes=[config.wald_scenes], out=config.head_dir,
                    encoders=config.encoders_dir)
    return str(adapt_task(scene_stores(adapt.scenes), adapt).out)


def main() -> None:
    from flows.tracked import tracked_stage

    configs = stage_config("reduced_adapt")
    with tracked_stage("reduced_adapt", section_values(configs["reduced"])):
        reduced_adapt_flow(configs["reduced"], configs["adapt"])


if __name__ == "__main__":
    main()
