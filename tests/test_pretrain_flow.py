"""Pretrain entry points: the Prefect flow (both branches) and `crossdiff pretrain`."""

from __future__ import annotations

import json
import math

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
    from crossdiff_core.nets.unet import load_unet
    from flows.pretrain import pretrain_flow

    seen = []
    config = PretrainParams(scenes=[scenes], out=str(tmp_path), **TINY)
    summaries = pretrain_flow(config, on_step=lambda step, metrics: seen.append((step, metrics)))
    assert set(summaries) == {"p2m", "m2p"}
    assert summaries["m2p"]["steps"] == 3 and summaries["p2m"]["steps"] == 2
    for branch, steps, in_channels in (("p2m", 2, 4), ("m2p", 3, 1)):
        unet = load_unet(tmp_path / branch)  # QuickBird: P2M diffuses 4 MS bands, M2P the PAN
        assert (unet.in_channels, unet.cond_channels) == (in_channels, 5 - in_channels)
        diagnostics = json.loads((tmp_path / branch / "diagnostics.json").read_text())
        assert diagnostics["branch"] == branch and diagnostics["steps"] == steps
        assert math.isfinite(diagnostics["final_loss"]) and math.isfinite(diagnostics["rmse"])
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


# --- pretrain.processes: the branches under torchrun (DDP, gloo on the CPU) ----------------------

DDP = {"pan_patch": 16, "batch_size": 4, "steps": 24, "checkpoint_every": 4, "channels": [8, 16],
       "timesteps": 50, "sample_steps": 2, "progress": False, "device": "cpu"}


def _weights(folder) -> dict:
    import torch

    return torch.load(folder / "p2m" / "weights.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, scenes):
    """P2M trained in this process (the reference of the torchrun runs)."""
    from crossdiff_core.config import PretrainParams
    from crossdiff_core.train.pretrain import train_branch

    out = tmp_path_factory.mktemp("one")
    train_branch(PretrainParams(scenes=[scenes], out=str(out), **DDP).branch_config("p2m"))
    return out


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, scenes, one_process, prefect_server):
    """P2M trained by the flow with pretrain.processes 2 (torchrun), uninterrupted."""
    from crossdiff_core.config import PretrainParams
    from flows.pretrain import pretrain_flow

    out = tmp_path_factory.mktemp("two")
    seen = []
    config = PretrainParams(scenes=[scenes], out=str(out), processes=2, **DDP)
    summaries = pretrain_flow(config, branches=("p2m",), on_step=lambda s, m: seen.append((s, m)))
    return out, summaries, seen


@pytest.mark.slow
def test_two_torchrun_processes_match_one_process(two_processes, one_process):
    import torch

    from crossdiff_core.nets.unet import load_unet

    out, summaries, seen = two_processes
    assert summaries["p2m"]["steps"] == DDP["steps"] and summaries["p2m"]["resumed_from"] == 0
    assert [step for step, _ in seen] == list(range(1, DDP["steps"] + 1))  # losses.csv, replayed
    assert all(set(metrics) == {"p2m_loss"} for _, metrics in seen)
    one, two = load_unet(one_process / "p2m"), load_unet(out / "p2m")
    one_state, two_state = one.state_dict(), two.state_dict()
    assert one_state.keys() == two_state.keys()
    erased = _biases_a_groupnorm_erases(one)
    assert erased, "the tiny UNet is expected to have such biases; see the comment below"
    for key in one_state.keys() - erased:
        torch.testing.assert_close(two_state[key], one_state[key], rtol=0, atol=1e-5, msg=key)
    # A conv bias feeding a GroupNorm with one channel per group is subtracted again by the norm:
    # its gradient is float noise, which AdamW scales to lr-sized steps, so its value follows the
    # order of the all-reduce (measured up to 1.1e-4 apart). What it computes must still match.
    generator = torch.Generator().manual_seed(0)
    x_t, condition = (torch.randn(2, c, 16, 16, generator=generator)
                      for c in (one.in_channels, one.cond_channels))
    t = torch.tensor([3, 40])
    with torch.no_grad():
        torch.testing.assert_close(two(x_t, t, condition), one(x_t, t, condition), rtol=0,
                                   atol=1e-5)


def _biases_a_groupnorm_erases(model) -> set[str]:
    """State-dict keys of conv biases that a one-channel-per-group GroupNorm follows."""
    from crossdiff_core.nets.unet import TimeConvBlock

    return {f"{name}.conv.bias" for name, block in model.named_modules()
            if isinstance(block, TimeConvBlock)
            and block.norm.num_groups == block.norm.num_channels}


def _worker_pids(parent: int) -> dict[int, int]:
    """{rank: pid} of the workers torchrun (process ``parent``) started."""
    from pathlib import Path

    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        rank = [item[5:] for item in environ if item.startswith(b"RANK=")]
        if ppid == parent and rank:
            found[int(rank[0])] = int(entry.name)
    return found


@pytest.mark.slow
def test_a_killed_rank_stops_the_run_and_the_rerun_resumes_to_the_same_weights(
        tmp_path, scenes, two_processes, one_process, prefect_server):
    import os
    import signal
    import subprocess
    import time

    import torch

    from crossdiff_core.config import PretrainParams
    from crossdiff_core.train.checkpoint import load_checkpoint
    from crossdiff_core.train.launch import torchrun_command, worker_environment
    from flows.pretrain import pretrain_flow
    from tasks.pretrain import WORKER_MODULE, worker_arguments

    config = PretrainParams(scenes=[scenes], out=str(tmp_path / "models"), processes=2, **DDP)
    arguments = worker_arguments(config, ("p2m",), True, tmp_path / "request.json",
                                 tmp_path / "results.json")
    launcher = subprocess.Popen(torchrun_command(WORKER_MODULE, 2, arguments),
                                env=worker_environment(2), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "models" / "p2m" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.is_file() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = _worker_pids(launcher.pid)
    assert 1 in workers, f"no rank 1 among torchrun's workers {workers}"
    os.kill(workers[1], signal.SIGKILL)
    assert launcher.wait(timeout=120) != 0, "the run finished before rank 1 was killed"
    killed_at = int(load_checkpoint(checkpoint)["step"])
    assert 0 < killed_at < DDP["steps"]
    assert not (tmp_path / "models" / "p2m" / "weights.pt").exists()

    summaries = pretrain_flow(config, branches=("p2m",), restart_on_mismatch=True)
    assert summaries["p2m"]["resumed_from"] == killed_at
    assert summaries["p2m"]["restart_reason"] is None
    resumed, uninterrupted = _weights(tmp_path / "models"), _weights(two_processes[0])
    for key, value in resumed.items():  # a resumed run repeats the uninterrupted one exactly
        assert torch.equal(value, uninterrupted[key]), key
    losses = (tmp_path / "models" / "p2m" / "losses.csv").read_text()
    assert losses == (two_processes[0] / "p2m" / "losses.csv").read_text()


def test_run_settings_are_refused_per_branch(tmp_path, scenes):
    from crossdiff_core.config import PretrainParams
    from flows.pretrain import _check_run_settings

    config = PretrainParams(scenes=[scenes], out=str(tmp_path), **{**TINY, "m2p": {"processes": 2}})
    with pytest.raises(ValueError, match=r"pretrain.m2p.processes: processes applies to the "
                                         r"whole run"):
        _check_run_settings(config, config.branch_configs())
    with pytest.raises(ValueError, match="batch_size 2 must be divisible by pretrain.processes 4"):
        PretrainParams(scenes=[scenes], out=str(tmp_path), **{**TINY, "processes": 4})
