"""Evaluate stage: every method on every scene store, at reduced and full resolution.

``python -m flows.evaluate`` reads the ``evaluate`` section of params.yaml (DVC stage
``evaluate``). Baselines are looked up by name; other methods (the CrossDiff models) arrive as
callables in ``extra_methods``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from prefect import flow, get_run_logger

from crossdiff_core.baselines import METHODS
from crossdiff_core.evaluation import Method
from crossdiff_core.io.store import find_scene_stores
from flows.params import load_params
from tasks.evaluate import score_scene_task, write_evaluation_task


def resolve_methods(names: list[str], extra_methods: Mapping[str, Method] | None = None
                    ) -> dict[str, Method]:
    """Methods by name: ``extra_methods`` first, then the baselines; unknown names raise."""
    available = {**METHODS, **(extra_methods or {})}
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: baselines are {', '.join(METHODS)}; other "
                         "methods must be passed as callables (extra_methods)")
    return {name: available[name] for name in names}


@flow(name="evaluate")
def evaluate_flow(
    scenes: list[str],
    methods: list[str],
    out: str,
    extra_methods: Mapping[str, Method] | None = None,
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


def main(extra_methods: Mapping[str, Method] | None = None) -> None:
    """Run the stage from params.yaml; methods that are neither baselines nor in
    ``extra_methods`` are refused by name."""
    params = load_params("evaluate")
    evaluate_flow(
        scenes=[str(s) for s in params["scenes"]],
        methods=list(params["methods"]),
        out=str(params.get("out", "reports")),
        extra_methods=extra_methods,
        max_pan_size=int(params.get("max_pan_size", 1024)),
        block_size=int(params.get("block_size", 32)),
        border_cut=int(params.get("border_cut", 0)),
        panel_crop=int(params.get("panel_crop", 256)),
    )


if __name__ == "__main__":
    main()
