"""The report flow, its params-driven main() and the `crossdiff report` command."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from crossdiff_core.config import ReportParams
from crossdiff_core.report.findings import classical_verdict
from flows.cli import app
from flows.report import main, report_flow

from .fake_evaluation import SCENES, write_fake_evaluation, write_fake_losses


def test_report_flow_writes_report_and_calls_hook(tmp_path, prefect_server):
    metrics_dir = write_fake_evaluation(tmp_path / "reports")
    write_fake_losses(tmp_path / "pretrain", tmp_path / "adapt")
    seen = []
    config = ReportParams(metrics_dir=str(metrics_dir), pretrain_dir=str(tmp_path / "pretrain"),
                          adapt_dir=str(tmp_path / "adapt"), cross_sensor_dir=None,
                          out=str(tmp_path / "out"))
    markdown = report_flow(config, on_artifact=seen.append)
    out = tmp_path / "out"
    assert markdown == out / "report.md"
    figures = {f"{scene}_{kind}.png" for scene in SCENES for kind in ("panel", "errors")}
    figures |= {"pretrain_losses.png", "adapt_losses.png"}
    # Every figure, then both documents, each reported once.
    assert sorted(p.name for p in seen[:-2]) == sorted(figures)
    assert seen[-2:] == [markdown, out / "report.html"]
    text, page = markdown.read_text(), (out / "report.html").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(Path(link).name for link in linked) == sorted(figures)
    assert all((out / link).read_bytes().startswith(b"\x89PNG") for link in linked)
    metrics = json.loads((metrics_dir / "metrics.json").read_text())
    for scene_id, by_method in metrics.items():
        for index in ("hqnr", "q2n"):
            verdict = classical_verdict(scene_id, by_method, index)
            assert verdict in text and html.escape(verdict) in page


def test_main_reads_report_params(tmp_path, monkeypatch, prefect_server):
    metrics_dir = write_fake_evaluation(tmp_path / "reports", seed=3)
    params = {
        "report": {
            "metrics_dir": str(metrics_dir),
            "pretrain_dir": None,
            "adapt_dir": str(tmp_path / "missing"),
            "cross_sensor_dir": None,
            "out": str(tmp_path / "rep"),
        },
        "tracking": {"experiment": "report-test"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("CROSSDIFF_PARAMS", str(tmp_path / "params.yaml"))
    main()
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "No pretraining or adaptation loss files were found." in text


def test_cli_refuses_missing_metrics_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["report", "--metrics-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "metrics.json not found" in result.output and "Traceback" not in result.output
