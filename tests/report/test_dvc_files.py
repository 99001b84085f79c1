"""The evaluation as DVC shows it: metrics grouped by scene and method, one bar chart per scene
and main index, and dvc.yaml's declarations pointing at those files and columns."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crossdiff_core.report.dvc_files import (
    METRICS_DIR,
    PLOT_COLUMNS,
    PLOT_INDICES,
    PLOTS_DIR,
    write_dvc_files,
)

ROOT = Path(__file__).resolve().parents[2]

METRICS = {
    "LC80200392015216LGN00": {
        "exp": {"q2n": 0.93, "sam": 0.77, "hqnr": 0.98, "d_s": 0.01},
        "gsa": {"q2n": 0.89, "sam": 0.80, "hqnr": 0.83, "d_s": 0.11},
        "crossdiff": {"q2n": 0.95, "sam": 0.67, "hqnr": math.nan, "d_s": 0.03},
    },
    "wv3 scene/2": {"exp": {"q2n": 0.91, "hqnr": 0.97}, "brovey": {"q2n": 0.78, "hqnr": 0.66}},
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_metrics_are_one_file_per_scene_and_method(tmp_path):
    written = write_dvc_files(METRICS, tmp_path)
    assert written == {"dvc_metrics": tmp_path / METRICS_DIR, "dvc_plots": tmp_path / PLOTS_DIR}
    files = sorted(p.relative_to(tmp_path / METRICS_DIR).as_posix()
                   for p in (tmp_path / METRICS_DIR).rglob("*.json"))
    assert files == ["LC80200392015216LGN00/crossdiff.json", "LC80200392015216LGN00/exp.json",
                     "LC80200392015216LGN00/gsa.json", "wv3_scene_2/brovey.json",
                     "wv3_scene_2/exp.json"]
    gsa = json.loads((tmp_path / METRICS_DIR / "LC80200392015216LGN00" / "gsa.json").read_text())
    assert gsa == METRICS["LC80200392015216LGN00"]["gsa"]
    crossdiff = json.loads(
        (tmp_path / METRICS_DIR / "LC80200392015216LGN00" / "crossdiff.json").read_text())
    assert crossdiff["hqnr"] is None and crossdiff["q2n"] == 0.95  # NaN is null: valid JSON


def test_plots_are_one_table_per_scene_and_main_index(tmp_path):
    write_dvc_files(METRICS, tmp_path)
    plots = tmp_path / PLOTS_DIR
    assert sorted(p.relative_to(plots).as_posix() for p in plots.rglob("*.csv")) == [
        f"{scene}/{index}.csv" for scene in ("LC80200392015216LGN00", "wv3_scene_2")
        for index in sorted(PLOT_INDICES)]
    q2n = read_csv(plots / "LC80200392015216LGN00" / "q2n.csv")
    assert tuple(q2n[0]) == PLOT_COLUMNS
    assert {row["method"]: float(row["value"]) for row in q2n} == {
        "exp": 0.93, "gsa": 0.89, "crossdiff": 0.95}
    hqnr = read_csv(plots / "LC80200392015216LGN00" / "hqnr.csv")
    assert [row["method"] for row in hqnr] == ["exp", "gsa"]  # the NaN is not drawn


def test_a_scene_no_longer_evaluated_leaves_no_file(tmp_path):
    write_dvc_files(METRICS, tmp_path)
    write_dvc_files({"wv3 scene/2": METRICS["wv3 scene/2"]}, tmp_path)
    for kind in (METRICS_DIR, PLOTS_DIR):
        assert [p.name for p in (tmp_path / kind).iterdir()] == ["wv3_scene_2"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_evaluation_writes_them_beside_metrics_json(tmp_path):
    """write_evaluation (the evaluate stage, ``crossdiff evaluate``) writes the DVC files from
    the same scores as metrics.json."""
    import numpy as np

    from crossdiff_core.evaluation import SceneEvaluation
    from crossdiff_core.evaluation_files import write_evaluation

    rng = np.random.default_rng(0)
    scores = METRICS["wv3 scene/2"]
    fused = {method: rng.uniform(0, 500, (4, 32, 32)) for method in scores}
    result = SceneEvaluation(
        "wv3 scene/2", "QuickBird", 4, ["B", "G", "R", "N"], scores,
        pan=rng.uniform(0, 500, (32, 32)), ms=rng.uniform(0, 500, (4, 8, 8)),
        ms_up=rng.uniform(0, 500, (4, 32, 32)), fused_full=fused,
        fused_reduced={method: rng.uniform(0, 500, (4, 8, 8)) for method in scores})
    written = write_evaluation([result], tmp_path, panel_crop=16)
    assert written["dvc_metrics"] == tmp_path / METRICS_DIR
    metrics = json.loads((tmp_path / "metrics.json").read_text())["wv3 scene/2"]
    for method, by_index in metrics.items():
        assert json.loads((tmp_path / METRICS_DIR / "wv3_scene_2" / f"{method}.json"
                           ).read_text()) == by_index
    assert {row["method"]: float(row["value"]) for row in
            read_csv(tmp_path / PLOTS_DIR / "wv3_scene_2" / "hqnr.csv")} == {
        method: by_index["hqnr"] for method, by_index in metrics.items()}


def evaluate_stage() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]


def declared(entries) -> dict[str, dict]:
    """``[path, {path: props}, ...]`` of dvc.yaml as {path: props}."""
    found = {}
    for entry in entries:
        found.update(entry if isinstance(entry, dict) else {entry: {}})
    return {path: props or {} for path, props in found.items()}


def test_dvc_yaml_declares_the_files_and_columns_the_evaluation_writes(tmp_path):
    out = yaml.safe_load((ROOT / "params.yaml").read_text())["evaluate"]["out"]
    stage = evaluate_stage()
    metrics, plots = declared(stage["metrics"]), declared(stage["plots"])
    assert set(metrics) == {f"{out}/{METRICS_DIR}"} and set(plots) == {f"{out}/{PLOTS_DIR}"}
    assert all(props.get("cache") is False for props in (*metrics.values(), *plots.values()))
    # metrics.json stays an output: the report stage depends on it.
    assert f"{out}/metrics.json" in declared(stage["outs"])
    assert f"{out}/metrics.json" in yaml.safe_load(
        (ROOT / "dvc.yaml").read_text())["stages"]["report"]["deps"]

    write_dvc_files(METRICS, tmp_path / out)
    (props,) = plots.values()
    assert props["template"].startswith("bar_horizontal")
    for table in (tmp_path / out / PLOTS_DIR).rglob("*.csv"):
        columns = set(read_csv(table)[0])
        assert {props["x"], props["y"]} <= columns, table
    # The loss curves as before: top-level plots of the pretraining's losses.csv.
    top = {name: spec for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
           for name, spec in entry.items()}
    assert {spec["x"] for spec in top.values()} == {"step"}


@pytest.mark.skipif(shutil.which("git") is None, reason="dvc needs git here")
def test_dvc_shows_one_row_per_method_and_a_chart_per_scene_and_index(tmp_path):
    """The project's dvc.yaml in a scratch repository holding only the evaluation's DVC files:
    ``dvc metrics show`` and ``dvc plots show`` read them as declared."""
    out = yaml.safe_load((ROOT / "params.yaml").read_text())["evaluate"]["out"]
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    write_dvc_files(METRICS, tmp_path / out)

    def dvc(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc("init", "-q")
    shown = json.loads(dvc("metrics", "show", "--json"))
    files = shown[""]["data"]
    assert files[f"{out}/{METRICS_DIR}/wv3_scene_2/brovey.json"]["data"] == {
        "q2n": 0.78, "hqnr": 0.66}
    assert len(files) == 5
    table = dvc("metrics", "show")
    assert len(table.strip().splitlines()) == 1 + 5  # header + one row per scene and method

    charts = json.loads(dvc("plots", "show", "--json"))
    drawn = {path: spec for path, specs in charts["data"].items() for spec in specs
             if path.startswith(f"{out}/{PLOTS_DIR}/")}
    assert set(drawn) == {f"{out}/{PLOTS_DIR}/{scene}/{index}.csv"
                          for scene in ("LC80200392015216LGN00", "wv3_scene_2")
                          for index in PLOT_INDICES}
    chart = drawn[f"{out}/{PLOTS_DIR}/LC80200392015216LGN00/q2n.csv"]["content"]
    assert chart["mark"]["type"] == "bar" and chart["encoding"]["y"]["field"] == "method"
    assert {v["method"] for v in chart["data"]["values"]} == {"exp", "gsa", "crossdiff"}
    errors = [e for e in charts.get("errors", []) if str(e.get("source", "")).startswith(out)]
    assert not errors
