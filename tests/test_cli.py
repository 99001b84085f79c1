"""The `crossdiff` command: its sub-commands, the one error handler, and one-shot commands that
run without Prefect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ingest_helpers import geotiff_pair
from typer.testing import CliRunner

from crossdiff_core.synthetic import write_synthetic_store
from flows.cli import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic_store(tmp_path_factory.mktemp("cli"), "QuickBird", ms_shape=(40, 36))


def test_every_command_is_imported_and_registered_explicitly():
    import typer.main

    source = (ROOT / "flows" / "cli.py").read_text()
    assert "importlib" not in source
    names = set(typer.main.get_command(app).commands)
    assert names == {"ingest", "pretrain", "freeze", "adapt", "evaluate", "pansharpen", "report",
                     "cross-sensor", "serve", "verify"}


def test_user_errors_exit_1_with_one_line(store, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["pansharpen", "--model", "gsa", "--scene",
                                  str(tmp_path / "nowhere.zarr"), str(tmp_path / "a.tif")])
    refused = runner.invoke(app, ["pansharpen", "--model", "gsa", "--scene", str(store),
                                  str(tmp_path / "b.tif"), "--tile", "0"])
    typo = tmp_path / "params.yaml"
    typo.write_text("evaluate:\n  methodz: [exp]\n")
    config = runner.invoke(app, ["evaluate", str(store), "--params", str(typo)])
    finetune = runner.invoke(app, ["pretrain", "--scenes", str(store), "--out",
                                   str(tmp_path / "pre"), "--finetune-steps", "-1"])
    for result, needle in ((missing, "nowhere.zarr"), (refused, "--tile"),
                           (config, "unknown key 'methodz' in section 'evaluate'"),
                           (finetune, "pretrain.finetune_steps must be >= 0")):
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


@pytest.mark.parametrize("args", [
    ["pansharpen", "--model", "gsa", "x.tif"],  # neither --scene nor PAN MS
    ["pansharpen", "--model", "gsa"],  # no OUT
    ["pansharpen", "--model", "gsa", "--scene", "s.zarr", "p.tif", "x.tif"],
    ["pansharpen", "--model", "gsa", "--scene", "s.zarr", "--pan", "p.tif", "--out", "x.tif"],
    ["pansharpen", "--model", "gsa", "--scene", "s.zarr", "--format", "png", "x.tif"],
    ["pansharpen", "--model", "gsa", "--scene", "s.zarr", "x.png"],  # unknown extension
    ["pansharpen", "--model", "gsa", "--scene", "s.zarr", "x.tif", "--co", "LEVEL"],
    ["pansharpen", "--model", "gsa", "--scene", "s.zarr", "x.zarr", "--co", "LEVEL=9"],
    ["pansharpen", "--model", "gsa", "--scene", "s.zarr", "x.tif", "--clip", "some"],
    ["pansharpen", "-q", "-v", "--model", "gsa", "--scene", "s.zarr", "x.tif"],
    ["pansharpen", "--model", "gsa", "--scene", "s.zarr", "x.tif", "--threads", "0"],
    ["pretrain", "--branch", "both-ways"],
    ["evaluate", "--no-such-option"],
], ids=["no-input", "no-out", "scene-and-pair", "scene-and-aliases", "format", "extension",
        "co-syntax", "co-zarr", "clip", "quiet-and-verbose", "threads", "branch",
        "unknown-option"])
def test_usage_errors_exit_2(args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output and "Traceback" not in result.output


def test_unexpected_errors_are_one_line_unless_debug(store, tmp_path, monkeypatch):
    import crossdiff_core.evaluation as evaluation

    def broken(*args, **kwargs):
        raise RuntimeError("something internal broke")

    monkeypatch.setattr(evaluation, "evaluate_scene", broken)
    args = ["evaluate", str(store), "--methods", "exp", "--out", str(tmp_path)]
    quiet = CliRunner().invoke(app, args)
    assert quiet.exit_code == 1
    assert quiet.output.strip().splitlines() == [
        "error: RuntimeError: something internal broke (unexpected: rerun with `crossdiff "
        "--debug` for the traceback)"]
    loud = CliRunner().invoke(app, ["--debug", *args])
    assert isinstance(loud.exception, RuntimeError) and loud.exit_code == 1


def test_pansharpen_errors_go_through_the_one_handler(store, tmp_path, monkeypatch):
    """Every error of `crossdiff pansharpen` (not only three types) is one line, exit 1, and
    leaves no output."""
    import tasks.models as models

    def broken(*args, **kwargs):
        raise RuntimeError("the fuser broke")

    monkeypatch.setattr(models, "fuse_store", broken)
    out = tmp_path / "fused.tif"
    result = CliRunner().invoke(app, ["pansharpen", "--model", "gsa", "--scene", str(store),
                                      str(out)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: RuntimeError: the fuser broke (unexpected: rerun with `crossdiff --debug` for "
        "the traceback)"]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_mat_is_one_line_naming_it(tmp_path):
    empty = tmp_path / "empty.mat"
    empty.write_bytes(b"")
    result = CliRunner().invoke(app, ["ingest", str(empty), "--out", str(tmp_path / "zarr")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {empty}: empty .mat file (0 bytes); deliver it again"]
    assert not (tmp_path / "zarr").exists()


def test_one_shot_commands_run_without_prefect(store, tmp_path):
    """`ingest`, `evaluate` and `pansharpen --model <baseline>` call the functions the flows'
    tasks call: no Prefect (so no temporary server and none of its log lines), no MLflow."""
    pan, ms, _, _ = geotiff_pair(tmp_path / "pair", ms_shape=(40, 36))
    commands = [
        ["ingest", str(pan), str(ms), "--out", str(tmp_path / "zarr"), "--sensor", "QB"],
        ["evaluate", str(store), "--methods", "exp,gsa", "--border-cut", "0",
         "--out", str(tmp_path / "reports")],
        ["pansharpen", "--model", "mtf_glp_hpm", str(pan), str(ms), str(tmp_path / "fused.tif"),
         "--sensor", "QB"],
    ]
    script = (
        "import json, sys\n"
        "from flows.cli import app\n"
        f"for args in {commands!r}:\n"
        "    app(args, standalone_mode=False)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prefect', 'mlflow'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    output = (done.stdout + done.stderr).lower()
    assert "prefect" not in output and "temporary server" not in output
    assert (tmp_path / "fused.tif").is_file() and (tmp_path / "reports" / "metrics.json").is_file()


def test_usage_line_names_both_forms_and_the_old_options_still_work(store, tmp_path):
    result = CliRunner().invoke(app, ["pansharpen", "--help"], terminal_width=100)
    assert "crossdiff pansharpen [OPTIONS] (PAN MS | --scene STORE) OUT" in result.output
    assert "--pan " not in result.output and "--out " not in result.output  # hidden aliases
    old = CliRunner().invoke(app, ["pansharpen", "--model", "exp", "--scene", str(store),
                                   "--out", str(tmp_path / "old.tif")])
    assert old.exit_code == 0, old.output
    assert (tmp_path / "old.tif").is_file()


def test_every_help_shows_flags_without_a_type():
    import typer.main

    runner = CliRunner()
    commands = sorted(typer.main.get_command(app).commands)
    for args in ([], *([name] for name in commands)):
        text = runner.invoke(app, [*args, "--help"], terminal_width=120).output
        assert "<bool>" not in text and "--no-" not in text, (args, text)
        assert "--help" in text
    ingest = runner.invoke(app, ["ingest", "--help"], terminal_width=120).output
    assert any(line.split()[1:3] == ["--force", "Re-ingest"] for line in ingest.splitlines()
               if "--force" in line)
    top = runner.invoke(app, ["--help"], terminal_width=120).output
    for option in ("--quiet", "-q", "--verbose", "-v", "--version", "--debug"):
        assert option in top


def test_version():
    from crossdiff_core import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"crossdiff {__version__}\n"


def test_urls_reach_ingest_unchanged(tmp_path, monkeypatch):
    """`Path("s3://b/x")` would be `s3:/b/x`: sources are strings from the command line to
    ``ingest_source``, for `ingest` and for `pansharpen PAN MS OUT`."""
    import crossdiff_core.ingest as ingest

    seen = []

    def recording(source, *args, **kwargs):
        seen.append(source)
        raise ValueError("recorded")

    monkeypatch.setattr(ingest, "ingest_source", recording)
    runner = CliRunner()
    pan, ms = "s3://bucket/scene/pan.tif", "/vsicurl/https://example.com/scene/ms.TIF?sig=1"
    result = runner.invoke(app, ["ingest", pan, ms, "--out", str(tmp_path)])
    assert result.exit_code == 1 and "recorded" in result.output
    result = runner.invoke(app, ["pansharpen", "--model", "gsa", "https://example.com/pan.tif",
                                 "s3://bucket/ms.tif", str(tmp_path / "x.tif")])
    assert result.exit_code == 1 and "recorded" in result.output
    assert seen == [(pan, ms), ("https://example.com/pan.tif", "s3://bucket/ms.tif")]


def test_quiet_prints_nothing_and_threads_apply_to_the_command(store, tmp_path, monkeypatch):
    import dask
    import torch

    import tasks.models as models

    runner = CliRunner()
    normal = runner.invoke(app, ["pansharpen", "--model", "exp", "--scene", str(store),
                                 str(tmp_path / "a.tif")])
    assert normal.exit_code == 0 and "clipped 0 pixels (--clip dtype)" in normal.output
    for args in (["-q", "pansharpen"], ["pansharpen", "-q"]):
        out = tmp_path / f"{len(args[0])}.tif"
        quiet = runner.invoke(app, [*args, "--model", "exp", "--scene", str(store), str(out)])
        assert quiet.exit_code == 0 and quiet.output == "" and out.is_file()

    seen = {}
    real = models.fuse_store

    def recording(*args, **kwargs):
        seen.update(gdal=os.environ.get("GDAL_NUM_THREADS"), torch=torch.get_num_threads(),
                    dask=dask.config.get("num_workers"), progress=kwargs["progress"])
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "fuse_store", recording)
    before, gdal = torch.get_num_threads(), os.environ.get("GDAL_NUM_THREADS")
    result = runner.invoke(app, ["pansharpen", "-q", "--threads", "1", "--model", "exp",
                                 "--scene", str(store), str(tmp_path / "b.tif")])
    assert result.exit_code == 0, result.output
    assert seen == {"gdal": "1", "torch": 1, "dask": 1, "progress": False}
    assert torch.get_num_threads() == before and os.environ.get("GDAL_NUM_THREADS") == gdal


@pytest.mark.slow  # starts Prefect's temporary server (about 15 s on 2 cores)
def test_flow_commands_print_no_orchestration_lines_unless_verbose(tmp_path):
    """What the CLI sets for a command (flows/commands.command_output) keeps a Prefect flow's
    server start, run and stop lines out of the terminal; -v lets them through."""
    script = (
        "import sys\n"
        "from flows.commands import command_output\n"
        "with command_output(verbose=sys.argv[1] == 'verbose'):\n"
        "    from prefect import flow, get_run_logger\n"
        "    @flow\n"
        "    def probe():\n"
        "        get_run_logger().info('inside the flow')\n"
        "        return 41 + 1\n"
        "    print('result', probe())\n"
    )
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_LOGGING", "PREFECT_API"))}
    env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / "prefect"))
    outputs = {}
    for mode in ("normal", "verbose"):
        done = subprocess.run([sys.executable, "-c", script, mode], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[mode] = done.stdout + done.stderr
    assert outputs["normal"].strip() == "result 42"
    assert "inside the flow" in outputs["verbose"] and "result 42" in outputs["verbose"]
