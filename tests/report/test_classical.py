"""Best classical method: EXP and the CrossDiff variants are never the bar; verdicts name the method
and the margin; the few best classical methods are the ones pictured."""

from __future__ import annotations

import math

import pytest

from crossdiff_core.report.classical import (
    best_classical,
    classical_methods,
    is_classical,
    method_label,
    toolbox_name,
    top_classical,
)
from crossdiff_core.report.findings import classical_verdict, goal_summary, scene_findings

# EXP tops HQNR (D_lambda 0) and the ablation tops everything: neither may be the bar.
SCENE = {
    "exp": {"hqnr": 0.95, "q2n": 0.60, "sam": 1.0},
    "gsa": {"hqnr": 0.88, "q2n": 0.89, "sam": 3.2},
    "bdsd_pc": {"hqnr": 0.86, "q2n": 0.8969, "sam": 3.0},
    "brovey": {"hqnr": 0.89, "q2n": 0.85, "sam": math.nan},
    "crossdiff_random_encoders": {"hqnr": 0.97, "q2n": 0.95, "sam": 0.5},
    "crossdiff": {"hqnr": 0.90, "q2n": 0.9012, "sam": 2.9},
}


def test_classical_contenders_exclude_exp_and_every_crossdiff_variant():
    assert classical_methods(SCENE) == ["gsa", "bdsd_pc", "brovey"]
    assert not is_classical("EXP") and not is_classical("crossdiff_noisy_features")
    assert is_classical("mtf_glp_hpm_r")


def test_best_classical_per_index_direction_and_missing_values():
    assert best_classical(SCENE, "hqnr") == ("brovey", 0.89)
    assert best_classical(SCENE, "q2n") == ("bdsd_pc", 0.8969)
    # Lower is better for SAM; EXP (1.0) and the ablation (0.5) are lower still; NaN is skipped.
    assert best_classical(SCENE, "sam") == ("bdsd_pc", 3.0)
    only_tested = {m: SCENE[m] for m in ("exp", "crossdiff", "crossdiff_random_encoders")}
    assert best_classical(only_tested, "hqnr") is None


def test_verdict_names_the_best_classical_method_and_the_margin():
    assert classical_verdict("IKONOS", SCENE, "q2n") == (
        "IKONOS: crossdiff Q2n 0.9012 beats best classical BDSD-PC-equivalent `bdsd_pc` 0.8969 "
        "(+0.0043)."
    )
    assert classical_verdict("IKONOS", SCENE, "hqnr") == (
        "IKONOS: crossdiff HQNR 0.9000 beats best classical `brovey` 0.8900 (+0.0100)."
    )
    losing = {**SCENE, "crossdiff": {"hqnr": 0.85, "q2n": 0.80}}
    assert classical_verdict("WV3", losing, "hqnr") == (
        "WV3: crossdiff HQNR 0.8500 does NOT beat best classical `brovey` 0.8900 (-0.0400)."
    )
    lines = scene_findings("IKONOS", SCENE)
    assert lines[0].startswith("IKONOS: crossdiff HQNR 0.9000 beats best classical `brovey`")
    assert (
        "NOT better than the random-encoder ablation on HQNR (0.9000 vs 0.9700, -0.0700)"
        in (lines[1])
    )
    assert not any("`exp`" in line or "`crossdiff_random" in line for line in lines)


def test_verdict_without_contenders_or_values_says_so():
    only_exp = {"exp": SCENE["exp"], "crossdiff": SCENE["crossdiff"]}
    assert "no classical method (EXP excluded)" in classical_verdict("s", only_exp, "hqnr")
    assert classical_verdict("s", {"gsa": SCENE["gsa"], "crossdiff": {}}, "q2n") == (
        "s: crossdiff has no Q2n value."
    )
    assert scene_findings("s", {"gsa": SCENE["gsa"]}) == [
        "s: crossdiff was not evaluated on this scene."
    ]


def test_goal_summary_counts_scenes_and_names_the_bar_where_missed():
    losing = {**SCENE, "crossdiff": {"hqnr": 0.85, "q2n": 0.95}}
    hqnr, q2n = goal_summary({"A": SCENE, "B": losing})
    assert hqnr.startswith(
        "HQNR: crossdiff beats the best classical method on 1 of 2 scene(s) "
        "(not on: B, `brovey` 0.8900)."
    )
    assert q2n.startswith("Q2n: crossdiff beats the best classical method on 2 of 2 scene(s).")
    assert "random-encoder ablation on 0 of 2 scene(s)" in hqnr


def test_toolbox_names_follow_the_toolbox():
    assert toolbox_name("bdsd_pc") == "BDSD-PC"
    assert toolbox_name("mtf-glp-hpm-r") == "MTF-GLP-HPM-R"
    assert toolbox_name("mf_hg") == "MF"
    assert toolbox_name("brovey") is None  # plain Brovey, not the toolbox's BT-H
    assert method_label("gsa") == "GSA-equivalent `gsa`"
    assert method_label("brovey") == "`brovey`"


def test_top_classical_ranks_by_hqnr_and_q2n():
    scene = {
        "exp": {"hqnr": 0.99, "q2n": 0.99},
        "d": {"hqnr": 0.70, "q2n": 0.80},  # ranks 4 + 3
        "c": {"hqnr": 0.85, "q2n": 0.70},  # ranks 2 + 4
        "b": {"hqnr": 0.80, "q2n": 0.85},  # ranks 3 + 2
        "a": {"hqnr": 0.90, "q2n": 0.90},  # ranks 1 + 1
        "crossdiff": {"hqnr": 0.99, "q2n": 0.99},
    }
    assert top_classical(scene, count=3) == ["a", "b", "c"]
    assert top_classical(scene, ("q2n",), count=2) == ["a", "b"]
    # Equal mean ranks keep the scene's order.
    assert top_classical(SCENE, count=3) == ["gsa", "bdsd_pc", "brovey"]
    assert top_classical(SCENE, ("sam",), count=3) == ["bdsd_pc", "gsa", "brovey"]  # NaN last
    assert top_classical({"exp": SCENE["exp"]}) == []


@pytest.mark.parametrize("count", [0, -1])
def test_top_classical_with_no_room(count):
    assert top_classical(SCENE, count=count) == []
