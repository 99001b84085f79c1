"""Evaluate stage: every method on every scene store, at reduced and full resolution.

``python -m flows.evaluate`` reads the ``evaluate`` section of params.yaml (DVC stage
``evaluate``). It only scores: baselines are looked up by name; the CrossDiff models are other
stages' outputs, loaded from their folders (``adapt.out`` and the reduced_adapt stage's head for
``crossdiff``, the ablation stage's heads for ``crossdiff_random_encoders``); other methods
arrive as callables in ``extra_methods``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from prefect import flow, get_run_logger

from crossdiff_core.baselines import METHODS
from crossdiff_core.config import EvaluateParams, section_values
from crossdiff_core.evaluation import ALL_CLASSICAL, Method, PerResolution, expand_methods
from crossdiff_core.io.store import find_scene_stores, read_store_attrs
from crossdiff_core.report.findings import CROSSDIFF, scene_findings
from flows.params import stage_config
from tasks.evaluate import (
    CROSSDIFF_METHODS,
    load_models,
    model_folders,
    score_scene_task,
    write_evaluation_task,
)


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


def promotion_scores(scores: Mapping[str, Mapping[str, Mapping[str, float]]],
                     config: EvaluateParams) -> dict[str, dict[str, float]]:
    """CrossDiff's full-resolution HQNR and reduced-resolution Q2n per scene, keyed by scene,
    source and evaluation settings (``tasks.tracking.scene_key``): scores under equal keys are
    comparable. A missing score is NaN (never promoted)."""
    from tasks.tracking import scene_key

    sources = {}
    for store in find_scene_stores([Path(s) for s in config.scenes]):
        attrs = read_store_attrs(store)
        sources[str(attrs.get("scene_id", store.stem))] = str(attrs.get("source_sha256", ""))
    settings = {"max_pan_size": config.max_pan_size, "block_size": config.block_size,
                "border_cut": config.border_cut}
    return {scene_key(scene_id, sources.get(scene_id, ""), settings):
            {index: float(by_method.get("crossdiff", {}).get(index, math.nan))
             for index in ("hqnr", "q2n")}
            for scene_id, by_method in scores.items()}


def main(extra_methods: Mapping[str, Method] | None = None) -> None:
    """Run the stage from params.yaml: baselines (``all_classical`` = every one), the CrossDiff
    models, the quality-goal verdicts per scene, then the promotion of the evaluated head's
    registered version to champion when its scores beat the champion's on the same scenes by
    ``tracking.promotion_margin`` (``tasks.tracking.promote_if_better``)."""
    from flows.tracked import tracked_stage
    from tasks import tracking

    configs = stage_config("evaluate")
    config = configs["evaluate"]
    config = replace(config, methods=expand_methods(list(config.methods)))
    folders = model_folders(configs["adapt"].out, configs["reduced"], configs["ablation"])
    with tracked_stage("evaluate", section_values(config)) as tracker:
        models = load_models({name: folders[name] for name in CROSSDIFF_METHODS
                                   if name in config.methods})
        scores = evaluate_flow(config, extra_methods={**models, **(extra_methods or {})})
        for scene_id, by_method in scores.items():
            for method, indices in by_method.items():
                tracker.log_metrics(indices, prefix=f"{scene_id}.{method}.")
            if CROSSDIFF in by_method:
                # The quality goal, with the best classical method named (EXP excluded).
                print("\n".join(scene_findings(scene_id, by_method)))
        tracker.log_artifact(Path(config.out) / "metrics.json")
        if "crossdiff" in config.methods:
            # The version adapt registered for the head scored here (by content), never
            # whatever the `candidate` alias names by now; none after a random_encoders run.
            decision = tracking.promote_evaluated(
                configs["tracking"].pansharpener_model_name, configs["adapt"].out,
                promotion_scores(scores, config), configs["tracking"].promotion_margin)
            print(f"model promotion: {decision}")


if __name__ == "__main__":
    main()
