"""Prefect task of the pretrain stage: train one branch (crossdiff_core.train.pretrain)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.train.config import PretrainConfig
from crossdiff_core.train.pretrain import StepCallback, train_branch
from tasks.retry import io_retries


@task(name="pretrain-branch", cache_policy=NO_CACHE, **io_retries(1))
def pretrain_branch_task(config: PretrainConfig, on_step: StepCallback | None = None,
                         restart_on_mismatch: bool = False) -> dict:
    """Train ``config.branch`` into ``<config.out>/<branch>/`` (resuming its checkpoint; one of
    another configuration is refused, or ignored when ``restart_on_mismatch``); returns folder,
    steps, final loss, the diagnostics dict, the step resumed from and why a checkpoint was
    ignored (None when none was)."""
    result = train_branch(config, on_step=on_step, restart_on_mismatch=restart_on_mismatch)
    return {"branch": result.branch, "folder": str(result.folder), "steps": result.steps,
            "final_loss": result.final_loss, "diagnostics": result.diagnostics,
            "resumed_from": result.resumed_from, "restart_reason": result.restart_reason}
