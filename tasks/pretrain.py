"""Prefect tasks of the pretrain stage: train one branch in this process
(crossdiff_core.train.pretrain), or the branches in ``pretrain.processes`` processes under
torchrun (crossdiff_core.train.launch)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.config import PretrainParams, section_values
from crossdiff_core.train.config import PretrainConfig
from crossdiff_core.train.pretrain import StepCallback, train_branch
from tasks.retry import io_retries

# What torchrun runs in every process: `python -m flows.pretrain --config FILE --results FILE`.
WORKER_MODULE = "flows.pretrain"


@task(name="pretrain-branch", cache_policy=NO_CACHE, **io_retries(1))
def pretrain_branch_task(config: PretrainConfig, on_step: StepCallback | None = None,
                         restart_on_mismatch: bool = False) -> dict:
    """Train ``config.branch`` into ``<config.out>/<branch>/`` (resuming its checkpoint; one of
    another configuration is refused, or ignored when ``restart_on_mismatch``); returns folder,
    steps, final loss, the diagnostics dict, the step resumed from and why a checkpoint was
    ignored (None when none was)."""
    return train_branch(config, on_step=on_step,
                        restart_on_mismatch=restart_on_mismatch).summary()


@task(name="pretrain-processes", cache_policy=NO_CACHE)
def pretrain_processes_task(config: PretrainParams, branches: tuple[str, ...],
                            restart_on_mismatch: bool = False) -> dict[str, dict]:
    """Train ``branches`` one after the other in ``config.processes`` processes under torchrun
    (DDP); returns {branch: summary} as ``pretrain_branch_task`` does. A failed or killed
    process fails the task (RuntimeError); its checkpoints stay, so the rerun resumes."""
    from crossdiff_core.train.launch import run_torchrun

    with tempfile.TemporaryDirectory(prefix="crossdiff-pretrain-") as folder:
        request, results = Path(folder) / "request.json", Path(folder) / "results.json"
        run_torchrun(WORKER_MODULE, config.processes,
                     worker_arguments(config, branches, restart_on_mismatch, request, results),
                     env=worker_threads(config.threads), what=f"pretraining {', '.join(branches)}")
        return json.loads(results.read_text())


def worker_threads(threads: int) -> dict[str, str] | None:
    """The workers' environment when ``pretrain.threads`` pins their thread count (None: this
    process's, the launcher then gives each worker an equal share of the cores)."""
    if not threads:
        return None
    import os

    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


def worker_arguments(config: PretrainParams, branches: tuple[str, ...], restart_on_mismatch: bool,
                     request: Path, results: Path) -> list[str]:
    """Write the request file of a torchrun run; returns the workers' command-line arguments."""
    request.write_text(json.dumps({"config": section_values(config), "branches": list(branches),
                                   "restart_on_mismatch": restart_on_mismatch}))
    return ["--config", str(request), "--results", str(results)]
