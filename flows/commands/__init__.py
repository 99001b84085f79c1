"""Sub-commands of the `crossdiff` CLI, one module per user action.

Each command takes ``--params`` (the parameters file whose section gives every setting not given
as an option), builds its config with ``flows.params.cli_config`` and raises on error: the one
error handler is in flows/cli.py. Heavy imports stay inside the command functions so
`crossdiff --help` is fast.

Shared here: how much a command prints (``-q``/``-v``, ``verbosity``: orchestration log lines of
Prefect and MLflow and library warnings are silenced unless ``-v``), ``--threads`` and the
command class that shows boolean options as plain flags in ``--help``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

ParamsFile = Annotated[
    Path,
    typer.Option(
        "--params",
        help="Parameters file; its section for this command gives every setting not given as an "
        "option (built-in defaults, equal to the project's params.yaml, when it does not exist).",
    ),
]
DEFAULT_PARAMS = Path("params.yaml")

Quiet = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print only errors (no progress bars, no summary).")]
Verbose = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Also print the log lines of the libraries underneath (Prefect, "
    "MLflow, GDAL) and their warnings.")]
Threads = Annotated[int | None, typer.Option(
    "--threads", help="Threads for this command: torch, GDAL (GDAL_NUM_THREADS) and dask "
    "(default: all cores).", show_default=False)]


def bare_flags(params) -> None:
    """Boolean flags render as ``--force``, not ``--force <bool>``: typer prints the type of
    every option, flags included, unless the option has a metavar (an empty one prints
    nothing)."""
    for param in params:
        if param.param_type_name == "option" and getattr(param, "is_flag", False) \
                and param.metavar is None:
            param.metavar = ""


class FlagCommand(TyperCommand):
    """A command whose ``--help`` shows boolean options as plain flags (``bare_flags``)."""

    def format_help(self, ctx, formatter) -> None:
        bare_flags(self.get_params(ctx))
        return super().format_help(ctx, formatter)


# ---------------------------------------------------------------- what a command prints

QUIET, NORMAL, VERBOSE = -1, 0, 1
_LEVEL = {"value": NORMAL}
_SAVED_ENV: dict[str, str | None] = {}  # the QUIET_ENV variables as the user set them


def _restore_env(saved: dict[str, str | None]) -> None:
    """Put environment variables back as ``saved`` has them (None: unset)."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
# Loggers of the orchestration and I/O libraries: silent unless -v (the CLI reports errors).
NOISY_LOGGERS = ("prefect", "mlflow", "alembic", "urllib3", "distributed", "rasterio",
                 "numexpr", "httpx", "git", "botocore")
# Environment the libraries read when they start: their own log level and progress bars.
QUIET_ENV = {
    "PREFECT_LOGGING_LEVEL": "CRITICAL",  # a failed flow logs its traceback at ERROR
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "ERROR",
    "GIT_PYTHON_REFRESH": "quiet",
}


def verbosity() -> int:
    """QUIET (-1), NORMAL (0) or VERBOSE (1): what the command prints."""
    return _LEVEL["value"]


def set_verbosity(quiet: bool = False, verbose: bool = False) -> int:
    """Apply ``-q``/``-v`` (both: usage error); the one given to the sub-command wins over the
    one given before it. Returns the level now in force."""
    if quiet and verbose:
        raise typer.BadParameter("give -q/--quiet or -v/--verbose, not both",
                                 param_hint="-q / -v")
    if quiet or verbose:
        _LEVEL["value"] = QUIET if quiet else VERBOSE
        _apply(_LEVEL["value"])
    return _LEVEL["value"]


def _apply(level: int) -> None:
    if level >= VERBOSE:
        # The libraries' own logging as they configure it (Prefect and MLflow print their INFO
        # lines in their own format), the project's loggers at INFO, every warning; HTTP
        # request lines stay out.
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        project = logging.getLogger("crossdiff")
        project.setLevel(logging.INFO)
        if not any(getattr(h, "crossdiff_cli", False) for h in project.handlers):
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            handler.crossdiff_cli = True
            project.addHandler(handler)
        _restore_env(_SAVED_ENV)
        warnings.resetwarnings()
        return
    for key, value in QUIET_ENV.items():
        os.environ[key] = value
    for name in NOISY_LOGGERS:
        # The error itself reaches the user as the CLI's one line (flows/cli.py).
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Deprecation and format notices of libraries (MLflow, pydantic, zarr) are for developers.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", FutureWarning)
    warnings.filterwarnings("ignore", module=r"(mlflow|alembic|pydantic|zarr|prefect|dask)\b")
    warnings.filterwarnings("ignore", message=r".*(Zarr|zarr).*")


@contextlib.contextmanager
def command_output(quiet: bool = False, verbose: bool = False) -> Iterator[int]:
    """The verbosity of one `crossdiff` run, for its whole length: log levels, environment and
    warning filters are restored afterwards (the CLI may run inside another program)."""
    saved_env = {key: os.environ.get(key) for key in QUIET_ENV}
    _SAVED_ENV.clear()
    _SAVED_ENV.update(saved_env)
    saved_levels = {name: logging.getLogger(name).level
                    for name in (*NOISY_LOGGERS, "crossdiff")}
    previous = _LEVEL["value"]
    with warnings.catch_warnings():
        _LEVEL["value"] = NORMAL
        _apply(NORMAL)
        set_verbosity(quiet, verbose)
        try:
            yield _LEVEL["value"]
        finally:
            _LEVEL["value"] = previous
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            for name, level in saved_levels.items():
                logging.getLogger(name).setLevel(level)
            project = logging.getLogger("crossdiff")
            for handler in project.handlers[:]:
                if getattr(handler, "crossdiff_cli", False):
                    project.removeHandler(handler)


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """At most ``threads`` threads for torch, GDAL (``GDAL_NUM_THREADS``: COG compression and
    overviews) and dask's threaded scheduler while the command runs; nothing changes when
    None."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise typer.BadParameter(f"{threads}: give 1 or more threads", param_hint="--threads")
    import dask

    names = ("GDAL_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(threads) for name in names})
    torch_threads = None
    try:
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover  (torch is a dependency)
        pass
    try:
        with dask.config.set(scheduler="threads", num_workers=threads):
            yield
    finally:
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)
        _restore_env(saved)
