"""The evaluate stage on a tiny synthetic scene store: flow, files, command and bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from crossdiff_core.baselines import METHODS
from crossdiff_core.evaluation import FULL_INDICES, REDUCED_INDICES, centred_crop, evaluate_method
from crossdiff_core.synthetic import synthetic_pair, write_synthetic_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic_store(tmp_path_factory.mktemp("stores"), "QuickBird", ms_shape=(40, 36))


def test_evaluate_flow_writes_every_output(store, tmp_path, prefect_server):
    from crossdiff_core.config import EvaluateParams
    from flows.evaluate import evaluate_flow

    calls = []

    def smoothed_exp(ms, pan, ratio, sensor):  # an extra method given as a plain callable
        return METHODS["exp"](ms, pan, ratio, sensor)

    config = EvaluateParams(scenes=[str(store.parent.parent)], methods=["exp", "gsa", "mine"],
                            out=str(tmp_path), border_cut=0)
    scores = evaluate_flow(config, extra_methods={"mine": smoothed_exp},
                           on_scene=lambda scene, s: calls.append(scene))
    (scene_id,) = scores
    assert calls == [scene_id]
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert set(written[scene_id]) == {"exp", "gsa", "mine"}
    assert set(written[scene_id]["gsa"]) == set(REDUCED_INDICES) | set(FULL_INDICES)
    assert written[scene_id]["mine"] == pytest.approx(written[scene_id]["exp"])
    # EXP injects nothing: no spectral distortion, and GSA sharpens more than EXP.
    assert written[scene_id]["exp"]["d_lambda"] == pytest.approx(0, abs=1e-12)
    assert written[scene_id]["gsa"]["q2n"] > written[scene_id]["exp"]["q2n"]
    with open(tmp_path / "metrics_long.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * (len(REDUCED_INDICES) + len(FULL_INDICES))
    assert {r["resolution"] for r in rows} == {"reduced", "full"}
    assert rows[0]["sensor"] == "QuickBird"
    table = (tmp_path / "tables" / f"{scene_id}.md").read_text()
    assert "| gsa |" in table and "Full resolution" in table
    with np.load(tmp_path / "panels" / f"{scene_id}.npz") as panels:
        assert {"pan", "ms_up", "fused_gsa", "fused_rr_gsa", "reference_rr"} <= set(panels.files)
    assert not list(tmp_path.rglob("*.tmp"))


def test_unknown_method_is_refused(store, tmp_path):
    from flows.evaluate import resolve_methods

    with pytest.raises(ValueError, match="crossdiff"):
        resolve_methods(["exp", "crossdiff"])


def test_command_scores_a_store(store, tmp_path):
    from flows.cli import app

    result = CliRunner().invoke(app, ["evaluate", str(store), "--methods", "exp,mtf-glp-hpm",
                                      "--out", str(tmp_path), "--border-cut", "0"])
    assert result.exit_code == 0, result.output
    assert set(json.loads((tmp_path / "metrics.json").read_text()).popitem()[1]) == {
        "exp", "mtf_glp_hpm"}
    bad = CliRunner().invoke(app, ["evaluate", str(store), "--methods", "magic"])
    assert bad.exit_code == 1 and "unknown" in bad.output and "Traceback" not in bad.output
    assert "all_classical" in bad.output
    # The toolbox cut (21 px a side) does not fit the 40 x 36 reference: one clear line.
    small = CliRunner().invoke(app, ["evaluate", str(store), "--out", str(tmp_path / "cut")])
    assert small.exit_code == 1 and "border_cut" in small.output


def test_centred_crop_is_block_aligned_and_bounded():
    rows, cols = centred_crop((300, 250), ratio=4, max_pan_size=1024)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (256, 224)
    assert rows.start == 22 and cols.start == 13
    with pytest.raises(ValueError, match="max_pan_size"):
        centred_crop((300, 250), ratio=4, max_pan_size=100)


def test_evaluate_method_refuses_a_wrong_output_shape():
    pan, ms = synthetic_pair("QuickBird", ms_shape=(32, 32), seed=2)

    def cropping_method(ms_in, pan_in):
        return np.repeat(np.repeat(ms_in, 4, axis=1), 4, axis=2)[:, :-1]

    with pytest.raises(ValueError, match="expected"):
        evaluate_method(cropping_method, ms, pan, 4, "QB")


def test_nodata_inside_the_crop_is_refused(store):
    from crossdiff_core.evaluation import evaluate_scene
    from crossdiff_core.io.store import open_scene

    scene = open_scene(store)
    scene.attrs["nodata"] = 0
    scene.pan = scene.pan.copy(data=scene.pan.values.copy())
    scene.pan.values[70, 70] = 0
    with pytest.raises(ValueError, match="nodata"):
        evaluate_scene(scene, {"exp": METHODS["exp"]})


def test_all_classical_expands_to_every_baseline_registered(monkeypatch):
    from crossdiff_core.evaluation import expand_methods
    from flows.evaluate import resolve_methods

    names = expand_methods(["gsa", "all_classical", "crossdiff", "exp"])
    assert names == ["gsa", *(m for m in METHODS if m != "gsa"), "crossdiff"]
    assert list(resolve_methods(["all_classical"])) == list(METHODS)
    # A baseline registered later is part of the keyword without touching params.yaml.
    monkeypatch.setitem(METHODS, "late_method", METHODS["exp"])
    assert expand_methods(["all_classical"])[-1] == "late_method"
    with pytest.raises(ValueError, match="all_classical"):
        resolve_methods(["all_classics"])


def test_params_evaluate_every_classical_method_by_default_and_few_in_tiny():
    import yaml
    from conftest import PROJECT_ROOT

    default = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["evaluate"]
    assert default["methods"] == ["all_classical", "crossdiff_random_encoders", "crossdiff"]
    tiny = yaml.safe_load((PROJECT_ROOT / "tests" / "params-tiny.yaml").read_text())["evaluate"]
    classical = [m for m in tiny["methods"] if not m.startswith("crossdiff")]
    assert "all_classical" not in tiny["methods"] and set(classical) <= set(METHODS)
    assert len(classical) <= 4 and {"crossdiff", "crossdiff_random_encoders"} <= set(
        tiny["methods"])


def test_scene_table_names_the_best_classical_method_not_exp():
    from crossdiff_core.evaluation import SceneEvaluation
    from crossdiff_core.evaluation_files import markdown_table

    empty = np.zeros((4, 1, 1))
    scores = {
        "exp": {"q2n": 0.70, "hqnr": 0.99},  # D_lambda 0: the highest HQNR, never the bar
        "gsa": {"q2n": 0.88, "hqnr": 0.90},
        "mtf_glp_hpm": {"q2n": 0.89, "hqnr": 0.85},
        "crossdiff": {"q2n": 0.90, "hqnr": 0.93},
    }
    result = SceneEvaluation("s", "QuickBird", 4, ["b"] * 4, scores, empty[0], empty, empty)
    table = markdown_table(result)
    assert "- s: crossdiff HQNR 0.9300 beats best classical GSA-equivalent `gsa` 0.9000 " \
        "(+0.0300)." in table
    assert "- s: crossdiff Q2n 0.9000 beats best classical MTF-GLP-HPM-equivalent " \
        "`mtf_glp_hpm` 0.8900 (+0.0100)." in table
    del scores["crossdiff"]
    assert "best classical" not in markdown_table(result)
