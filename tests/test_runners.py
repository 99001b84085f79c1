"""flows.runners.run_each: branches that train in this process run one after another.

Two trainings sharing the process's threads round their gradients differently from run to run
(the pretraining branches' losses differed from step 2 between two identical runs), so each
``dvc repro`` would train other models; one after another they are reproducible.
"""

from __future__ import annotations

import threading
import time

import pytest
from prefect import flow, task

from flows.runners import run_each

_lock = threading.Lock()
_state = {"active": 0, "most": 0}


@task
def _occupy(name: str) -> str:
    with _lock:
        _state["active"] += 1
        _state["most"] = max(_state["most"], _state["active"])
    time.sleep(0.3)
    with _lock:
        _state["active"] -= 1
    return name


@flow
def _two_branches() -> list[str]:
    return run_each(_occupy, [("p2m",), ("m2p",)])


def test_in_process_tasks_run_one_after_another_in_order(prefect_server):
    _state.update(active=0, most=0)
    assert _two_branches() == ["p2m", "m2p"]
    assert _state["most"] == 1


def test_without_a_flow_run_the_calls_still_run_in_order():
    _state.update(active=0, most=0)
    assert run_each(_occupy, [("a",), ("b",), ("c",)]) == ["a", "b", "c"]
    assert _state["most"] == 1


# --- the scheduled flows on a Dask cluster (CROSSDIFF_DASK_ADDRESS) ----------------------------


@pytest.fixture(scope="module")
def dask_address():
    """A LocalCluster of two worker processes, stopped after the module's tests."""
    from crossdiff_core.io.scheduler import local_cluster

    with local_cluster(2, "1GiB") as cluster:
        yield cluster.scheduler_address


@pytest.fixture()
def on_cluster(dask_address, monkeypatch):
    """The scheduled flows' modules imported as a flow run with CROSSDIFF_DASK_ADDRESS sees
    them; imported again without it afterwards."""
    import importlib

    import flows.landing
    import flows.pipeline

    monkeypatch.setenv("CROSSDIFF_DASK_ADDRESS", dask_address)
    modules = [importlib.reload(flows.landing), importlib.reload(flows.pipeline)]
    yield dask_address
    monkeypatch.delenv("CROSSDIFF_DASK_ADDRESS")
    for module in modules:
        importlib.reload(module)


def _tasks_run_on(address: str, run) -> tuple[object, list[str]]:
    """``run()``'s result and the keys of the tasks the cluster at ``address`` ran meanwhile."""
    from distributed import Client, get_task_stream

    with Client(address) as client, get_task_stream(client) as stream:
        result = run()
    return result, [str(record["key"]) for record in stream.data]


def test_without_an_address_the_flows_run_in_process(monkeypatch):
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.landing import landing_flow
    from flows.pipeline import readapt_flow
    from flows.runners import on_dask_cluster

    monkeypatch.delenv("CROSSDIFF_DASK_ADDRESS", raising=False)
    for flow_ in (landing_flow, readapt_flow):
        assert isinstance(flow_.task_runner, ThreadPoolTaskRunner)
        assert on_dask_cluster(flow_) is flow_


def test_landing_checks_arrivals_on_the_cluster(on_cluster, tmp_path, monkeypatch,
                                                prefect_server):
    """Two arrivals, one good, one an empty archive: both checked by tasks the cluster ran;
    the good one lands, the bad one is rejected with its reason."""
    from prefect_dask import DaskTaskRunner

    import flows.landing
    from tests.ingest_helpers import geotiff_pair, zip_folder

    assert isinstance(flows.landing.landing_flow.task_runner, DaskTaskRunner)
    (tmp_path / "params.yaml").write_text(
        "ingest:\n  out: data/zarr\n  chunk_size: 64\n  sources: []\n  sensor: null\n"
        "  landed: data/landed\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CROSSDIFF_PARAMS", str(tmp_path / "params.yaml"))
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    geotiff_pair(tmp_path / "pair", seed=1)
    zip_folder(tmp_path / "pair", landing / "quickbird.zip")
    (landing / "empty.tar.gz").write_bytes(b"")
    landed, keys = _tasks_run_on(
        on_cluster, lambda: flows.landing.landing_flow(landing="data/landing", repro=False))
    assert landed == ["data/landed/quickbird.zip"]
    assert (landing / "rejected" / "empty.tar.gz.reason").is_file()
    assert sum(key.startswith("check_arrival_task") for key in keys) == 2, keys
    assert not [p for p in landing.iterdir() if p.name.startswith(".checking-")]


def test_readapt_runs_dvc_repro_on_the_cluster(on_cluster, tmp_path, monkeypatch,
                                               prefect_server):
    import subprocess
    import sys

    import yaml

    import flows.pipeline

    stages = {"make": {"cmd": f"{sys.executable} -c \"open('made.txt', 'w').write('x')\"",
                       "deps": ["input.txt"], "outs": ["made.txt"]}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (tmp_path / "input.txt").write_text("1")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path,
                   check=True)
    monkeypatch.chdir(tmp_path)
    ran, keys = _tasks_run_on(on_cluster, flows.pipeline.readapt_flow)
    assert ran == ["make"] and (tmp_path / "made.txt").read_text() == "x"
    assert any(key.startswith("dvc_repro_task") for key in keys), keys
