"""Tasks retry transient I/O failures only."""

from __future__ import annotations

import pytest
from prefect import flow, task

from tasks.retry import io_retries


def _flaky(error: Exception, failures: int):
    calls = []

    @task(**{**io_retries(2), "retry_delay_seconds": 0})
    def step() -> int:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return len(calls)

    return step, calls


@pytest.mark.parametrize(
    ("error", "retried"),
    [(OSError("share busy"), True), (FileNotFoundError("gone.tif"), False),
     (ValueError("gone.tif: not a scene"), False)],
)
def test_only_transient_io_errors_are_retried(prefect_server, error, retried):
    step, calls = _flaky(error, failures=1)

    @flow
    def run() -> int:
        return step()

    if retried:
        assert run() == 2
    else:
        with pytest.raises(type(error)):
            run()
        assert len(calls) == 1
