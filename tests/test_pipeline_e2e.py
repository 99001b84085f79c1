"""The real DVC pipeline, end to end, on tiny parameters in a temporary git copy of the project.

One copy serves every test of this module (the pipeline runs once): reproducing it, a no-op
second repro, which stages a changed adapt parameter invalidates, the report, the model registry,
and the Prefect deployments of prefect.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from dvc_project import COMMAND_TIMEOUT, copy_project, run, stages_run

from crossdiff_core.evaluation import expand_methods

STAGES = ("ingest", "pretrain", "freeze", "adapt", "reduced", "reduced_adapt", "ablation",
          "evaluate", "report")
# The first `dvc repro` of the whole pipeline (tiny parameters: minutes), then any other command.
REPRO_TIMEOUT = 1500
# pytest's limit covers the whole first test: copying, the first repro (the module's fixture) and
# its own command; it is longer than the commands' own limits so that they fail first, saying which.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(REPRO_TIMEOUT + COMMAND_TIMEOUT + 300)]


_run = run


def _stages_run(output: str) -> set[str]:
    return set(stages_run(output))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, prefect_server):
    """A git copy of the project with tests/params-tiny.yaml as params.yaml, after `dvc repro`."""
    root = tmp_path_factory.mktemp("crossdiff-copy")
    env = copy_project(root)
    first = _run(["dvc", "repro"], root, env, timeout=REPRO_TIMEOUT)
    return root, env, first.stdout


def test_repro_runs_every_stage_then_nothing(pipeline):
    root, env, first_output = pipeline
    assert _stages_run(first_output) == set(STAGES)
    second = _run(["dvc", "repro"], root, env)
    assert _stages_run(second.stdout) == set()


def _paths(entries: list) -> list[Path]:
    return [Path(next(iter(e)) if isinstance(e, dict) else e.split("#")[0].strip())
            for e in entries or []]


def _downstream(root: Path, changed: set[str]) -> set[str]:
    """The stages whose deps are, transitively, outputs of the ``changed`` stages."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    outs = {name: _paths(stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []))
            for name, stage in stages.items()}
    found, todo = set(), set(changed)
    while todo:
        made = [out for name in todo for out in outs[name]]
        todo = {name for name, stage in stages.items() if name not in found | changed
                and any(dep == out or out in dep.parents or dep in out.parents
                        for dep in _paths(stage.get("deps", [])) for out in made)}
        found |= todo
    return found


def test_changing_one_adapt_parameter_reruns_only_adapt_and_later(pipeline):
    root, env, _ = pipeline
    params_file = root / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["adapt"]["lr"] = float(params["adapt"]["lr"]) * 0.5
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        dry = _run(["dvc", "repro", "--dry"], root, env)
    finally:
        params_file.write_text(original)
    # A dry run names the stages whose own params or deps changed: every head trained with the
    # adapt settings (the pipeline's, the reduced-resolution chain's and the random-encoder
    # ablation's), never the pretraining, freezing or Wald copies they build on. Evaluate and
    # report follow through those stages' outputs, which a dry run cannot know yet.
    changed = _stages_run(dry.stdout)
    assert changed == {"adapt", "reduced_adapt", "ablation"}
    assert _downstream(root, changed) == {"evaluate", "report"}


def test_metrics_hold_every_scene_method_and_index(pipeline):
    root, _, _ = pipeline
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    evaluate = yaml.safe_load((root / "params.yaml").read_text())["evaluate"]
    methods = expand_methods(evaluate["methods"])
    indices = {"q2n", "q", "sam", "ergas", "scc", "hqnr", "qnr", "d_lambda", "d_lambda_k", "d_s",
               "d_rho", "r_q2n"}
    assert metrics, "no scene was evaluated"
    for scene, by_method in metrics.items():
        assert set(methods) <= set(by_method), scene
        for method, values in by_method.items():
            assert indices <= set(values), (scene, method)
            assert all(np.isfinite(v) for v in values.values()), (scene, method)
    report = (root / "reports" / "report" / "report.md").read_text()
    for method in methods:
        assert method in report
    images = list((root / "reports" / "report").rglob("*.png"))
    assert images and all(image.stat().st_size > 0 for image in images)


def test_registry_champion_reproduces_the_fused_output(pipeline, monkeypatch):
    root, env, _ = pipeline
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    import mlflow

    from crossdiff_core.io.store import find_scene_stores, open_scene
    from crossdiff_core.pansharpener import load_pansharpener
    from tasks import tracking

    tracking.configure()
    name = yaml.safe_load((root / "params.yaml").read_text())["tracking"][
        "pansharpener_model_name"]
    scene = open_scene(find_scene_stores([root / "data" / "zarr"])[0])
    # The logged signature takes float32 DN (the README's cast); uint16 is refused by MLflow.
    ms = np.asarray(scene.ms[:, :32, :32].values).astype(np.float32)
    pan = np.asarray(scene.pan[: 32 * scene.ratio, : 32 * scene.ratio].values).astype(np.float32)

    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    fused = champion.predict({"pan": pan, "ms": ms})
    expected = load_pansharpener(root / "data" / "models" / "head").fuse(ms, pan)
    np.testing.assert_allclose(fused, expected, rtol=0, atol=1e-3)
    assert fused.shape == (ms.shape[0], *pan.shape)


def test_prefect_deploy_creates_scheduled_deployments(pipeline):
    root, env, _ = pipeline
    _run(["prefect", "work-pool", "create", "crossdiff-process", "--type", "process",
          "--overwrite"], root, env)
    _run(["prefect", "--no-prompt", "deploy", "--all"], root, env)
    crons = {}
    for deployment in ("landing/landing-every-15-min", "readapt/readapt-nightly",
                       "crossdiff-pipeline/full-pipeline"):
        shown = _run(["prefect", "deployment", "inspect", deployment, "--output", "json"],
                     root, env)
        info = json.loads(shown.stdout)
        assert info["work_pool_name"] == "crossdiff-process"
        crons[deployment] = [(s["schedule"]["cron"], s["schedule"]["timezone"])
                             for s in info["schedules"]]
    assert crons["landing/landing-every-15-min"] == [("*/15 * * * *", "UTC")]
    assert crons["readapt/readapt-nightly"] == [("0 2 * * *", "UTC")]
    assert crons["crossdiff-pipeline/full-pipeline"] == []
