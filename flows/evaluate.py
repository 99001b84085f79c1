"""Evaluate stage: every method on every scene store, at reduced and full resolution.

``python -m flows.evaluate`` reads the ``evaluate`` section of params.yaml (DVC stage
``evaluate``). Baselines are looked up by name; other methods (the CrossDiff models) arrive as
callables in ``extra_methods``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger

from crossdiff_core.baselines import METHODS
from crossdiff_core.config import (
    AdaptParams,
    EvaluateParams,
    FreezeParams,
    PretrainParams,
    section_values,
)
from crossdiff_core.evaluation import ALL_CLASSICAL, Method, PerResolution, expand_methods
from crossdiff_core.io.store import find_scene_stores
from crossdiff_core.report.findings import CROSSDIFF, scene_findings
from flows.params import stage_config
from tasks.evaluate import score_scene_task, write_evaluation_task

CROSSDIFF_METHODS = ("crossdiff", "crossdiff_random_encoders")


def resolve_methods(names: list[str],
                    extra_methods: Mapping[str, Method | PerResolution] | None = None
                    ) -> dict[str, Method | PerResolution]:
    """Methods by name: ``extra_methods`` first, then the baselines (``all_classical`` = every
    baseline); unknown names raise."""
    available = {**METHODS, **(extra_methods or {})}
    names = expand_methods(names)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: baselines are {', '.join(METHODS)} (or "
                         f"{ALL_CLASSICAL} for all of them); other methods must be passed as "
                         "callables (extra_methods)")
    return {name: available[name] for name in names}


@flow(name="evaluate")
def evaluate_flow(
    config: EvaluateParams,
    extra_methods: Mapping[str, Method | PerResolution] | None = None,
    on_scene: Callable[[str, dict[str, dict[str, float]]], None] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Score ``config.methods`` on each store found in ``config.scenes`` and write the result
    files to ``config.out``.

    ``extra_methods[name](ms, pan, ratio, sensor) -> fused`` adds methods that are not baselines.
    ``on_scene(scene_id, scores)`` is called after each scene (e.g. to log to MLflow). Returns
    {scene: {method: {index: value}}}.
    """
    logger = get_run_logger()
    chosen = resolve_methods(list(config.methods), extra_methods)
    results = []
    for store in find_scene_stores([Path(s) for s in config.scenes]):
        result = score_scene_task(store, chosen, config)
        logger.info("scored %s: %s", result.scene_id, ", ".join(chosen))
        if on_scene is not None:
            on_scene(result.scene_id, result.scores)
        results.append(result)
    write_evaluation_task(results, config)
    return {r.scene_id: r.scores for r in results}


def model_method(folder: str | Path) -> Method:
    """A saved pansharpener as an evaluation method (loaded once, fuses whole crops)."""
    from crossdiff_core.pansharpener import load_pansharpener

    model = load_pansharpener(folder)

    def fuse(ms, pan, ratio: int, sensor: str):
        return model.fuse(ms, pan)

    return fuse


@flow(name="crossdiff-evaluation-models")
def crossdiff_models_flow(
    config: EvaluateParams,
    pretrain: PretrainParams,
    freeze: FreezeParams,
    adapt: AdaptParams,
) -> dict[str, PerResolution]:
    """The CrossDiff methods of the evaluation, each as a (full, reduced) pair of models.

    Full resolution uses the pipeline's adapted head (``adapt.out``, encoders ``adapt.encoders``);
    the random-encoder ablation is adapted on the evaluation scenes. Reduced resolution runs the
    whole chain (pretrain, freeze, adapt) with the pipeline's settings on the Wald-degraded
    evaluation crops only, so the original MS that serves as the reference is never seen by the
    method. Everything is written under ``config.work``.
    """
    from flows.adapt import adapt_flow
    from flows.freeze import freeze_flow
    from flows.pretrain import pretrain_flow
    from tasks.cross_sensor import prepare_scene

    wanted = [m for m in expand_methods(list(config.methods)) if m in CROSSDIFF_METHODS]
    if not wanted:
        return {}
    root = Path(config.work)
    stores = find_scene_stores([Path(s) for s in config.scenes])
    reduced = [prepare_scene(str(store), root / "scenes", config.max_pan_size).reduced_store
               for store in stores]
    # The ablation: random frozen twins of the very encoders CrossDiff uses (same layouts,
    # timestep and feature reading), or random UNets of adapt.random_channels when there are none.
    reduced_encoders: str | None = None
    heads: dict[str, dict[str, Path]] = {}
    if "crossdiff" in wanted:
        pretrain_dir = str(root / "reduced" / "pretrain")
        pretrain_flow(replace(pretrain, scenes=reduced, out=pretrain_dir))
        reduced_encoders = freeze_flow(replace(freeze, out=str(root / "reduced" / "encoders")),
                                       pretrain_dir, reduced, pretrain.pan_patch)
        adapt_flow(replace(adapt, scenes=reduced, out=str(root / "reduced" / "head"),
                           encoders=reduced_encoders))
        heads["crossdiff"] = {"full": Path(adapt.out), "reduced": root / "reduced" / "head"}
    if "crossdiff_random_encoders" in wanted:
        adapt_flow(replace(adapt, scenes=list(config.scenes), random_encoders=True,
                           out=str(root / "full" / "head_random")))
        adapt_flow(replace(adapt, scenes=reduced, random_encoders=True,
                           out=str(root / "reduced" / "head_random"), encoders=reduced_encoders))
        heads["crossdiff_random_encoders"] = {"full": root / "full" / "head_random",
                                              "reduced": root / "reduced" / "head_random"}
    return {name: PerResolution(full=model_method(paths["full"]),
                                reduced=model_method(paths["reduced"]))
            for name, paths in heads.items()}


def main(extra_methods: Mapping[str, Method] | None = None) -> None:
    """Run the stage from params.yaml: baselines (``all_classical`` = every one), the CrossDiff
    models, the quality-goal verdicts per scene, then the promotion of the adapted candidate to
    champion when its mean full-resolution HQNR beats the champion's."""
    from flows.adapt import with_encoders
    from flows.tracked import tracked_stage
    from tasks import tracking

    configs = stage_config("evaluate")
    config = configs["evaluate"]
    config = replace(config, methods=expand_methods(list(config.methods)))
    adapt = with_encoders(configs["adapt"], configs["freeze"])
    with tracked_stage("evaluate", section_values(config)) as tracker:
        models = crossdiff_models_flow(config, configs["pretrain"], configs["freeze"], adapt)
        scores = evaluate_flow(config, extra_methods={**models, **(extra_methods or {})})
        for scene_id, by_method in scores.items():
            for method, indices in by_method.items():
                tracker.log_metrics(indices, prefix=f"{scene_id}.{method}.")
            if CROSSDIFF in by_method:
                # The quality goal, with the best classical method named (EXP excluded).
                print("\n".join(scene_findings(scene_id, by_method)))
        tracker.log_artifact(Path(config.out) / "metrics.json")
        if "crossdiff" in config.methods:
            hqnr = float(np.mean([by_method["crossdiff"]["hqnr"]
                                  for by_method in scores.values()]))
            decision = tracking.promote_candidate(
                configs["tracking"].pansharpener_model_name, hqnr)
            print(f"model promotion: {decision}")


if __name__ == "__main__":
    main()
