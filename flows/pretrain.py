"""Pretrain stage: P2M (PAN -> MS) and M2P (MS -> PAN) diffusion models on original-scale patches.

``python -m flows.pretrain`` reads the ``pretrain`` section of params.yaml (DVC stage ``pretrain``)
and writes ``<out>/p2m/`` and ``<out>/m2p/``.

Multi-GPU / multi-process (DDP): launch the same module under torchrun, e.g.
``torchrun --standalone --nproc_per_node 4 -m flows.pretrain``. Every process then trains the
branches one after the other (DDP needs all processes in the same collective), each taking
``batch_size / nproc`` samples of the global batch (gloo on CPU, nccl on GPUs); rank 0 writes
the files. That path calls the training function directly, without a Prefect run per process.
Without torchrun the flow runs the two branches as two tasks: at once on a Dask cluster's workers
(``CROSSDIFF_DASK_ADDRESS``, e.g. one per GPU), one after another in this process, where two
trainings sharing the threads would not be reproducible (``flows.runners.run_each``).

Resuming under DVC: the stage's output is ``persist: true`` in dvc.yaml, so ``dvc repro`` keeps
the checkpoints and a rerun with more ``steps`` resumes where the last run stopped. A checkpoint
the stage cannot resume (other settings such as ``lr``, other training scenes, or more steps than
``steps``) is ignored: the branch trains from scratch and the log says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prefect import flow, get_run_logger

from crossdiff_core.config import PretrainParams, section_values
from crossdiff_core.train.config import BRANCHES
from crossdiff_core.train.pretrain import train_branch
from flows.params import stage_config
from flows.runners import run_each
from tasks.pretrain import pretrain_branch_task


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
    configs = config.branch_configs(branches)
    results = run_each(pretrain_branch_task,
                       [(branch, _prefixed(branch.branch, on_step), restart_on_mismatch)
                        for branch in configs])
    summaries = {}
    for branch, summary in zip(configs, results, strict=True):
        _log_start(logger, branch.branch, summary["resumed_from"], summary["restart_reason"])
        logger.info("%s: %d steps, final loss %.4f, held-out RMSE %.4f -> %s", branch.branch,
                    summary["steps"], summary["final_loss"], summary["diagnostics"]["rmse"],
                    summary["folder"])
        summaries[branch.branch] = summary
    return summaries


def _log_start(logger, branch: str, resumed_from: int, restart_reason: str | None) -> None:
    if restart_reason:
        logger.warning("%s: trained from scratch, the checkpoint could not be resumed: %s",
                       branch, restart_reason)
    elif resumed_from:
        logger.info("%s: resumed from step %d", branch, resumed_from)
    else:
        logger.info("%s: trained from scratch (no checkpoint)", branch)


def main() -> None:
    config = stage_config("pretrain")["pretrain"]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import logging

        logger = logging.getLogger("flows.pretrain")
        for branch in config.branch_configs():
            result = train_branch(branch, restart_on_mismatch=True)
            _log_start(logger, branch.branch, result.resumed_from, result.restart_reason)
        return
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
