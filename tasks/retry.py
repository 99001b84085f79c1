"""The one retry policy of the pipeline's tasks: transient I/O failures only, with backoff.

Bad input (a ValueError such as an ingestion error), NaN losses and missing files fail at once:
waiting brings none of them back. Other OSErrors (a busy network share, a full disk being freed,
a flaky object store behind a FUSE mount) are retried with exponential backoff.
"""

from __future__ import annotations

from prefect.tasks import exponential_backoff


def retry_on_io_error(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry OSErrors other than FileNotFoundError."""
    try:
        state.result(raise_on_failure=True)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    except Exception:
        return False
    return False


def io_retries(retries: int = 3) -> dict:
    """Keyword arguments for ``@task``: ``retries`` tries, 5 s, 10 s, 20 s ... apart (jittered)."""
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=5),
        "retry_jitter_factor": 0.2,
        "retry_condition_fn": retry_on_io_error,
    }
