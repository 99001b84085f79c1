"""The full-pipeline and nightly flows run `dvc repro` (never a stage behind DVC's back) and say
which stages DVC ran; a failing stage fails the flow with DVC's output."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml


@pytest.fixture()
def dvc_project(tmp_path, monkeypatch):
    stages = {
        "make": {"cmd": f"{sys.executable} -c \"open('made.txt', 'w').write('x')\"",
                 "deps": ["input.txt"], "outs": ["made.txt"]},
        "use": {"cmd": f"{sys.executable} -c \"open('used.txt', 'w').write('y')\"",
                "deps": ["made.txt"], "outs": ["used.txt"]},
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (tmp_path / "input.txt").write_text("1")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path,
                   check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_flows_run_what_changed_through_dvc(dvc_project, prefect_server):
    from flows.pipeline import pipeline_flow, readapt_flow

    assert pipeline_flow() == ["make", "use"]
    assert (dvc_project / "dvc.lock").is_file()
    assert readapt_flow() == []
    assert pipeline_flow(stages=["use"], force=True) == ["make", "use"]  # and what precedes
    (dvc_project / "input.txt").write_text("2")
    assert readapt_flow() == ["make"]  # same made.txt: DVC skips "use"


def test_a_failing_stage_fails_the_flow_with_dvc_output(dvc_project, prefect_server):
    from flows.pipeline import pipeline_flow

    stages = yaml.safe_load((dvc_project / "dvc.yaml").read_text())
    stages["stages"]["make"]["cmd"] = f"{sys.executable} -c \"raise SystemExit('no data')\""
    (dvc_project / "dvc.yaml").write_text(yaml.safe_dump(stages))
    with pytest.raises(RuntimeError, match=r"(?s)failed \(exit \d+\).*no data"):
        pipeline_flow()
