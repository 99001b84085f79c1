"""The one retry policy of the pipeline's tasks: transient I/O failures only, with backoff.

Retried: timeouts, dropped connections and the errors a busy or flaky share answers with
(``EAGAIN``, ``EBUSY``, ``EINTR``, ``ETIMEDOUT``, ``ESTALE`` ...), and a scene another run is
still ingesting (``BlockingIOError``: by the retry it is done and the source is skipped).
Everything else fails at once with its real name, since waiting brings none of it back: bad
input (a ValueError such as an ingestion error), NaN losses, a missing file, a permission, a
path that exists or is not a folder, and a full disk (``ENOSPC``: the message names the folder;
freeing space is a person's job, not a retry's).
"""

from __future__ import annotations

import errno

from prefect.tasks import exponential_backoff

TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name) for name in (
        "EAGAIN", "EWOULDBLOCK", "EBUSY", "EINTR", "ETIMEDOUT", "ESTALE", "ECONNRESET",
        "ECONNREFUSED", "ECONNABORTED", "ENETDOWN", "ENETUNREACH", "ENETRESET", "EHOSTDOWN",
        "EHOSTUNREACH", "ENOLCK", "ETXTBSY",
    ) if hasattr(errno, name)
)
# Subclasses of OSError no retry can fix, whatever their errno says.
PERMANENT = (FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError,
             IsADirectoryError)
TRANSIENT = (TimeoutError, ConnectionError, BlockingIOError, InterruptedError)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is an I/O failure that may pass if the same call is made again."""
    if not isinstance(error, OSError) or isinstance(error, PERMANENT):
        return False
    return isinstance(error, TRANSIENT) or error.errno in TRANSIENT_ERRNOS


def retry_on_io_error(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry transient I/O errors only (``is_transient``)."""
    try:
        state.result(raise_on_failure=True)
    except Exception as error:
        return is_transient(error)
    return False


def io_retries(retries: int = 3) -> dict:
    """Keyword arguments for ``@task``: ``retries`` tries, 5 s, 10 s, 20 s ... apart (jittered)."""
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=5),
        "retry_jitter_factor": 0.2,
        "retry_condition_fn": retry_on_io_error,
    }
