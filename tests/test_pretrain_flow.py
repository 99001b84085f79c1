"""Pretrain entry points: the Prefect flow (both branches) and `crossdiff pretrain`."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from crossdiff_core.synthetic import write_synthetic_store

TINY = {"pan_patch": 16, "batch_size": 2, "steps": 2, "checkpoint_every": 2,
        "channels": [8, 16], "timesteps": 50, "sample_steps": 2, "progress": False,
        "m2p": {"steps": 3}}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("zarr")
    write_synthetic_store(root, "QuickBird", ms_shape=(12, 12), seed=9)
    return str(root)


def test_flow_trains_both_branches_with_prefixed_step_metrics(tmp_path, scenes, prefect_server):
    from crossdiff_core.config import PretrainParams
    from flows.pretrain import pretrain_flow

    seen = []
    config = PretrainParams(scenes=[scenes], out=str(tmp_path), **TINY)
    summaries = pretrain_flow(config, on_step=lambda step, metrics: seen.append((step, metrics)))
    assert set(summaries) == {"p2m", "m2p"}
    assert summaries["m2p"]["steps"] == 3 and summaries["p2m"]["steps"] == 2
    for branch in ("p2m", "m2p"):
        assert (tmp_path / branch / "weights.pt").is_file()
        assert (tmp_path / branch / "diagnostics.json").is_file()
    assert sorted(step for step, m in seen if "m2p_loss" in m) == [1, 2, 3]
    assert sorted(step for step, m in seen if "p2m_loss" in m) == [1, 2]


def test_cli_trains_one_branch_and_reports_bad_input_in_one_line(tmp_path, scenes,
                                                                 prefect_server):
    from flows.cli import app

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"pretrain": TINY}))
    runner = CliRunner()
    result = runner.invoke(app, ["pretrain", "--scenes", scenes, "--out", str(tmp_path / "m"),
                                 "--branch", "p2m", "--steps", "1", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "p2m" in result.output and (tmp_path / "m" / "p2m" / "weights.pt").is_file()
    assert not (tmp_path / "m" / "m2p").exists()

    small = runner.invoke(app, ["pretrain", "--scenes", scenes, "--out", str(tmp_path / "n"),
                                "--pan-patch", "64", "--params", str(params)])
    assert small.exit_code == 1
    assert "smaller than one patch of 64 PAN pixels" in small.output
    assert "Traceback" not in small.output
