"""Pretrain stage: P2M (PAN -> MS) and M2P (MS -> PAN) diffusion models on original-scale patches.

``python -m flows.pretrain`` reads the ``pretrain`` section of params.yaml (DVC stage ``pretrain``)
and writes ``<out>/p2m/`` and ``<out>/m2p/``.

Multi-GPU / multi-process (DDP): ``pretrain.processes: N`` (N > 1) makes the flow (so the DVC
stage and ``crossdiff pretrain`` alike) run the branches under
``torchrun --standalone --nproc_per_node N -m flows.pretrain --config REQUEST --results RESULTS``
(task ``pretrain_processes_task``). Launching the module under torchrun yourself does the same
with params.yaml's settings (``torchrun --standalone --nproc_per_node 4 -m flows.pretrain``).
Every process trains the branches one after the other (DDP needs all processes in the same
collective), each taking ``batch_size / N`` samples of the global batch (gloo on CPU, nccl on
GPUs); rank 0 writes the files. The workers call the training function directly, without a
Prefect run per process; a killed process stops them all and the rerun resumes from the last
checkpoint. Per-step metrics of such a run reach ``on_step`` (MLflow) from losses.csv afterwards.
Without torchrun the flow runs the two branches as two tasks: at once on a Dask cluster's workers
(``CROSSDIFF_DASK_ADDRESS``, e.g. one per GPU); in this process one after another with
``pretrain.deterministic`` (two trainings sharing the threads would not be reproducible:
``flows.runners.run_each``), at once in two threads without it.

Resuming under DVC: the stage's output is ``persist: true`` in dvc.yaml, so ``dvc repro`` keeps
the checkpoints and a rerun with more ``steps`` resumes where the last run stopped. A checkpoint
the stage cannot resume (other settings such as ``lr``, other training scenes, or more steps than
``steps``) is ignored: the branch trains from scratch and the log says why.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable
from pathlib import Path

from prefect import flow, get_run_logger

from crossdiff_core.config import PretrainParams, section_values
from crossdiff_core.train.config import BRANCHES, PretrainConfig
from crossdiff_core.train.launch import under_torchrun
from crossdiff_core.train.pretrain import LOSSES_FILE, train_branch
from flows.params import stage_config, validate
from flows.runners import run_each
from tasks.pretrain import pretrain_branch_task, pretrain_processes_task

# Settings of the whole run, not of one branch: per-branch overrides of them are refused.
RUN_SETTINGS = ("processes", "deterministic", "threads")


def _prefixed(branch: str, on_step: Callable[[int, dict], None] | None):
    if on_step is None:
        return None
    return lambda step, metrics: on_step(step, {f"{branch}_{k}": v for k, v in metrics.items()})


@flow(name="pretrain")
def pretrain_flow(
    config: PretrainParams,
    branches: tuple[str, ...] = BRANCHES,
    on_step: Callable[[int, dict], None] | None = None,
    restart_on_mismatch: bool = False,
) -> dict[str, dict]:
    """Train the requested branches of ``config`` (concurrently on a Dask cluster, one after
    another in this process: ``flows.runners.run_each``); returns
    per-branch summaries (folder, steps, final_loss, diagnostics, resumed_from, restart_reason).
    ``on_step(step, metrics)`` gets each branch's metrics with keys prefixed ``p2m_``/``m2p_``.
    A checkpoint of another configuration is refused, or ignored (training from scratch, saying
    why) when ``restart_on_mismatch``, as the DVC stage does."""
    logger = get_run_logger()
    summaries = {}
    for branch, summary in zip(config.branch_configs(branches),
                               train_branches(config, branches, on_step, restart_on_mismatch),
                               strict=True):
        _log_start(logger, branch, summary["resumed_from"], summary["restart_reason"],
                   summary["started_from"])
        logger.info("%s: %d steps, final loss %.4f, held-out RMSE %.4f -> %s", branch.branch,
                    summary["steps"], summary["final_loss"], summary["diagnostics"]["rmse"],
                    summary["folder"])
        summaries[branch.branch] = summary
    return summaries


def train_branches(config: PretrainParams, branches: tuple[str, ...] = BRANCHES,
                   on_step: Callable[[int, dict], None] | None = None,
                   restart_on_mismatch: bool = False) -> list[dict]:
    """Inside a flow run: train ``branches`` of ``config`` as the settings say (torchrun
    processes, one after another, or at once) and return their summaries in order."""
    configs = config.branch_configs(branches)
    _check_run_settings(config, configs)
    if config.processes > 1 and not under_torchrun():
        launched = pretrain_processes_task(config, tuple(branches), restart_on_mismatch)
        for branch in configs:
            _replay_losses(branch, launched[branch.branch]["resumed_from"],
                           _prefixed(branch.branch, on_step))
        return [launched[branch.branch] for branch in configs]
    calls = [(branch, _prefixed(branch.branch, on_step), restart_on_mismatch)
             for branch in configs]
    if config.deterministic:
        return run_each(pretrain_branch_task, calls)
    # At once, in threads (or on a cluster): faster where cores are idle, not repeatable.
    futures = [pretrain_branch_task.submit(*arguments) for arguments in calls]
    return [future.result() for future in futures]


def _check_run_settings(config: PretrainParams, configs: list[PretrainConfig]) -> None:
    for branch in configs:
        for name in RUN_SETTINGS:
            if getattr(branch, name) != getattr(config, name):
                raise ValueError(
                    f"pretrain.{branch.branch}.{name}: {name} applies to the whole run (both "
                    f"branches); set it in the pretrain section only"
                )


def _replay_losses(branch: PretrainConfig, resumed_from: int,
                   on_step: Callable[[int, dict], None] | None) -> None:
    """Hand the losses a torchrun run trained (after ``resumed_from``) to ``on_step``."""
    if on_step is None:
        return
    with open(Path(branch.out) / branch.branch / LOSSES_FILE, newline="") as handle:
        for row in csv.DictReader(handle):
            if int(row["step"]) > resumed_from:
                on_step(int(row["step"]), {"loss": float(row["loss"])})


def _log_start(logger, branch: PretrainConfig, resumed_from: int,
               restart_reason: str | None, started_from: str) -> None:
    start = f"from {started_from}"
    if restart_reason:
        logger.warning("%s: trained %s, the checkpoint could not be resumed: %s",
                       branch.branch, start, restart_reason)
    elif resumed_from:
        logger.info("%s: resumed from step %d", branch.branch, resumed_from)
    else:
        logger.info("%s: trained %s (no checkpoint)", branch.branch, start)


def _worker(request: Path | None, results: Path | None) -> None:
    """One process of a torchrun run: the branches of ``request`` (written by
    ``pretrain_processes_task``; params.yaml's pretrain section, both branches, when None);
    rank 0 writes the summaries to ``results``."""
    import logging

    import torch.distributed as dist

    from crossdiff_core.atomic import atomic_write

    if request is None:
        config, branches, restart = stage_config("pretrain")["pretrain"], BRANCHES, True
    else:
        asked = json.loads(request.read_text())
        config = validate("pretrain", asked["config"])
        branches, restart = tuple(asked["branches"]), bool(asked["restart_on_mismatch"])
    logger = logging.getLogger("flows.pretrain")
    summaries = {}
    try:
        for branch in config.branch_configs(branches):
            result = train_branch(branch, restart_on_mismatch=restart)
            _log_start(logger, branch, result.resumed_from, result.restart_reason,
                       result.started_from)
            summaries[branch.branch] = result.summary()
        if results is not None and (not dist.is_initialized() or dist.get_rank() == 0):
            atomic_write(results, json.dumps(summaries))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.pretrain",
        description="The pretrain stage (DVC stage pretrain): P2M and M2P with params.yaml's "
                    "pretrain section. pretrain.processes > 1 runs them under torchrun; so does "
                    "`torchrun --standalone --nproc_per_node N -m flows.pretrain`.")
    parser.add_argument("--config", type=Path, help="(torchrun workers) the run's request file")
    parser.add_argument("--results", type=Path, help="(torchrun workers) where rank 0 writes the "
                        "summaries")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = _arguments(argv)
    if under_torchrun() or arguments.config is not None:
        _worker(arguments.config, arguments.results)
        return
    config = stage_config("pretrain")["pretrain"]
    from flows.tracked import tracked_stage

    with tracked_stage("pretrain", section_values(config)) as tracker:
        from flows.runners import on_dask_cluster

        summaries = on_dask_cluster(pretrain_flow)(config, on_step=tracker.on_step(),
                                                   restart_on_mismatch=True)
        for branch, summary in summaries.items():
            tracker.log_metrics({"final_loss": summary["final_loss"],
                                 "resumed_from": summary["resumed_from"],
                                 **{k: v for k, v in summary["diagnostics"].items()
                                    if isinstance(v, int | float)}}, prefix=f"{branch}_")
            for name in ("quicklook.png", "diagnostics.json", "losses.csv"):
                tracker.log_artifact(f"{summary['folder']}/{name}", branch)


if __name__ == "__main__":
    main()
