"""The report flow, its params-driven main() and the `crossdiff report` command."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.report import main, report_flow

from .fake_evaluation import write_fake_evaluation, write_fake_losses


def test_report_flow_writes_report_and_calls_hook(tmp_path, prefect_server):
    metrics_dir = write_fake_evaluation(tmp_path / "reports")
    write_fake_losses(tmp_path / "pretrain", tmp_path / "adapt")
    seen = []
    markdown = report_flow(
        metrics_dir,
        tmp_path / "pretrain",
        tmp_path / "adapt",
        tmp_path / "out",
        on_artifact=seen.append,
    )
    assert markdown == tmp_path / "out" / "report.md"
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000
    assert len(seen) == 8 and all(p.stat().st_size > 0 for p in seen)


def test_main_reads_report_params(tmp_path, monkeypatch, prefect_server):
    metrics_dir = write_fake_evaluation(tmp_path / "reports", seed=3)
    params = {
        "report": {
            "metrics_dir": str(metrics_dir),
            "pretrain_dir": None,
            "adapt_dir": str(tmp_path / "missing"),
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
