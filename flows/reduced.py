"""Reduced stage: the evaluation's reduced-resolution chain, up to its frozen encoders.

``python -m flows.reduced`` (DVC stage ``reduced``) writes the centred evaluation crop of each
``evaluate.scenes`` store (at most ``evaluate.max_pan_size`` PAN pixels) and its Wald-degraded
pair under ``reduced.out``/scenes, pretrains both branches on the degraded pairs only
(``reduced.out``/pretrain, the ``pretrain`` settings) and freezes them (``reduced.out``/encoders,
the ``freeze`` settings). The original MS, the reference of the reduced-resolution scores, is
never seen. ``python -m flows.reduced_adapt`` adapts the head on the same pairs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect import flow, get_run_logger

from crossdiff_core.config import (
    EvaluateParams,
    FreezeParams,
    PretrainParams,
    ReducedParams,
    section_values,
)
from flows.params import stage_config
from flows.pretrain import train_branches
from tasks.freeze import freeze_task
from tasks.reduced import wald_pair_task
from tasks.scenes import scene_stores


@flow(name="reduced")
def reduced_flow(config: ReducedParams, evaluate: EvaluateParams, pretrain: PretrainParams,
                 freeze: FreezeParams) -> str:
    """Wald pairs of the evaluation crops, both branches pretrained on them, then frozen;
    returns the encoders' folder."""
    logger = get_run_logger()
    wald = [wald_pair_task(store, Path(config.scenes_dir), evaluate.max_pan_size).reduced_store
            for store in scene_stores(evaluate.scenes)]
    pretrain = replace(pretrain, scenes=wald, out=config.pretrain_dir)
    # As the pretrain stage trains (pretrain.processes, pretrain.deterministic).
    for branch, summary in zip(pretrain.branch_configs(), train_branches(pretrain), strict=True):
        logger.info("reduced %s: %d steps, final loss %.4f", branch.branch, summary["steps"],
                    summary["final_loss"])
    encoders = freeze_task(replace(freeze, out=config.encoders_dir), Path(config.pretrain_dir),
                           wald, pretrain.pan_patch)
    return str(encoders)


def main() -> None:
    from flows.tracked import tracked_stage

    configs = stage_config("reduced")
    config = configs["reduced"]
    with tracked_stage("reduced", section_values(config)):
        reduced_flow(config, configs["evaluate"], configs["pretrain"], configs["freeze"])


if __name__ == "__main__":
    main()
