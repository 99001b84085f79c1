"""flows.runners.run_each: branches that train in this process run one after another.

Two trainings sharing the process's threads round their gradients differently from run to run
(the pretraining branches' losses differed from step 2 between two identical runs), so each
``dvc repro`` would train other models; one after another they are reproducible.
"""

from __future__ import annotations

import threading
import time

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
