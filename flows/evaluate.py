"""Evaluate stage: every method on every scene store, at reduced and full resolution.

``python -m flows.evaluate`` reads the ``evaluate`` section of params.yaml (DVC stage
``evaluate``). Baselines are looked up by name; other methods (the CrossDiff models) arrive as
callables in ``extra_methods``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger

from crossdiff_core.baselines import METHODS
from crossdiff_core.evaluation import ALL_CLASSICAL, Method, PerResolution, expand_methods
from crossdiff_core.io.store import find_scene_stores
from crossdiff_core.report.findings import CROSSDIFF, scene_findings
from flows.params import load_params
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
    scenes: list[str],
    methods: list[str],
    out: str,
    extra_methods: Mapping[str, Method | PerResolution] | None = None,
    max_pan_size: int = 1024,
    block_size: int = 32,
    border_cut: int = 0,
    panel_crop: int = 256,
    on_scene: Callable[[str, dict[str, dict[str, float]]], None] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Score ``methods`` on each store found in ``scenes`` and write the result files to ``out``.

    ``extra_methods[name](ms, pan, ratio, sensor) -> fused`` adds methods that are not baselines.
    ``border_cut=21`` applies the toolbox's reduced-resolution border cut. ``on_scene(scene_id,
    scores)`` is called after each scene (e.g. to log to MLflow). Returns {scene: {method: {index:
    value}}}.
    """
    logger = get_run_logger()
    chosen = resolve_methods(list(methods), extra_methods)
    results = []
    for store in find_scene_stores([Path(s) for s in scenes]):
        result = score_scene_task(store, chosen, max_pan_size=max_pan_size,
                                  block_size=block_size, border_cut=border_cut)
        logger.info("scored %s: %s", result.scene_id, ", ".join(chosen))
        if on_scene is not None:
            on_scene(result.scene_id, result.scores)
        results.append(result)
    write_evaluation_task(results, out, panel_crop=panel_crop)
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
    scenes: list[str],
    methods: list[str],
    work: str,
    max_pan_size: int,
    full_head: str,
    pretrain_settings: dict,
    freeze_settings: dict,
    adapt_settings: dict,
    full_encoders: str | None = None,
) -> dict[str, PerResolution]:
    """The CrossDiff methods of the evaluation, each as a (full, reduced) pair of models.

    Full resolution uses the pipeline's adapted head (``full_head``); the random-encoder ablation
    is adapted on the same scenes. Reduced resolution runs the whole chain (pretrain, freeze,
    adapt) on the Wald-degraded evaluation crops only, so the original MS that serves as the
    reference is never seen by the method (DESIGN.md section 4).
    """
    from flows.adapt import adapt_flow
    from flows.freeze import freeze_flow
    from flows.pretrain import pretrain_flow
    from tasks.cross_sensor import prepare_scene

    wanted = [m for m in methods if m in CROSSDIFF_METHODS]
    if not wanted:
        return {}
    root = Path(work)
    stores = find_scene_stores([Path(s) for s in scenes])
    reduced = [prepare_scene(str(store), root / "scenes", max_pan_size).reduced_store
               for store in stores]
    # The ablation: random frozen twins of the very encoders CrossDiff uses (same layouts,
    # timestep and feature reading), or random UNets of adapt.random_channels when there are none.
    random_settings = {**adapt_settings, "random_encoders": True}
    reduced_encoders: str | None = None
    heads: dict[str, dict[str, Path]] = {}
    if "crossdiff" in wanted:
        pretrain_flow(scenes=reduced, out=str(root / "reduced" / "pretrain"),
                      settings=pretrain_settings)
        encoders = freeze_flow(pretrain_dir=str(root / "reduced" / "pretrain"), scenes=reduced,
                               out=str(root / "reduced" / "encoders"), **freeze_settings)
        adapt_flow(scenes=reduced, out=str(root / "reduced" / "head"), encoders=encoders,
                   settings=adapt_settings)
        reduced_encoders = encoders
        heads["crossdiff"] = {"full": Path(full_head), "reduced": root / "reduced" / "head"}
    if "crossdiff_random_encoders" in wanted:
        adapt_flow(scenes=scenes, out=str(root / "full" / "head_random"),
                   encoders=full_encoders, settings=random_settings)
        adapt_flow(scenes=reduced, out=str(root / "reduced" / "head_random"),
                   encoders=reduced_encoders, settings=random_settings)
        heads["crossdiff_random_encoders"] = {"full": root / "full" / "head_random",
                                              "reduced": root / "reduced" / "head_random"}
    return {name: PerResolution(full=model_method(paths["full"]),
                                reduced=model_method(paths["reduced"]))
            for name, paths in heads.items()}


def main(extra_methods: Mapping[str, Method] | None = None) -> None:
    """Run the stage from params.yaml: baselines (``all_classical`` = every one), the CrossDiff
    models, the quality-goal verdicts per scene, then the promotion of the adapted candidate to
    champion when its mean full-resolution HQNR beats the champion's."""
    from flows.freeze import freeze_settings_from
    from flows.tracked import tracked_stage
    from tasks import tracking

    params = load_params("evaluate")
    pretrain, freeze, adapt = (load_params(s) for s in ("pretrain", "freeze", "adapt"))
    tracking_params = load_params("tracking")
    methods = expand_methods(list(params["methods"]))
    scenes = [str(s) for s in params["scenes"]]
    max_pan_size = int(params.get("max_pan_size", 1024))
    with tracked_stage("evaluate", params) as tracker:
        models = crossdiff_models_flow(
            scenes=scenes,
            methods=methods,
            work=str(params.get("work", "data/models/eval")),
            max_pan_size=max_pan_size,
            full_head=str(adapt["out"]),
            pretrain_settings={k: v for k, v in pretrain.items() if k not in ("scenes", "out")},
            freeze_settings=freeze_settings_from(freeze, pretrain),
            adapt_settings={k: v for k, v in adapt.items() if k not in ("scenes", "out")},
            full_encoders=str(adapt.get("encoders") or freeze["out"]),
        )
        scores = evaluate_flow(
            scenes=scenes,
            methods=methods,
            out=str(params.get("out", "reports")),
            extra_methods={**models, **(extra_methods or {})},
            max_pan_size=max_pan_size,
            block_size=int(params.get("block_size", 32)),
            border_cut=int(params.get("border_cut", 0)),
            panel_crop=int(params.get("panel_crop", 256)),
        )
        for scene_id, by_method in scores.items():
            for method, indices in by_method.items():
                tracker.log_metrics(indices, prefix=f"{scene_id}.{method}.")
            if CROSSDIFF in by_method:
                # The quality goal, with the best classical method named (EXP excluded).
                print("\n".join(scene_findings(scene_id, by_method)))
        tracker.log_artifact(Path(params.get("out", "reports")) / "metrics.json")
        if "crossdiff" in methods:
            hqnr = float(np.mean([by_method["crossdiff"]["hqnr"]
                                  for by_method in scores.values()]))
            decision = tracking.promote_candidate(tracking_params["pansharpener_model_name"],
                                                  hqnr)
            print(f"model promotion: {decision}")


if __name__ == "__main__":
    main()
