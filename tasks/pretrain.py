"""Prefect task of the pretrain stage: train one branch (crossdiff_core.train.pretrain)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from crossdiff_core.train.config import PretrainConfig
from crossdiff_core.train.pretrain import StepCallback, train_branch


def _retry_on_io_error(task, task_run, state) -> bool:
    """Retry only when writing or reading files failed (the rerun resumes from the checkpoint);
    bad settings, NaN losses and missing inputs fail at once."""
    try:
        state.result(raise_on_failure=True)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    except Exception:
        return False
    return False


@task(name="pretrain-branch", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5,
      retry_condition_fn=_retry_on_io_error)
def pretrain_branch_task(config: PretrainConfig, on_step: StepCallback | None = None) -> dict:
    """Train ``config.branch`` into ``<config.out>/<branch>/``; returns folder, steps, final loss
    and the diagnostics dict."""
    result = train_branch(config, on_step=on_step)
    return {"branch": result.branch, "folder": str(result.folder), "steps": result.steps,
            "final_loss": result.final_loss, "diagnostics": result.diagnostics}
