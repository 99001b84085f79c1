"""Prefect tasks of the evaluate stage: load the saved models, score one scene store, write the
result files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.config import AblationParams, EvaluateParams, ReducedParams
from crossdiff_core.evaluation import Method, PerResolution, SceneEvaluation, evaluate_scene
from crossdiff_core.evaluation_files import write_evaluation
from crossdiff_core.io.store import open_scene
from tasks.retry import io_retries

# The CrossDiff methods of the evaluation and the stage whose models each one scores.
CROSSDIFF_METHODS = ("crossdiff", "crossdiff_random_encoders")


def model_folders(head: str, reduced: ReducedParams,
                  ablation: AblationParams) -> dict[str, dict[str, Path]]:
    """The saved pansharpeners of each CrossDiff method, by resolution: the pipeline's head
    (adapt stage) and the reduced chain's (reduced_adapt stage) for ``crossdiff``, the random-
    encoder heads (ablation stage) for ``crossdiff_random_encoders``."""
    return {
        "crossdiff": {"full": Path(head), "reduced": Path(reduced.head_dir)},
        "crossdiff_random_encoders": {"full": Path(ablation.head_dir("full")),
                                      "reduced": Path(ablation.head_dir("reduced"))},
    }


def model_method(folder: str | Path) -> Method:
    """A saved pansharpener as an evaluation method (loaded once, fuses whole crops)."""
    from crossdiff_core.pansharpener import load_pansharpener

    model = load_pansharpener(folder)

    def fuse(ms, pan, ratio: int, sensor: str):
        return model.fuse(ms, pan)

    return fuse


def load_models(folders: Mapping[str, Mapping[str, Path]]) -> dict[str, PerResolution]:
    """Each method's (full, reduced) pair of saved pansharpeners, loaded once (a plain function:
    the closures it returns are not task results)."""
    return {name: PerResolution(full=model_method(paths["full"]),
                                reduced=model_method(paths["reduced"]))
            for name, paths in folders.items()}


@task(name="score-scene", cache_policy=NO_CACHE)
def score_scene_task(store: str | Path, methods: Mapping[str, Method | PerResolution],
                     config: EvaluateParams) -> SceneEvaluation:
    """Read a centred crop of one scene store and score every method on it (writes nothing)."""
    return evaluate_scene(open_scene(store), methods, max_pan_size=config.max_pan_size,
                          block_size=config.block_size, border_cut=config.border_cut)


@task(name="write-evaluation", cache_policy=NO_CACHE, **io_retries(3))
def write_evaluation_task(results: Sequence[SceneEvaluation],
                          config: EvaluateParams) -> dict[str, Path]:
    """Write metrics.json, metrics_long.csv, tables/*.md and panels/*.npz under ``config.out``."""
    return write_evaluation(results, config.out, panel_crop=config.panel_crop)
